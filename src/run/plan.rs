//! A plan run: read every selected node's state (one connection and one probe each),
//! compute what would change, record the run in the history (each proposed change as a
//! one-line summary, never a value), and optionally save the plan for `apply FILE`.

use std::path::PathBuf;
use std::time::SystemTime;

use super::{with_undiscovered, RunError, Targets, Workspace};
use crate::apply::{self, ApplyOptions, Progress};
use crate::catalog::Catalog;
use crate::exit::Status;
use crate::outcome::Outcome;
use crate::plan::render::NodeResult;
use crate::plan::saved::SavedPlan;
use crate::plan::stale::change_summary;
use crate::store::{NodeRun, ResourceChange, RunId, RunKind, RunStatus, Store};

/// What a plan run is asked to do.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    /// Node names, globs, `@role` or `dc:NAME`, comma separated; all nodes when `None`.
    pub on: Option<String>,
    /// Save the plan to this file.
    pub out: Option<PathBuf>,
    /// Nodes worked on at once.
    pub parallel: usize,
    pub progress: Progress,
}

/// What a plan run found.
pub struct Planned {
    pub run: RunId,
    pub catalogs: Vec<Catalog>,
    pub results: Vec<NodeResult>,
    pub failures: Vec<crate::inventory::InventoryError>,
    /// 0 in sync, 2 changes pending, 3 failed, 4 unreachable or not discovered.
    pub status: Status,
}

/// Plans the selected nodes of `ws` and records the run.
pub async fn plan(ws: &Workspace, request: PlanRequest) -> Result<Planned, RunError> {
    let Targets { catalogs, failures } = ws.targets(request.on.as_deref()).await?;
    let connector = ws.settings.connector()?;
    let store = ws.store()?;
    let run = store.begin(&ws.new_run(RunKind::Plan))?;
    let options = ApplyOptions {
        parallel: request.parallel,
        command_timeout: ws.settings.connection.command_timeout,
        secrets: ws.secrets.clone(),
        progress: request.progress,
        ..ApplyOptions::default()
    };
    let started = SystemTime::now();
    let (results, seen): (Vec<_>, Vec<_>) =
        apply::plan_nodes_seen(catalogs.clone(), connector, &options)
            .await
            .into_iter()
            .unzip();
    // A checkout older than the last promote would plan the failover's undoing.
    if let Err(stale) = crate::epoch::check(ws.site.epoch, seen.iter().flatten()) {
        store.finish(run, RunStatus::Error, Some(&stale.to_string()))?;
        return Err(crate::apply::deploy::DeployError::from(stale).into());
    }
    let status = with_undiscovered(apply::plan_status(&results), !failures.is_empty());
    record_plan(&store, run, &results, started)?;
    if let Some(out) = &request.out {
        let written = SavedPlan::new(&ws.source, &catalogs, &results).and_then(|p| p.write(out));
        if let Err(err) = written {
            store.finish(run, RunStatus::Error, Some(&err.to_string()))?;
            return Err(err.into());
        }
    }
    store.finish(run, RunStatus::from_exit(status), None)?;
    Ok(Planned {
        run,
        catalogs,
        results,
        failures,
        status,
    })
}

/// Records each node's planning result in run `run` (in sync as `unchanged`, with
/// changes as `changed`), and each proposed change as a one-line summary, never a value.
pub fn record_plan(
    store: &Store,
    run: RunId,
    results: &[NodeResult],
    started: SystemTime,
) -> Result<(), RunError> {
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
                        action: change.action.into(),
                        summary: format!("proposed: {}", change_summary(Some(change))),
                    },
                )?;
            }
        }
    }
    Ok(())
}
