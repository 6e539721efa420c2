//! The scheduled audit: at the configured interval the worker plans the whole site,
//! read-only, from a clean checkout of the last deployed commit, and records it in the
//! history as a plan run started by `audit (tandem serve)`, so drift on the nodes shows
//! up without a push. [`plan_commit`] is the reusable part: the drift report calls it
//! with its own settings and gets the [`Planned`] results to report on.

use std::time::Instant;

use super::worker::Worker;
use crate::apply::Progress;
use crate::run::{self, PlanRequest, Planned, RunError, Settings, Workspace};
use crate::store::RunId;

/// Who the history says started an audit.
pub const AUDIT_STARTER: &str = "audit (tandem serve)";

/// A read-only plan of every node of the site at `settings.site` (a checkout of one
/// commit), recorded as started by `started_by`. Touches no node's state.
pub async fn plan_commit(
    mut settings: Settings,
    started_by: &str,
    parallel: usize,
) -> Result<Planned, RunError> {
    settings.started_by = Some(started_by.to_string());
    let ws = Workspace::open(settings)?;
    run::plan(
        &ws,
        PlanRequest {
            on: None,
            out: None,
            parallel,
            progress: Progress::default(),
        },
    )
    .await
}

/// One audit by the daemon's worker; `None` when nothing was deployed yet.
pub async fn audit(worker: &Worker) -> anyhow::Result<Option<RunId>> {
    let store = crate::store::Store::open(&worker.settings.history_path())?;
    let Some(commit) = store.last_deployed_commit()? else {
        eprintln!("serve: audit: nothing deployed yet, nothing to audit");
        return Ok(None);
    };
    let state = std::fs::canonicalize(worker.settings.site.join(".tandem"))?;
    let checkouts = worker.config.state_dir.join("checkouts");
    let checkout = match worker.mirror.checkout(&commit, &checkouts, &state) {
        Ok(path) => path,
        Err(_) => {
            // The deployed commit may predate the mirror: fetch, then try once more.
            let mirror = worker.mirror.clone();
            let branch = worker.config.branch.clone();
            tokio::task::spawn_blocking(move || mirror.fetch(&branch)).await??;
            worker.mirror.checkout(&commit, &checkouts, &state)?
        }
    };
    let mut settings = worker.settings.clone();
    settings.history = Some(worker.settings.history_path());
    settings.connection.known_hosts = Some(worker.settings.known_hosts_path());
    settings.site = checkout;
    settings.command = format!("tandem serve: audit of {}", super::worker::short(&commit));
    let started = Instant::now();
    let planned = plan_commit(settings, AUDIT_STARTER, worker.config.parallel).await?;
    worker.finished(&store, planned.run, started)?;
    Ok(Some(planned.run))
}
