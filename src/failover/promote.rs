//! `tandem promote DC`, first half: take the site lock, load the site, and find out
//! whether the promote may go ahead and what it will do, without changing anything.
//!
//! Preflight: every datacenter was discovered; the target is a standby with nodes; each
//! of them is reachable, in sync with its catalog (no pending change, no drift) and
//! passes the role's health check; no node carries an epoch newer than the promoted
//! one (the guard; nodes at the promoted epoch are a stopped attempt being retried); the working tree is clean (the promote commits `site.toml`). Any
//! failure refuses the promote with the reason per node. The plan: the site compiled as
//! if `primary` had moved ([`super::promoted_site`]) gives every node its new catalog;
//! the old primary's nodes are planned against it (the demote step, with diffs), then
//! the target's (the promote step). Old-primary nodes that cannot be reached stop the
//! promote here unless the operator said `--old-primary-unreachable`; they become fence
//! pending. The plan is recorded as a plan run, the only record a dry run leaves.
//!
//! [`Prepared::execute`] (in `execute`) carries it out.

use std::time::SystemTime;

use super::checks::{self, NotReady};
use super::guard::{self, Seen};
use crate::apply::{ApplyOptions, Interrupt, Progress};
use crate::catalog::{Catalog, Compiler};
use crate::lock::{SiteLock, Wait};
use crate::manifest::Site;
use crate::node::{DatacenterName, Node};
use crate::plan::render::NodeResult;
use crate::run::{RunError, Settings, Workspace};
use crate::store::{RunId, RunKind, RunStatus};

/// What a promote is asked to do.
#[derive(Debug, Clone)]
pub struct PromoteRequest {
    pub target: String,
    /// Why, as the history and the commit record it.
    pub reason: String,
    /// Go ahead although some old-primary nodes cannot be reached (they become fence
    /// pending).
    pub old_primary_unreachable: bool,
    /// Push the commit to this branch of `origin` (`None`: commit only).
    pub push: Option<String>,
    pub parallel: usize,
    pub lock_wait: Wait,
    pub progress: Progress,
    pub interrupt: Interrupt,
}

#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("no datacenter `{0}` in `site.toml`")]
    NoDatacenter(String),
    #[error("`{0}` is already the primary datacenter; nothing to promote")]
    AlreadyPrimary(DatacenterName),
    #[error("promote refused, nothing was changed: {}", refusal(.reasons))]
    Refused { reasons: Vec<String> },
    #[error(transparent)]
    Stale(#[from] guard::StaleEpoch),
    #[error(transparent)]
    Deploy(#[from] crate::apply::deploy::DeployError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    SiteFile(#[from] super::site_file::SiteFileError),
}

fn refusal(reasons: &[String]) -> String {
    if reasons.len() == 1 {
        return reasons[0].clone();
    }
    let mut text = String::new();
    for reason in reasons {
        text.push_str("\n  ");
        text.push_str(reason);
    }
    text
}

/// One node's part in a step: its catalog after the promote and its plan against it.
#[derive(Debug, Clone)]
pub struct StepNode {
    pub catalog: Catalog,
    pub plan: NodeResult,
}

/// A promote checked and planned, holding the site lock until it is executed or
/// dropped.
pub struct Prepared {
    pub(super) lock: SiteLock,
    pub(super) ws: Workspace,
    pub(super) promoted: Site,
    pub(super) request: PromoteRequest,
    pub from: DatacenterName,
    pub to: DatacenterName,
    /// The epoch after the promote.
    pub epoch: u64,
    /// The old primary's reachable nodes, gaining the standby overlay.
    pub demote: Vec<StepNode>,
    /// The old primary's nodes that could not be reached (fence pending once promoted).
    pub fence: Vec<(Node, String)>,
    /// The target's nodes, losing the standby overlay.
    pub promote: Vec<StepNode>,
    /// The plan run recorded in the history.
    pub plan_run: RunId,
}

impl Prepared {
    pub fn demote_plans(&self) -> Vec<NodeResult> {
        self.demote.iter().map(|s| s.plan.clone()).collect()
    }

    pub fn promote_plans(&self) -> Vec<NodeResult> {
        self.promote.iter().map(|s| s.plan.clone()).collect()
    }
}

/// The options every step's executor runs with: the promoted site's epoch and primary
/// are what each apply writes to its node (and what the guard compares with).
pub(super) fn options(ws: &Workspace, site: &Site, request: &PromoteRequest) -> ApplyOptions {
    let options = ApplyOptions {
        parallel: request.parallel,
        command_timeout: ws.settings.connection.command_timeout,
        secrets: ws.secrets.clone(),
        progress: request.progress.clone(),
        interrupt: request.interrupt.clone(),
        ..ApplyOptions::default()
    };
    super::with_applied(options, site, &ws.source)
}

/// Checks and plans the promote `request` describes; changes nothing on any node.
pub async fn prepare(
    settings: Settings,
    request: PromoteRequest,
) -> Result<Prepared, PromoteError> {
    let lock = crate::apply::deploy::lock_site(
        &settings.site,
        &settings.command,
        request.lock_wait,
        &request.interrupt,
        |_| {},
    )
    .await?;
    let ws = Workspace::open(settings)?;
    let to = DatacenterName::new(request.target.clone())
        .ok()
        .filter(|name| ws.site.datacenter(name).is_some())
        .ok_or_else(|| PromoteError::NoDatacenter(request.target.clone()))?;
    if ws.site.datacenter(&to).is_some_and(|dc| dc.primary) {
        return Err(PromoteError::AlreadyPrimary(to));
    }
    let from = super::primary_of(&ws.site)
        .cloned()
        .ok_or_else(|| PromoteError::NoDatacenter("(primary)".into()))?;
    let mut reasons = Vec::new();
    if ws.source.dirty {
        reasons.push(format!(
            "the site has uncommitted changes ({}): a promote commits `manifests/site.toml` and must start from a clean commit",
            ws.source.describe()
        ));
    }
    let targets = ws.targets(None).await?;
    for failure in &targets.failures {
        reasons.push(format!("not every datacenter was discovered: {failure}"));
    }
    let promoted = super::promoted_site(&ws.site, &to);
    let compiler =
        Compiler::with_secrets(&promoted, ws.secrets.clone(), true).map_err(RunError::from)?;
    let mut now_target = Vec::new();
    let mut old_new = Vec::new();
    let mut target_new = Vec::new();
    let mut others = Vec::new();
    for catalog in targets.catalogs {
        let after = compiler.compile(&catalog.node).map_err(RunError::from)?;
        if catalog.node.datacenter == to {
            now_target.push(catalog);
            target_new.push(after);
        } else if catalog.node.datacenter == from {
            old_new.push(after);
        } else {
            others.push(catalog);
        }
    }
    drop(compiler);
    if now_target.is_empty() {
        reasons.push(format!("datacenter `{to}` has no nodes"));
    }
    let connector = ws.settings.connector()?;
    let now_options = options(&ws, &ws.site, &request);
    let new_options = options(&ws, &promoted, &request);

    // The target as it is now: reachable, in sync, healthy.
    let (not_ready, _) = checks::check_nodes(
        &now_target,
        connector.clone(),
        &now_options,
        &ws.site.rollout,
    )
    .await;
    reasons.extend(not_ready.iter().map(|n| format!("target node {n}")));
    // Both steps' plans against the promoted catalogs.
    let old_plans =
        crate::apply::plan_nodes_seen(old_new.clone(), connector.clone(), &new_options).await;
    let new_plans =
        crate::apply::plan_nodes_seen(target_new.clone(), connector.clone(), &new_options).await;
    let seen: Vec<&Seen> = old_plans
        .iter()
        .chain(&new_plans)
        .filter_map(|(_, seen)| seen.as_ref())
        .collect();
    // Nodes already at the promoted epoch were changed by an earlier attempt of this
    // same promote that stopped (a demote step that failed leaves the site.toml as it
    // was): retrying it converges them to the same state. Anything newer is a promote
    // this checkout does not know.
    guard::check(promoted.epoch, seen)?;

    let mut demote = Vec::new();
    let mut fence = Vec::new();
    for (catalog, (plan, _)) in old_new.into_iter().zip(old_plans) {
        match &plan {
            NodeResult::Unreachable { error, .. } => {
                fence.push((catalog.node.clone(), error.clone()))
            }
            NodeResult::Planned(_) => demote.push(StepNode { catalog, plan }),
            _ => reasons.push(format!(
                "old primary node {}",
                NotReady {
                    node: catalog.node.name.clone(),
                    datacenter: catalog.node.datacenter.clone(),
                    reason: checks::not_in_sync(&plan).unwrap_or_default(),
                }
            )),
        }
    }
    if !fence.is_empty() && !request.old_primary_unreachable {
        for (node, error) in &fence {
            reasons.push(format!(
                "old primary node `{}` ({}) is unreachable: {error}; it cannot be demoted first (pass --old-primary-unreachable if you know it is down or cut off: it is then fence pending, and demoted before anything else when it returns)",
                node.name, node.datacenter
            ));
        }
    }
    let promote: Vec<StepNode> = target_new
        .into_iter()
        .zip(new_plans)
        .map(|(catalog, (plan, _))| StepNode { catalog, plan })
        .collect();
    // The plan run: what a dry run leaves, and what the promote's runs refer to.
    let store = ws.store()?;
    let run = store.begin(&ws.new_run(RunKind::Plan))?;
    let plans: Vec<NodeResult> = demote
        .iter()
        .chain(&promote)
        .map(|s| s.plan.clone())
        .collect();
    crate::run::plan::record_plan(&store, run, &plans, SystemTime::now())?;
    if !reasons.is_empty() {
        store.finish(run, RunStatus::Error, Some(&refusal(&reasons)))?;
        return Err(PromoteError::Refused { reasons });
    }
    store.finish(run, RunStatus::Pending, None)?;
    let epoch = promoted.epoch;
    Ok(Prepared {
        lock,
        ws,
        promoted,
        request,
        from,
        to,
        epoch,
        demote,
        fence,
        promote,
        plan_run: run,
    })
}
