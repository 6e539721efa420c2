//! `tandem check` as a new user meets it: offline and without the age identity (the
//! secrets file's names are in clear), and parity that compares what the datacenter
//! changes, not what differs from node to node. Also the desired-state default of a
//! secret-bearing file's mode.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use super::{copy_tree, repo, tandem, text, KEYFILE};

/// A copy of the example site with `template` (relative) edited by `edit`.
fn example_copy(template: &str, edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for part in ["manifests", "modules", "templates"] {
        if repo().join(part).is_dir() {
            copy_tree(&repo().join(part), &dir.path().join(part));
        }
    }
    let path = dir.path().join(template);
    let source = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(source)).unwrap();
    dir
}

fn check_json(site: &Path) -> (Option<i32>, Value) {
    let out = tandem(
        site,
        &["--format", "json", "check"],
        &[("TANDEM_SECRET_MONGODB_KEYFILE", KEYFILE)],
    );
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)));
    (out.status.code(), report)
}

#[test]
fn per_node_values_pass_parity_and_a_datacenter_variable_still_fails_it() {
    // Node name, address and a node variable differ from node to node, in one
    // datacenter as much as across two: not a parity break.
    let site = example_copy("modules/nginx/templates/nginx.conf.hbs", |s| {
        s + "# node_id = {{node.name}} at {{node.address}} ({{default rack \"none\"}})\n"
    });
    let nodes = site.path().join("manifests/nodes.toml");
    let inventory = std::fs::read_to_string(&nodes).unwrap();
    std::fs::write(
        &nodes,
        inventory.replacen(
            "address = \"10.20.1.11\"\n",
            "address = \"10.20.1.11\"\n[node.vars]\nrack = \"r7\"\n",
            1,
        ),
    )
    .unwrap();
    let (code, report) = check_json(site.path());
    assert_eq!(code, Some(0), "{report:#}");
    // The template really renders per node (so the check above is not vacuous).
    let out = tandem(
        site.path(),
        &["--format", "json", "catalog", "fe-az-1"],
        &[],
    );
    assert!(
        text(&out.stdout).contains("node_id = fe-az-1 at 10.20.1.11 (r7)"),
        "{}",
        text(&out.stderr)
    );

    // A datacenter variable (`cloud`) that changes a file no overlay declares.
    let site = example_copy("modules/nginx/templates/nginx.conf.hbs", |s| {
        s + "# cloud = {{cloud}}\n"
    });
    let (code, report) = check_json(site.path());
    assert_eq!(code, Some(1), "{report:#}");
    let messages: Vec<&str> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    let expected = "parity: role `frontend`, resource `file:/etc/nginx/nginx.conf`, attribute `content` differs between `azure-westus` and `aws-useast1`";
    assert!(
        messages.iter().any(|m| m.contains(expected)),
        "{messages:#?}"
    );
    assert_eq!(messages.len(), 1, "{messages:#?}");

    // A node-level value that changes what a datacenter variable does, on a node that
    // is not its datacenter's first: still found, under that node.
    let site = example_copy("modules/nginx/templates/nginx.conf.hbs", |s| {
        s + "{{#if (default show_cloud false)}}# cloud = {{cloud}}{{/if}}\n"
    });
    let nodes = site.path().join("manifests/nodes.toml");
    let inventory = std::fs::read_to_string(&nodes).unwrap();
    std::fs::write(
        &nodes,
        inventory.replacen(
            "address = \"10.20.1.12\"\n",
            "address = \"10.20.1.12\"\n[node.vars]\nshow_cloud = true\n",
            1,
        ),
    )
    .unwrap();
    let (code, report) = check_json(site.path());
    assert_eq!(code, Some(1), "{report:#}");
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{report:#}");
    assert!(
        errors[0]["message"].as_str().unwrap().contains(expected)
            && errors[0]["nodes"] == serde_json::json!(["fe-az-2"]),
        "{report:#}"
    );
}

/// `tandem check` on a copy of the example site, with nothing in the environment but
/// `PATH` (no identity, no `TANDEM_*`, no cloud settings), in a network namespace
/// without interfaces: no network call can succeed, and none is needed.
fn check_offline(site: &Path, args: &[&str]) -> Output {
    let out = Command::new("unshare")
        .args(["-n", "env", "-i"])
        .arg(format!("PATH={}", std::env::var("PATH").unwrap()))
        .arg(env!("CARGO_BIN_EXE_tandem"))
        .arg("--site")
        .arg(site)
        .arg("check")
        .args(args)
        .output()
        .expect("run unshare");
    assert!(
        !text(&out.stderr).contains("unshare failed"),
        "this test needs root (unshare -n): {}",
        text(&out.stderr)
    );
    out
}

#[test]
fn check_runs_offline_without_identity_and_still_knows_the_secret_names() {
    let site = example_copy("manifests/site.toml", |s| s);
    let out = check_offline(site.path(), &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("secrets not decrypted: no identity; 2 secret names checked"),
        "{stdout}"
    );
    assert!(stdout.contains("ok: 7 nodes"), "{stdout}");
    // Nothing written to the site: check records nothing.
    assert!(!site.path().join(".tandem").exists());
    // The contrast: `--discover` does call the clouds, and in this namespace cannot.
    let out = check_offline(site.path(), &["--discover"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("datacenter `aws-useast1`") && stderr.contains("datacenter `azure-westus`"),
        "{stderr}"
    );

    // A secret name the file does not list is an error even without the key.
    let site = example_copy("modules/mongodb/templates/mongod.conf.hbs", |s| {
        s + "# {{secret \"mongodb_keyfle\"}}\n"
    });
    let out = check_offline(site.path(), &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("unknown secret `mongodb_keyfle`"),
        "{stderr}"
    );
}

#[test]
fn a_secret_bearing_file_without_a_mode_defaults_to_0600() {
    let site = example_copy("modules/mongodb/module.toml", |s| {
        s.replacen(
            "group = \"mongodb\"\nmode = \"0400\"\n",
            "group = \"mongodb\"\n",
            1,
        )
    });
    let out = tandem(
        site.path(),
        &["--format", "json", "catalog", "db-aws-1"],
        &[("TANDEM_SECRET_MONGODB_KEYFILE", KEYFILE)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let catalog: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mode = |id: &str| {
        catalog["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()["spec"]["mode"]
            .clone()
    };
    assert_eq!(mode("file:/etc/mongodb/keyfile"), "0600");
    // Content without a secret keeps its declared mode.
    assert_eq!(mode("file:/etc/mongodb/member.js"), "0640");
}
