//! Injected failures on real fleet hosts (systemd, sshd, the SSH transport, the SQLite
//! run history): every command a step runs can fail, and when one does, that resource
//! fails, the old file stays byte-identical, its dependents are skipped, the node and
//! the run are recorded as failed and the run exits 3. Failures are real: a 1 MiB tmpfs
//! that fills up (ENOSPC), a user that does not exist, and a `PATH` shim in
//! `/usr/local/sbin` (first in sshd's `PATH` for root) that makes one command fail at a
//! time. Also here: a symlinked parent directory refused on the node, and what a killed
//! run left behind removed by the next one. One fleet serves every case.

mod cases;
mod site;

use std::sync::Arc;
use std::time::Duration;

use tandem::apply::deploy::{self, DeployReport, RunContext};
use tandem::apply::{ApplyOptions, Job, NodeReport, Outcome, StepStatus};
use tandem::catalog::Catalog;
use tandem::inventory::{DatacenterSpec, ProviderConfig};
use tandem::lock::Wait;
use tandem::node::{DatacenterName, Node};
use tandem::path::RemotePath;
use tandem::resource::*;
use tandem::rollout::RolloutPolicy;
use tandem::store::{NewRun, RunDetail, RunKind, RunStatus, Store};
use tandem::transport::Connector;

use crate::support::fleet::Fleet;
use crate::support::resources::{resource, root_file};

const DC: &str = "azure-westus";

/// A control side for a fleet: a site directory holding the lock and run history.
struct Control {
    fleet: Fleet,
    site: tempfile::TempDir,
    connector: Arc<dyn Connector>,
}

impl Control {
    fn new(fleet: Fleet) -> Control {
        let connector = fleet.connector();
        Control {
            fleet,
            site: tempfile::tempdir().unwrap(),
            connector,
        }
    }

    fn host(&self, name: &str) -> Node {
        self.fleet.node(name).clone()
    }

    fn history(&self) -> std::path::PathBuf {
        self.site.path().join(".tandem/history.sqlite")
    }

    /// Applies `resources` to `host` through the real executor, rollout and history.
    fn apply(&self, host: &str, resources: Vec<Resource>) -> (DeployReport, RunDetail) {
        let catalog = Catalog {
            node: self.host(host),
            resources,
        };
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let report = runtime.block_on(async {
            let options = ApplyOptions {
                lock_wait: Duration::from_secs(10),
                command_timeout: Duration::from_secs(60),
                ..ApplyOptions::default()
            };
            let command = "tandem apply (node faults)";
            let lock = deploy::lock_site(
                self.site.path(),
                command,
                Wait::FailFast,
                &options.interrupt,
                |_| {},
            )
            .await
            .unwrap();
            let ctx = RunContext {
                datacenters: vec![DatacenterSpec {
                    name: DatacenterName::new(DC).unwrap(),
                    primary: true,
                    provider: ProviderConfig::Static,
                }],
                policy: RolloutPolicy::default(),
                store_path: self.history(),
                run: NewRun {
                    kind: RunKind::Apply,
                    started_by: "tester@ci".into(),
                    command: command.into(),
                    commit: None,
                    dirty: false,
                    site_digest: None,
                },
            };
            let job = Job::new(catalog);
            deploy::deploy(
                vec![job],
                self.connector.clone(),
                &options,
                ctx,
                lock,
                |_| {},
            )
            .await
            .unwrap()
        });
        let detail = Store::open(&self.history())
            .unwrap()
            .run(report.run)
            .unwrap();
        (report, detail)
    }

    fn sh(&self, host: &str, command: &str) -> String {
        self.fleet.exec_ok(host, command)
    }

    /// sha256 and size of `path` on `host`, or `missing`.
    fn digest(&self, host: &str, path: &str) -> String {
        self.sh(
            host,
            &format!("if [ -e {path} ]; then sha256sum < {path}; stat -c %s {path}; else echo missing; fi"),
        )
    }
}

fn rp(p: &str) -> RemotePath {
    RemotePath::parse(p).unwrap()
}

fn res(spec: Spec, name: &str, after: &[&Resource]) -> Resource {
    resource(spec, name, "modules/faults/module.toml", after)
}

fn file(path: &str, bytes: &[u8], after: &[&Resource]) -> Resource {
    res(Spec::File(root_file(path, bytes)), path, after)
}

/// The one node of a single-host apply.
fn only(report: &DeployReport) -> &NodeReport {
    assert_eq!(report.nodes.len(), 1, "{report:?}");
    &report.nodes[0]
}

fn statuses(node: &NodeReport) -> Vec<StepStatus> {
    node.resources.iter().map(|r| r.status).collect()
}

/// What every injected failure must leave: the node and the run failed (exit 3), the
/// steps as `want`, and the history row of each failed resource saying so with `error`.
fn assert_failed(
    case: &str,
    report: &DeployReport,
    detail: &RunDetail,
    want: &[StepStatus],
    error: &str,
) {
    let node = only(report);
    assert_eq!(node.outcome, Outcome::Failed, "{case}: {node:#?}");
    assert_eq!(statuses(node), want, "{case}: {node:#?}");
    let failed = node
        .resources
        .iter()
        .find(|r| r.status == StepStatus::Failed)
        .unwrap_or_else(|| panic!("{case}: no failed resource"));
    let message = failed.error.as_deref().unwrap_or_default();
    assert!(
        message.contains(error),
        "{case}: `{error}` not in `{message}`"
    );
    assert_eq!(report.exit_status() as i32, 3, "{case}");
    assert_eq!(
        detail.run.status,
        RunStatus::Failed,
        "{case}: {:?}",
        detail.run
    );
    assert_eq!(detail.nodes[0].outcome, Outcome::Failed, "{case}");
    let row = detail
        .changes
        .iter()
        .find(|c| c.resource == failed.id)
        .unwrap_or_else(|| panic!("{case}: no history row for {}", failed.id));
    assert!(row.summary.starts_with("failed: "), "{case}: {row:?}");
    for (step, status) in node.resources.iter().zip(want) {
        if *status == StepStatus::Skipped {
            let row = detail
                .changes
                .iter()
                .find(|c| c.resource == step.id)
                .unwrap();
            assert!(row.summary.starts_with("skipped"), "{case}: {row:?}");
        }
    }
}

/// No staged file or work directory left anywhere under `dir` or the state directory.
fn assert_no_leftovers(c: &Control, host: &str, dir: &str) {
    let left = c.sh(
        host,
        &format!(
            "find {dir} /var/lib/tandem -name '*.tandem-*' -o -name 'run.*' 2>/dev/null; true"
        ),
    );
    assert_eq!(left.trim(), "", "leftovers on {host}");
}

fn fleet_up(hint: &str, layout: &str) -> Control {
    Control::new(Fleet::up(
        hint,
        layout,
        crate::support::fleet::Mode::Systemd,
    ))
}

/// Bytes of `len` that are not a trivial pattern.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u32 = 2463534242;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            b'a' + (x % 26) as u8
        })
        .collect()
}

fn exists(c: &Control, host: &str, path: &str) -> bool {
    c.fleet
        .exec(host, &format!("test -e {path} || test -L {path}"))
        .status
        .success()
}
