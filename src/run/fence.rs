//! A recovered old primary rejoins as a standby, first. A promote with
//! `--old-primary-unreachable` leaves the nodes it could not demote fence pending in the
//! store (see `failover`); the next apply run (`run::apply` calls [`before_apply`]
//! once its targets are compiled, before its own rollout) demotes every fence-pending node that
//! is reachable again before it does anything else on the site, and reports that it did.
//!
//! Order: every target of the run and every fence-pending node is probed first, and the
//! epoch guard judges all of them, so a stale checkout cannot "demote" a fence-pending
//! node into a primary again. Then the reachable fence-pending nodes are converged to
//! their catalogs (the site says their datacenter is a standby), verified by the
//! executor's own re-probe, and cleared from the store. Those still unreachable stay
//! pending; the run goes on with the others.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::{RunError, Workspace};
use crate::apply::deploy::{self, DeployError, DeployReport, RunContext};
use crate::apply::{ApplyOptions, Job};
use crate::epoch as guard;
use crate::lock::{SiteLock, Wait};
use crate::node::NodeName;
use crate::outcome::Outcome;
use crate::plan::render::NodeResult;
use crate::transport::Connector;

/// What the fence step of a run did.
#[derive(Debug, Clone, Serialize)]
pub struct Fenced {
    /// The fence step's own apply run; `None` when no fence-pending node was reachable.
    pub report: Option<DeployReport>,
    /// Demoted and no longer fence pending.
    pub cleared: Vec<NodeName>,
    /// Still fence pending (unreachable again, or their apply failed).
    pub pending: Vec<NodeName>,
}

impl Fenced {
    /// One line for the run's output.
    pub fn line(&self) -> String {
        let names = |v: &[NodeName]| {
            v.iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut text = String::new();
        if !self.cleared.is_empty() {
            text.push_str(&format!(
                "fence pending: demoted first, before anything else: {}",
                names(&self.cleared)
            ));
        }
        if !self.pending.is_empty() {
            if !text.is_empty() {
                text.push_str("; ");
            }
            text.push_str(&format!(
                "still fence pending (not demoted): {}",
                names(&self.pending)
            ));
        }
        text
    }
}

/// Demotes the reachable fence-pending nodes before the run's own work, after the
/// epoch guard has judged every node of the run. `None` when nothing is fence pending.
pub async fn before_apply(
    ws: &Workspace,
    jobs: &[Job],
    connector: Arc<dyn Connector>,
    options: &ApplyOptions,
    ctx: &RunContext,
) -> Result<Option<Fenced>, RunError> {
    let store = ws.store()?;
    let pending = store.fence_pending()?;
    if pending.is_empty() {
        return Ok(None);
    }
    let names: BTreeSet<&str> = pending.iter().map(|p| p.node.as_str()).collect();
    let mut catalogs: Vec<_> = jobs.iter().map(|j| j.catalog.clone()).collect();
    let unselected: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !catalogs.iter().any(|c| c.node.name.as_str() == *n))
        .collect();
    if !unselected.is_empty() {
        // Fence-pending nodes go first even when the run did not select them.
        match ws.targets(Some(&unselected.join(","))).await {
            Ok(targets) => catalogs.extend(targets.catalogs),
            Err(RunError::NoNodes { .. }) => {}
            Err(err) => return Err(err),
        }
    }
    let results = crate::apply::plan_nodes_seen(catalogs.clone(), connector.clone(), options).await;
    let seen: Vec<&guard::Seen> = results.iter().filter_map(|(_, s)| s.as_ref()).collect();
    guard::check(options.applied.epoch, seen).map_err(DeployError::from)?;
    let fence_jobs: Vec<Job> = catalogs
        .into_iter()
        .zip(&results)
        .filter(|(c, (r, _))| {
            names.contains(c.node.name.as_str()) && !matches!(r, NodeResult::Unreachable { .. })
        })
        .map(|(c, _)| Job::new(c))
        .collect();
    let mut still: Vec<NodeName> = pending
        .iter()
        .filter(|p| !fence_jobs.iter().any(|j| j.catalog.node.name == p.node))
        .map(|p| p.node.clone())
        .collect();
    if fence_jobs.is_empty() {
        still.sort();
        return Ok(Some(Fenced {
            report: None,
            cleared: Vec::new(),
            pending: still,
        }));
    }
    let mut ctx = ctx.clone();
    ctx.run.command = format!("{} (fence-pending demotion)", ctx.run.command);
    let step_lock = SiteLock::acquire_file(
        &ws.settings.site.join(".tandem/fence-step.lock"),
        &ws.settings.command,
        Wait::For(Duration::from_secs(5)),
    )
    .map_err(DeployError::from)?;
    let report = deploy::deploy(fence_jobs, connector, options, ctx, step_lock, |_| {}).await?;
    let mut cleared = Vec::new();
    for node in &report.nodes {
        if matches!(node.outcome, Outcome::Changed | Outcome::Unchanged) {
            store.clear_fence_pending(&node.node)?;
            cleared.push(node.node.clone());
        } else {
            still.push(node.node.clone());
        }
    }
    still.sort();
    Ok(Some(Fenced {
        report: Some(report),
        cleared,
        pending: still,
    }))
}
