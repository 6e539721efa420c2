//! The text an operator reads, as snapshots (`insta`): the default plan with identical
//! changes grouped, the default and verbose apply report, `check` errors and
//! `runs show`. Times, temporary paths, hosts and pids are filtered out. To accept an
//! intended change: `INSTA_UPDATE=always cargo test --test it snapshots`, then review
//! the diff of `tests/it/snapshots/`.

use tandem::apply::deploy::DeployReport;
use tandem::apply::{NodeReport, Outcome, ResourceReport, StepStatus};
use tandem::node::{DatacenterName, NodeName};
use tandem::plan::render::{self, NodeResult};
use tandem::plan::{Action, Change, Detail, Diff, NodePlan};
use tandem::rollout::{self, RolloutReport};
use tandem::store::RunId;

fn name(n: &str) -> NodeName {
    NodeName::new(n).unwrap()
}

fn dc(d: &str) -> DatacenterName {
    DatacenterName::new(d).unwrap()
}

/// The nginx.conf change every front end gets from one template edit.
fn keepalive_change() -> Change {
    let mut change = Change::new(
        &"file:/etc/nginx/nginx.conf".parse().unwrap(),
        Action::Modify,
    );
    change.diff = Some(Diff::Text {
        unified: "--- /etc/nginx/nginx.conf\n+++ /etc/nginx/nginx.conf\n@@ -11,3 +11,3 @@\n     sendfile on;\n-    keepalive_timeout 65;\n+    keepalive_timeout 30;\n     server_tokens off;\n".into(),
    });
    change
}

fn planned(node: &str, datacenter: &str, changes: Vec<Change>) -> NodeResult {
    NodeResult::Planned(NodePlan {
        node: name(node),
        datacenter: dc(datacenter),
        changes,
        read: Vec::new(),
        host_key: None,
        record_stale: false,
    })
}

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("snapshots");
    s.set_prepend_module_to_snapshot(false);
    s.add_filter(r"/tmp/\.tmp[A-Za-z0-9]+", "[TMP]");
    s.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "[TIME]");
    s.add_filter(r"\(pid \d+\)", "(pid [PID])");
    s.add_filter(r"by \S+@\S+ on \S+", "by [USER]@[HOST] on [HOST]");
    s.add_filter(r"\(\d+ms\)", "([DURATION])");
    s
}

#[test]
fn a_plan_shows_identical_changes_once_with_the_nodes_names() {
    let mut mode = keepalive_change();
    mode.id = "file:/etc/dashboard/dashboard.toml".parse().unwrap();
    mode.diff = None;
    mode.details.push(Detail::new(
        "mode",
        Some("0644".into()),
        Some("0640".into()),
    ));
    let results = vec![
        planned("fe-aws-1", "aws-useast1", vec![keepalive_change()]),
        planned("fe-aws-2", "aws-useast1", vec![keepalive_change()]),
        planned("fe-az-1", "azure-westus", vec![keepalive_change()]),
        planned("fe-az-2", "azure-westus", vec![keepalive_change(), mode]),
        planned("db-az-1", "azure-westus", Vec::new()),
        NodeResult::Unreachable {
            node: name("db-aws-1"),
            datacenter: dc("aws-useast1"),
            error: "db-aws-1: unreachable: connect to 10.0.0.9:22 timed out".into(),
        },
    ];
    settings().bind(|| insta::assert_snapshot!("plan_grouped", render::grouped(&results)));
}

fn node_report(
    node: &str,
    datacenter: &str,
    outcome: Outcome,
    steps: &[(&str, StepStatus)],
) -> NodeReport {
    NodeReport {
        node: name(node),
        datacenter: dc(datacenter),
        outcome,
        resources: steps
            .iter()
            .map(|(id, status)| ResourceReport {
                id: id.parse().unwrap(),
                action: if id.starts_with("service") {
                    Action::Reload
                } else {
                    Action::Modify
                },
                status: *status,
                error: (*status == StepStatus::Failed)
                    .then(|| "`nginx -t` failed: unknown directive `proxy_pas`".into()),
            })
            .collect(),
        unsynced: Vec::new(),
        refused: Vec::new(),
        error: None,
        round_trips: 1,
        elapsed_ms: 900,
    }
}

#[test]
fn an_apply_report_lists_each_node_once_and_identical_steps_once() {
    use StepStatus::*;
    let ok = [
        ("file:/etc/nginx/nginx.conf", Applied),
        ("service:nginx", Applied),
    ];
    let bad = [
        ("file:/etc/nginx/nginx.conf", Failed),
        ("service:nginx", Skipped),
    ];
    let nodes = vec![
        node_report("fe-aws-1", "aws-useast1", Outcome::Changed, &ok),
        node_report("fe-aws-2", "aws-useast1", Outcome::Changed, &ok),
        node_report("fe-az-1", "azure-westus", Outcome::Changed, &ok),
        node_report("fe-az-2", "azure-westus", Outcome::Failed, &bad),
        node_report("db-az-1", "azure-westus", Outcome::Unchanged, &[]),
    ];
    let report = DeployReport {
        run: RunId(7),
        rollout: RolloutReport {
            nodes: nodes
                .iter()
                .map(|n| rollout::NodeResult {
                    node: n.node.clone(),
                    datacenter: n.datacenter.clone(),
                    batch: 1,
                    outcome: n.outcome,
                })
                .collect(),
            halt: None,
            max_failed: 1,
            failure_rule: rollout::FAILURE_RULE,
        },
        nodes,
        interrupted: false,
        history_errors: Vec::new(),
    };
    settings().bind(|| {
        insta::assert_snapshot!("apply_default", tandem::apply::render::text(&report, false));
        insta::assert_snapshot!("apply_verbose", tandem::apply::render::text(&report, true));
    });
}

#[test]
fn check_errors_name_file_line_and_key() {
    let site = tempfile::tempdir().unwrap();
    let root = site.path();
    std::fs::create_dir_all(root.join("manifests/roles")).unwrap();
    std::fs::create_dir_all(root.join("modules/web/templates")).unwrap();
    std::fs::write(
        root.join("manifests/site.toml"),
        "[site]\nname = \"t\"\n\n[datacenters.dc1]\nprimary = true\nprovider = \"static\"\n",
    )
    .unwrap();
    std::fs::write(
        root.join("manifests/roles/web.toml"),
        "modules = [\"web\"]\n",
    )
    .unwrap();
    std::fs::write(
        root.join("manifests/nodes.toml"),
        "[[node]]\nname = \"w1\"\ndatacenter = \"dc1\"\nrole = \"web\"\naddress = \"10.0.0.1\"\n",
    )
    .unwrap();
    std::fs::write(
        root.join("modules/web/module.toml"),
        "[[resource]]\ntype = \"file\"\npath = \"/etc/web.conf\"\ntemplate = \"web.conf.hbs\"\nmod = \"0644\"\n",
    )
    .unwrap();
    std::fs::write(
        root.join("modules/web/templates/web.conf.hbs"),
        "port = {{web_port}}\n",
    )
    .unwrap();
    let (code, out, err) = crate::runs::tandem(root, &["check"]);
    assert_eq!(code, 1, "{out}{err}");
    settings().bind(|| insta::assert_snapshot!("check_unknown_key", err));

    std::fs::write(
        root.join("modules/web/module.toml"),
        "[[resource]]\ntype = \"file\"\npath = \"/etc/web.conf\"\ntemplate = \"web.conf.hbs\"\n",
    )
    .unwrap();
    let (code, out, err) = crate::runs::tandem(root, &["check"]);
    assert_eq!(code, 1, "{out}{err}");
    settings().bind(|| insta::assert_snapshot!("check_missing_variable", err));
}

#[test]
fn runs_show_text() {
    let (site, apply) = crate::runs::site_with_history();
    let (code, out, err) = crate::runs::tandem(site.path(), &["runs", "show", &apply.to_string()]);
    assert_eq!(code, 0, "{err}");
    settings().bind(|| insta::assert_snapshot!("runs_show", out));
}
