//! `tandem runs`: the real binary reading a history written through the library, in
//! text and JSON.

use std::process::Command;
use std::time::{Duration, SystemTime};

use tandem::node::{DatacenterName, NodeName};
use tandem::outcome::Outcome;
use tandem::store::{ChangeAction, NewRun, NodeRun, ResourceChange, RunKind, RunStatus, Store};

pub(crate) fn tandem(site: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("--site")
        .arg(site)
        .args(args)
        .env_remove("TANDEM_HISTORY")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A site with two runs: a finished plan, then an apply with two nodes and a change.
pub(crate) fn site_with_history() -> (tempfile::TempDir, i64) {
    let site = tempfile::tempdir().unwrap();
    let store = Store::open_site(site.path()).unwrap();
    let plan = store
        .begin(&NewRun {
            kind: RunKind::Plan,
            started_by: "webhook".into(),
            command: "tandem plan".into(),
            commit: Some("3f2a9c1d7e".into()),
            dirty: false,
            site_digest: None,
        })
        .unwrap();
    store.finish(plan, RunStatus::Pending, None).unwrap();
    let apply = store
        .begin(&NewRun::by_current_user(
            RunKind::Apply,
            "tandem apply --on dc:aws-useast1",
            None,
        ))
        .unwrap();
    let now = SystemTime::now();
    let aws = Some(DatacenterName::new("aws-useast1").unwrap());
    store
        .record_node(
            apply,
            &NodeRun::new(
                NodeName::new("fe-aws-1").unwrap(),
                aws.clone(),
                Outcome::Changed,
                now,
                Duration::from_millis(1_234),
            ),
        )
        .unwrap();
    store
        .record_node(
            apply,
            &NodeRun::new(
                NodeName::new("fe-aws-2").unwrap(),
                aws,
                Outcome::Failed,
                now,
                Duration::from_millis(450),
            )
            .with_error("`nginx -t` failed: unknown directive `proxy_pas`"),
        )
        .unwrap();
    store
        .record_change(
            apply,
            &ResourceChange {
                node: NodeName::new("fe-aws-1").unwrap(),
                resource: "file:/etc/nginx/nginx.conf".parse().unwrap(),
                action: ChangeAction::Modify,
                summary: "content: 3 lines changed".into(),
            },
        )
        .unwrap();
    store
        .finish(apply, RunStatus::Failed, Some("1 node failed"))
        .unwrap();
    (site, apply.0)
}

#[test]
fn runs_lists_newest_first_in_text_and_json() {
    let (site, apply) = site_with_history();
    let (code, out, err) = tandem(site.path(), &["runs"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("ID  KIND   STATUS"), "{out}");
    assert!(
        lines[1].starts_with(&format!("{apply}   apply  failed")),
        "{out}"
    );
    assert!(
        lines[2].contains("plan   pending")
            && lines[2].contains("webhook")
            && lines[2].contains("3f2a9c1d7e"),
        "{out}"
    );

    let (code, out, _) = tandem(site.path(), &["runs", "--format", "json", "--limit", "1"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let runs = json.as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["id"], apply);
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(runs[0]["command"], "tandem apply --on dc:aws-useast1");
}

#[test]
fn runs_show_prints_nodes_and_changes() {
    let (site, apply) = site_with_history();
    let (code, out, err) = tandem(site.path(), &["runs", "show", &apply.to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("run {apply}: apply, failed\n")),
        "{out}"
    );
    assert!(out.contains("error     1 node failed"), "{out}");
    assert!(out.contains("nodes (2): 1 changed, 1 failed"), "{out}");
    assert!(out.contains("  fe-aws-2  aws-useast1  failed   450ms  `nginx -t` failed: unknown directive `proxy_pas`"), "{out}");
    assert!(
        out.contains("  fe-aws-1  modify  file:/etc/nginx/nginx.conf  content: 3 lines changed"),
        "{out}"
    );

    let (code, out, _) = tandem(
        site.path(),
        &["runs", "show", &apply.to_string(), "--format", "json"],
    );
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        json["nodes"][1]["error"],
        "`nginx -t` failed: unknown directive `proxy_pas`"
    );
    assert_eq!(json["changes"][0]["action"], "modify");
}

#[test]
fn unknown_runs_and_missing_history_are_explained() {
    let (site, _) = site_with_history();
    let (code, _, err) = tandem(site.path(), &["runs", "show", "999"]);
    assert_eq!(code, 1);
    assert!(err.contains("no run `999` in the run history `"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let (code, out, _) = tandem(empty.path(), &["runs"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("no runs recorded in `"), "{out}");
    assert!(
        !empty.path().join(".tandem").exists(),
        "listing must not create the history"
    );
    let (code, out, _) = tandem(empty.path(), &["runs", "--format", "json"]);
    assert_eq!((code, out.trim()), (0, "[]"));
    let (code, _, err) = tandem(empty.path(), &["runs", "show", "abc"]);
    assert_eq!(code, 2, "clap refuses a bad id: {err}");
    assert!(
        err.contains("run id `abc` is not a positive number"),
        "{err}"
    );
}
