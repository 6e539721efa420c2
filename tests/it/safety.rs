//! Integration tests: making apply safe against production. Saved plans that went stale,
//! SIGINT mid-run, two applies at once, the rollout threshold and health check, and the
//! run history of each, through the real executor, site lock and SQLite store with the
//! local transport. Every "node" has its own directory below one temp dir, so only
//! paths there are touched. The helpers take the connector and the nodes as inputs so
//! that the fleet versions (real SSH hosts) can reuse them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem::apply::deploy::{self, DeployError, DeployReport, RunContext};
use tandem::apply::{self, ApplyOptions, Interrupt, Job, Outcome};
use tandem::catalog::Catalog;
use tandem::exit::Status;
use tandem::inventory::{DatacenterSpec, ProviderConfig};
use tandem::lock::Wait;
use tandem::node::{DatacenterName, Node, NodeName, RoleName};
use tandem::path::RemotePath;
use tandem::plan::saved::SavedPlan;
use tandem::resource::*;
use tandem::rollout::{BatchSize, Halt, HealthCheck, HealthProbe, RolloutPolicy};
use tandem::store::{NewRun, RunKind, RunStatus, Store};
use tandem::transport::local::LocalConnector;
use tandem::transport::Connector;

use crate::support::wait::{wait_until, wait_until_async};

const DC: &str = "azure-westus";

/// A site directory with a history, and per node a directory standing for its disk.
/// `connector` reaches the nodes: the local transport here; the fleet versions of these
/// tests put the SSH connector there and the fleet's hosts in the catalogs.
struct Site {
    dir: tempfile::TempDir,
    connector: Arc<dyn Connector>,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
        std::fs::write(
            dir.path().join("manifests/site.toml"),
            format!("[site]\nname = \"test\"\n\n[datacenters.{DC}]\nprimary = true\nprovider = \"static\"\n"),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        Site {
            dir,
            connector: Arc::new(LocalConnector),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The directory that plays `node`'s file system.
    fn disk(&self, node: &str) -> PathBuf {
        let d = self.root().join("nodes").join(node);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn history(&self) -> PathBuf {
        self.root().join(".tandem/history.sqlite")
    }

    fn options(&self) -> ApplyOptions {
        ApplyOptions {
            state_dir: rp(&self.root().join("state")),
            lock_wait: Duration::from_secs(20),
            parallel: 4,
            ..ApplyOptions::default()
        }
    }

    fn context(&self, policy: RolloutPolicy, command: &str) -> RunContext {
        RunContext {
            datacenters: vec![DatacenterSpec {
                name: DatacenterName::new(DC).unwrap(),
                primary: true,
                provider: ProviderConfig::Static,
            }],
            policy,
            store_path: self.history(),
            run: NewRun {
                kind: RunKind::Apply,
                started_by: "tester@ci".into(),
                command: command.into(),
                commit: None,
                dirty: false,
                site_digest: None,
            },
        }
    }

    async fn deploy(
        &self,
        jobs: Vec<Job>,
        options: &ApplyOptions,
        policy: RolloutPolicy,
        command: &str,
        wait: Wait,
    ) -> Result<DeployReport, DeployError> {
        let connector = self.connector.clone();
        let lock =
            deploy::lock_site(self.root(), command, wait, &options.interrupt, |_| {}).await?;
        let ctx = self.context(policy, command);
        deploy::deploy(jobs, connector, options, ctx, lock, |_| {}).await
    }

    fn run_status(&self, report: &DeployReport) -> (RunStatus, Vec<(String, Outcome)>) {
        let store = Store::open(&self.history()).unwrap();
        let detail = store.run(report.run).unwrap();
        let nodes = detail
            .nodes
            .iter()
            .map(|n| (n.node.to_string(), n.outcome))
            .collect();
        (detail.run.status, nodes)
    }
}

fn node(name: &str) -> Node {
    Node {
        name: NodeName::new(name).unwrap(),
        datacenter: DatacenterName::new(DC).unwrap(),
        role: RoleName::new("frontend").unwrap(),
        address: "127.0.0.1".into(),
        port: 22,
        user: None,
        facts: Default::default(),
        vars: Default::default(),
    }
}

fn rp(p: &Path) -> RemotePath {
    RemotePath::parse(p.to_str().unwrap()).unwrap()
}

fn resource(spec: Spec, name: &str) -> Resource {
    Resource {
        id: ResourceId::new(spec.kind(), name),
        spec,
        origin: Origin {
            file: "modules/test/module.toml".into(),
            line: 1,
        },
        after: Vec::new(),
        notify: Vec::new(),
    }
}

fn file(path: &Path, text: &str) -> Resource {
    resource(
        Spec::File(FileSpec {
            path: rp(path),
            ensure: Presence::Present,
            content: Some(Content {
                bytes: text.as_bytes().to_vec(),
                secrets: Vec::new(),
                keyed_digest: None,
            }),
            owner: None,
            group: None,
            mode: Some(Mode(0o644)),
            validate: None,
            backup: false,
        }),
        path.to_str().unwrap(),
    )
}

/// An exec that runs `command` unless `creates` exists.
fn exec(command: String, creates: &Path) -> Resource {
    resource(
        Spec::Exec(ExecSpec {
            command: command.clone(),
            creates: Some(rp(creates)),
            unless: None,
            onlyif: None,
            refresh_only: false,
            user: None,
            cwd: None,
        }),
        &command,
    )
}

fn catalog(name: &str, resources: Vec<Resource>) -> Catalog {
    Catalog {
        node: node(name),
        resources,
    }
}

fn jobs(catalogs: Vec<Catalog>) -> Vec<Job> {
    catalogs.into_iter().map(Job::new).collect()
}

/// Canary first, then one node per batch.
fn one_by_one(max_failed: usize) -> RolloutPolicy {
    RolloutPolicy {
        canary: 1,
        batch: BatchSize::Count(1),
        max_failed,
        ..RolloutPolicy::default()
    }
}

fn outcomes(report: &DeployReport) -> Vec<(String, Outcome)> {
    report
        .nodes
        .iter()
        .map(|n| (n.node.to_string(), n.outcome))
        .collect()
}

fn tandem_bin(site: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("--site")
        .arg(site)
        .args(args)
        .env("TANDEM_TRANSPORT", "local")
        .env_remove("TANDEM_HISTORY")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits (bounded) until `path` exists.
async fn wait_for(path: &Path, within: Duration) {
    let what = format!("`{}` to appear", path.display());
    wait_until_async(within, &what, || path.exists())
        .await
        .unwrap();
}

mod cases;
mod interrupt;
mod trips;
