//! `tandem drift` and the node state file it reads, on real fleet hosts: the state an
//! apply leaves on each node (`state`), a converged fleet and parity (`in_sync`), the
//! statuses, formats, history and acknowledgements of a fleet changed by hand and in git
//! (`statuses`), nodes that cannot be read (`unreachable`), and secrets (`secrets`).

mod in_sync;
mod secrets;
mod state;
mod statuses;
mod unreachable;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tandem::run::{Settings, Workspace};
use tandem::secret::{SecretSources, SecretStore};

use crate::support::fleet::Fleet;
use crate::support::site::{repo_root, Run, SiteFleet};
use crate::support::wait::wait_for;

/// The library's workspace for the fleet's site, with the demo secrets decrypted without
/// touching the process environment.
fn workspace(sf: &SiteFleet) -> Workspace {
    let mut settings = Settings::new(sf.site());
    settings.inventory = Some(sf.inventory().to_path_buf());
    settings.connection.known_hosts = Some(sf.fleet.known_hosts_path());
    settings.connection.identity = Some(sf.fleet.key_path());
    let sources = SecretSources {
        identity: Some(sf.site().join("manifests/DEMO-ONLY-age-identity.txt")),
        env: Vec::new(),
    };
    let secrets = SecretStore::load_from(sf.site(), &sources).expect("demo secrets");
    Workspace {
        site: tandem::manifest::Site::load(sf.site()).expect("example site loads"),
        secrets: Arc::new(secrets),
        source: tandem::manifest::source::SiteSource::read(sf.site()).expect("site source"),
        settings,
    }
}

/// `tandem drift --format json ARGS`: the run and its report, which must validate
/// against the repository's JSON Schema.
fn drift_json(sf: &SiteFleet, args: &[&str]) -> (Run, Value) {
    let mut all = vec!["drift", "--format", "json"];
    all.extend_from_slice(args);
    let run = sf.tandem(&all);
    let report: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("drift JSON does not parse: {e}\n{run}"));
    validate_schema(&run.stdout);
    assert_eq!(
        report["result"]["exit_code"].as_i64(),
        run.code.map(i64::from),
        "{run}"
    );
    (run, report)
}

/// Validates a JSON report against docs/drift.schema.json with Python's `jsonschema`.
fn validate_schema(json: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.json");
    std::fs::write(&file, json).unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            "import json,sys,jsonschema\n\
             schema=json.load(open(sys.argv[1]))\n\
             jsonschema.Draft202012Validator.check_schema(schema)\n\
             jsonschema.validate(json.load(open(sys.argv[2])), schema)\nprint('valid')",
        ])
        .arg(repo_root().join("docs/drift.schema.json"))
        .arg(&file)
        .output()
        .expect("python3 with jsonschema");
    assert!(
        out.status.success() && out.stdout == b"valid\n",
        "the report does not validate against docs/drift.schema.json:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The report's entry for `resource` on `node`.
fn finding<'a>(report: &'a Value, node: &str, resource: &str) -> &'a Value {
    let n = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == node)
        .unwrap_or_else(|| panic!("no node `{node}` in the report"));
    n["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == resource)
        .unwrap_or_else(|| panic!("no `{resource}` on `{node}` in the report"))
}

/// Every (node, resource, status) of the report that is not in sync.
fn not_in_sync(report: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for n in report["nodes"].as_array().unwrap() {
        for r in n["resources"].as_array().unwrap() {
            if r["status"] != "in_sync" {
                out.push((
                    n["node"].as_str().unwrap().to_string(),
                    r["resource"].as_str().unwrap().to_string(),
                    r["status"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    out
}

/// sshd logs each command it starts (LogLevel VERBOSE, set here on the host).
fn verbose_sshd(fleet: &Fleet, host: &str) {
    fleet.exec_ok(
        host,
        "sed -i '/^LogLevel/d' /etc/ssh/sshd_config && echo 'LogLevel VERBOSE' >> /etc/ssh/sshd_config && systemctl reload ssh",
    );
}

/// The host's sshd journal, once it has logged the end of `ends_before + 1`
/// connections (so nothing of tandem's connection is still to come).
fn sshd_journal_after(fleet: &Fleet, host: &str, ends_before: usize) -> String {
    wait_for(
        Duration::from_secs(10),
        &format!("sshd on {host} to log the end of tandem's connection"),
        || {
            let journal = fleet.exec_ok(
                host,
                "journalctl --sync && journalctl -u ssh --no-pager -o cat",
            );
            (connection_ends(&journal) > ends_before).then_some(journal)
        },
    )
    .unwrap()
}

fn connection_ends(journal: &str) -> usize {
    journal
        .lines()
        .filter(|l| {
            [
                "Connection closed by",
                "Disconnected from",
                "Connection reset by",
            ]
            .iter()
            .any(|end| l.contains(end))
        })
        .count()
}

fn sshd_journal(fleet: &Fleet, host: &str) -> String {
    fleet.exec_ok(
        host,
        "journalctl --sync && journalctl -u ssh --no-pager -o cat",
    )
}

/// Content digest and mtime (nanoseconds) of each path on the host.
fn files_state(fleet: &Fleet, host: &str, paths: &[String]) -> String {
    let quoted: Vec<String> = paths.iter().map(|p| format!("'{p}'")).collect();
    fleet.exec_ok(
        host,
        &format!(
            "sha256sum {0} && stat -c '%n %Y.%y %a %U %G' {0}",
            quoted.join(" ")
        ),
    )
}
