//! Integration tests: inventory. The static provider here; cloud discovery against a
//! real EC2 emulator and a local Resource Manager server in `inventory/cloud.rs`.

#[cfg(all(feature = "aws", feature = "azure"))]
mod cloud;

use std::path::Path;
use std::process::Output;

use serde_json::Value;

pub fn write_site(dir: &Path, datacenters: &str) {
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    std::fs::write(
        dir.join("manifests/site.toml"),
        format!("[site]\nname = \"prod\"\n\n{datacenters}"),
    )
    .unwrap();
}

/// Runs the tandem binary with no cloud credentials of the machine's environment, a
/// private `HOME`, and `env` on top.
pub async fn tandem(site: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem"));
    command.arg("--site").arg(site).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("AWS_") || key.starts_with("AZURE_") || key.starts_with("TANDEM_") {
            command.env_remove(key);
        }
    }
    command.env("HOME", site);
    command.envs(env.iter().copied());
    command
        .kill_on_drop(true)
        .output()
        .await
        .expect("run tandem")
}

pub fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "stdout is not json ({err}); stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// `(name, datacenter, role, address)` of every node, sorted.
pub fn nodes_by_name(report: &Value) -> Vec<(String, String, String, String)> {
    let field = |n: &Value, key: &str| n[key].as_str().unwrap_or_default().to_string();
    let mut nodes: Vec<_> = report["nodes"]
        .as_array()
        .expect("a `nodes` array")
        .iter()
        .map(|n| {
            (
                field(n, "name"),
                field(n, "datacenter"),
                field(n, "role"),
                field(n, "address"),
            )
        })
        .collect();
    nodes.sort();
    nodes
}

#[tokio::test]
async fn static_datacenters_list_the_nodes_of_nodes_toml() {
    let site = tempfile::tempdir().unwrap();
    write_site(
        site.path(),
        "[datacenters.lab]\nprovider = \"static\"\nprimary = true\n",
    );
    std::fs::write(
        site.path().join("manifests/nodes.toml"),
        "[[node]]\nname = \"fe-1\"\ndatacenter = \"lab\"\nrole = \"frontend\"\naddress = \"10.77.0.2\"\n\n\
         [[node]]\nname = \"elsewhere\"\ndatacenter = \"other\"\nrole = \"frontend\"\naddress = \"10.77.0.3\"\n",
    )
    .unwrap();
    let output = tandem(site.path(), &["--format", "json", "inventory"], &[]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = json_of(&output);
    assert_eq!(
        nodes_by_name(&report),
        vec![(
            "fe-1".into(),
            "lab".into(),
            "frontend".into(),
            "10.77.0.2".into()
        )]
    );
    assert_eq!(report["nodes"][0]["facts"]["provider"], "static");
    assert!(
        !site.path().join(".tandem").exists(),
        "static lists are not cached"
    );
}
