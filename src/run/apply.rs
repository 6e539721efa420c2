//! An apply run: take the site lock, load and compile the site (or a saved plan's
//! nodes), and converge through the rollout (`crate::apply::deploy`), recorded in the
//! run history.
//!
//! The site lock is taken first, before inventory and compilation, so a run that cannot
//! lock the site costs nothing and leaves no record. With a saved plan the site must be
//! unchanged since the plan (else the whole plan is refused), and each node is probed
//! again: a node whose resources no longer read as planned is refused by resource name
//! and left untouched.

use std::path::PathBuf;

use super::{with_undiscovered, RunError, Settings, Workspace};
use crate::apply::deploy::{self, DeployReport, RunContext};
use crate::apply::{ApplyOptions, Interrupt, Job, Progress};
use crate::exit::Status;
use crate::inventory::InventoryError;
use crate::lock::Wait;
use crate::manifest::source::SiteSource;
use crate::plan::saved::SavedPlan;
use crate::rollout;
use crate::store::RunKind;

/// What an apply run is asked to do.
#[derive(Debug, Clone)]
pub struct ApplyRequest {
    /// Node names, globs, `@role` or `dc:NAME`; all nodes when `None`.
    pub on: Option<String>,
    /// Apply exactly this saved plan.
    pub saved: Option<PathBuf>,
    /// Nodes worked on at once within a batch.
    pub parallel: usize,
    /// At once (naming the holder) or waiting for another run's site lock.
    pub lock_wait: Wait,
    pub interrupt: Interrupt,
    pub progress: Progress,
}

/// Something an operator watching the run should see while it happens.
pub enum Event<'a> {
    /// Waiting for the site lock that another run holds.
    Waiting(&'a str),
    /// The site's compiled folders differ from the commit that will be recorded.
    Dirty(&'a SiteSource),
    Rollout(rollout::Progress<'a>),
}

/// What an apply run did.
pub struct Applied {
    pub report: DeployReport,
    pub failures: Vec<InventoryError>,
    /// The saved plan that was applied, if any.
    pub saved: Option<SavedPlan>,
    pub source: SiteSource,
    /// What the fence step did, when nodes were fence pending (see `super::fence`).
    pub fence: Option<super::fence::Fenced>,
    /// 0 success, 3 failed, 4 unreachable or not discovered.
    pub status: Status,
}

/// Runs an apply of `settings`' site as `request` says; `on_event` sees lock waits and
/// the rollout's progress.
pub async fn apply(
    settings: Settings,
    request: ApplyRequest,
    mut on_event: impl FnMut(Event<'_>),
) -> Result<Applied, RunError> {
    let lock = deploy::lock_site(
        &settings.site,
        &settings.command,
        request.lock_wait,
        &request.interrupt,
        |msg| on_event(Event::Waiting(msg)),
    )
    .await?;
    let ws = Workspace::open(settings)?;
    if ws.source.dirty {
        on_event(Event::Dirty(&ws.source));
    }
    let (jobs, failures, saved) = match &request.saved {
        Some(path) => {
            let saved = SavedPlan::load(path)?;
            saved.check_site(ws.root())?;
            let names: Vec<&str> = saved.planned_nodes().map(|n| n.node.as_str()).collect();
            if names.is_empty() {
                return Err(RunError::EmptySavedPlan { path: path.clone() });
            }
            let targets = ws.targets(Some(&names.join(","))).await?;
            (saved.jobs(targets.catalogs)?, targets.failures, Some(saved))
        }
        None => {
            let targets = ws.targets(request.on.as_deref()).await?;
            let jobs = targets.catalogs.into_iter().map(Job::new).collect();
            (jobs, targets.failures, None)
        }
    };
    // One connection per node for the whole run: settle probe, apply, health checks.
    let connector = ws.settings.pooled_connector()?;
    let options = ApplyOptions {
        parallel: request.parallel,
        command_timeout: ws.settings.connection.command_timeout,
        secrets: ws.secrets.clone(),
        progress: request.progress,
        interrupt: request.interrupt,
        applied: crate::fact::applied::AppliedContext {
            run: None,
            commit: ws.source.commit.as_ref().map(|c| {
                if ws.source.dirty {
                    format!("{c}+dirty")
                } else {
                    c.clone()
                }
            }),
            epoch: ws.site.epoch,
            primary: ws
                .site
                .datacenters
                .iter()
                .find(|d| d.primary)
                .map(|d| d.name.clone()),
        },
        ..ApplyOptions::default()
    };
    let ctx = RunContext {
        datacenters: ws.site.datacenters.clone(),
        policy: ws.site.rollout.clone(),
        store_path: ws.settings.history_path(),
        run: ws.new_run(RunKind::Apply),
    };
    // Fence-pending nodes are demoted before anything else, once the epoch guard has
    // judged every node of the run (the guard of the run itself is in `deploy`).
    let fence = super::fence::before_apply(&ws, &jobs, connector.clone(), &options, &ctx).await?;
    let report = deploy::deploy(jobs, connector, &options, ctx, lock, |event| {
        on_event(Event::Rollout(event))
    })
    .await?;
    let status = with_undiscovered(report.exit_status(), !failures.is_empty());
    Ok(Applied {
        report,
        failures,
        saved,
        source: ws.source,
        fence,
        status,
    })
}
