//! `tandem plan`: read every selected node's state (one connection and one probe each)
//! and show what would change. Exit 2 when changes are pending. `--out FILE` saves the
//! plan (see `crate::plan::saved`) for `tandem apply FILE`. Every plan is recorded in the
//! run history, with each proposed change (never a value).

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context as _;

use crate::apply::{self, change_summary, ApplyOptions, Progress};
use crate::catalog::{Catalog, Compiler};
use crate::cli::{connect, Format, Global};
use crate::exit::Status;
use crate::manifest::Site;
use crate::outcome::Outcome;
use crate::plan::render::{self, NodeResult};
use crate::plan::saved::{site_commit, SavedPlan};
use crate::secret::SecretStore;
use crate::selector::Selector;
use crate::store::{NewRun, NodeRun, ResourceChange, RunKind, RunStatus, Store, DEFAULT_PATH};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Node names, globs, `@role` or `dc:NAME`, comma separated
    #[arg(long)]
    pub on: Option<String>,
    /// Write the plan to FILE, for `tandem apply FILE` and `tandem show FILE`
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Nodes worked on at once
    #[arg(long, default_value_t = 50)]
    pub parallel: usize,
    #[command(flatten)]
    pub record: RecordArgs,
}

/// Where and as whom a run is recorded; shared by `plan` and `apply`.
#[derive(Debug, Clone, clap::Args)]
pub struct RecordArgs {
    /// The run history file (default: `.tandem/history.sqlite` in the site)
    #[arg(long, env = "TANDEM_HISTORY")]
    pub history: Option<PathBuf>,
    /// Who or what started this run, as the history shows it (default: `user@host`)
    #[arg(long, env = "TANDEM_STARTED_BY")]
    pub started_by: Option<String>,
}

impl RecordArgs {
    pub(crate) fn history(&self, global: &Global) -> PathBuf {
        self.history
            .clone()
            .unwrap_or_else(|| global.site.join(DEFAULT_PATH))
    }

    /// The history record of a run of `kind` started now, with the command line as typed.
    pub(crate) fn new_run(&self, global: &Global, kind: RunKind) -> NewRun {
        let command: Vec<String> = std::env::args().collect();
        let mut run = NewRun::by_current_user(kind, command.join(" "), site_commit(&global.site));
        if let Some(who) = &self.started_by {
            run.started_by = who.clone();
        }
        run
    }
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<Status> {
    let targets = catalogs(global, args.on.as_deref()).await?;
    let (catalogs, secrets) = (&targets.catalogs, targets.secrets.clone());
    let connector = connect::connector(global)?;
    let store = Store::open(&args.record.history(global))?.with_secrets(secrets.clone());
    let run = store.begin(&args.record.new_run(global, RunKind::Plan))?;
    let options = options(global, args.parallel, secrets);
    let started = SystemTime::now();
    let results = apply::plan_nodes(catalogs.clone(), connector, &options).await;
    match global.format {
        Format::Text => print!("{}", render::text(&results)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&render::json(&results))?),
    }
    let status = with_undiscovered(apply::plan_status(&results), &targets.undiscovered);
    record_plan(&store, run, &results, started)?;
    if let Some(out) = &args.out {
        let saved = SavedPlan::new(&global.site, catalogs, &results);
        let written = saved.and_then(|plan| plan.write(out));
        if let Err(err) = written {
            store.finish(run, RunStatus::Error, Some(&err.to_string()))?;
            return Err(err.into());
        }
        eprintln!(
            "plan saved to `{}`; apply exactly it with `tandem apply {}`",
            out.display(),
            out.display()
        );
    }
    store.finish(run, RunStatus::from_exit(status), None)?;
    Ok(status)
}

/// Records each node's planning result in run `run` (in sync as `unchanged`, with
/// changes as `changed`), and each proposed change as a one-line summary, never a value.
pub fn record_plan(
    store: &Store,
    run: crate::store::RunId,
    results: &[NodeResult],
    started: SystemTime,
) -> anyhow::Result<()> {
    for result in results {
        let (node, outcome, error) = match result {
            NodeResult::Planned(p) if p.is_empty() => (&p.node, Outcome::Unchanged, None),
            NodeResult::Planned(p) => (&p.node, Outcome::Changed, None),
            NodeResult::Unreachable { node, error, .. } => {
                (node, Outcome::Unreachable, Some(error))
            }
            NodeResult::HostKey { node, error, .. } => (node, Outcome::HostKey, Some(error)),
            NodeResult::Failed { node, error, .. } => (node, Outcome::Failed, Some(error)),
        };
        let mut record = NodeRun::new(
            node.clone(),
            Some(result.datacenter().clone()),
            outcome,
            started,
            started.elapsed().unwrap_or_default(),
        );
        if let Some(error) = error {
            record = record.with_error(error.clone());
        }
        store.record_node(run, &record)?;
        if let NodeResult::Planned(p) = result {
            for change in &p.changes {
                store.record_change(
                    run,
                    &ResourceChange {
                        node: p.node.clone(),
                        resource: change.id.clone(),
                        action: change.action.as_str().to_string(),
                        summary: format!("proposed: {}", change_summary(Some(change))),
                    },
                )?;
            }
        }
    }
    Ok(())
}

/// What a run operates on: the selected nodes' catalogs, the site's secrets, and the
/// datacenters whose discovery failed (their nodes are in no catalog, so the run must
/// not end as if everything was in sync).
pub(crate) struct Targets {
    pub catalogs: Vec<Catalog>,
    pub secrets: SecretStore,
    pub undiscovered: Vec<String>,
}

/// `status` made non-zero when a datacenter was not discovered: its nodes were neither
/// read nor converged, which is what "unreachable" means to an operator. Failed nodes
/// still win (exit 3), as they do over unreachable ones.
pub(crate) fn with_undiscovered(status: Status, undiscovered: &[String]) -> Status {
    if undiscovered.is_empty() || status == Status::Failed {
        return status;
    }
    for dc in undiscovered {
        eprintln!("error: not discovered: `{dc}`; its nodes were not touched");
    }
    Status::Unreachable
}

/// The site's selected nodes, compiled. Any error here comes before a host is touched.
pub(crate) async fn catalogs(global: &Global, on: Option<&str>) -> anyhow::Result<Targets> {
    let site = Site::load(&global.site)
        .with_context(|| format!("cannot load the site at `{}`", global.site.display()))?;
    let secrets = SecretStore::load(&global.site)?;
    let inventory = crate::inventory::resolve(global, &site).await?;
    for failure in &inventory.failures {
        eprintln!("error: {failure}");
    }
    let undiscovered = inventory
        .failed_datacenters()
        .into_iter()
        .map(|dc| dc.to_string())
        .collect();
    let selector = on.map(Selector::parse).transpose()?;
    // One compiler for all nodes: templates and everything nodes share are prepared once.
    let compiler = Compiler::new(&site)?;
    let mut catalogs = Vec::new();
    for node in inventory
        .nodes
        .iter()
        .filter(|n| selector.as_ref().is_none_or(|s| s.matches(n)))
    {
        catalogs.push(compiler.compile(node)?);
    }
    if catalogs.is_empty() {
        anyhow::bail!("no node matches `{}`", on.unwrap_or("*"));
    }
    Ok(Targets {
        catalogs,
        secrets,
        undiscovered,
    })
}

pub(crate) fn options(global: &Global, parallel: usize, secrets: SecretStore) -> ApplyOptions {
    ApplyOptions {
        parallel,
        command_timeout: global.command_timeout,
        secrets: std::sync::Arc::new(secrets),
        progress: match global.format {
            Format::Text => Progress::stderr(),
            Format::Json => Progress::Quiet,
        },
        ..ApplyOptions::default()
    }
}
