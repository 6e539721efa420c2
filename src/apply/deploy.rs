//! One whole apply run, as `tandem apply` does it: take the site lock, record the run in
//! the history, order the nodes into the rollout's batches, apply batch by batch
//! through the executor, run health checks, and finish the run record (succeeded,
//! failed, halted or interrupted). The CLI compiles the catalogs and renders the report;
//! everything between lives here so that tests drive it with hand-built catalogs.
//!
//! Order of guarantees: the site lock ([`lock_site`]) is taken first, before inventory,
//! compilation and the history, so a run that cannot lock the site costs nothing and
//! leaves no record; nodes are recorded after each batch, so a
//! crash mid-run keeps what was done (the run itself then shows as interrupted).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::held::{release_all, HeldProbe};
use super::{apply_held, ApplyOptions, Job, NodeReport, Outcome, StepStatus};
use crate::datacenter::DatacenterSpec;
use crate::exit::Status;
use crate::lock::{LockError, SiteLock, Wait};
use crate::node::{Node, NodeName};
use crate::plan::render::NodeResult;
use crate::plan::stale::Settled;
use crate::rollout::{self, RolloutError, RolloutPolicy, RolloutReport};
use crate::store::{
    ChangeAction, NewRun, NodeRun, ResourceChange, RunId, RunStatus, Store, StoreError,
};
use crate::transport::Connector;

/// Where and how a run happens, besides its nodes.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub datacenters: Vec<DatacenterSpec>,
    pub policy: RolloutPolicy,
    /// The run history file.
    pub store_path: PathBuf,
    /// Who started the run, the command line, the commit.
    pub run: NewRun,
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot order the nodes into a rollout: {0}")]
    Rollout(RolloutError),
    #[error("interrupted while waiting for the site lock; nothing was done")]
    Interrupted,
    #[error(transparent)]
    Stale(#[from] crate::epoch::StaleEpoch),
}

// By hand: `#[from]` would make the rollout error the source as well, and a printed
// chain would show it twice.
impl From<RolloutError> for DeployError {
    fn from(err: RolloutError) -> DeployError {
        DeployError::Rollout(err)
    }
}

/// How often a waiting run retries the site lock (and checks for an interrupt).
const LOCK_POLL: Duration = Duration::from_millis(100);

/// Takes the site lock of `site_root` for `command`, as `wait` says: at once or failing
/// naming the holder, or retrying until the limit. A waiting run tells `on_wait` whom
/// it waits for (once), and gives up without doing anything when `interrupt` is
/// requested. Taken before inventory and compilation, so a refused run costs nothing.
pub async fn lock_site(
    site_root: &std::path::Path,
    command: &str,
    wait: Wait,
    interrupt: &crate::apply::Interrupt,
    mut on_wait: impl FnMut(&str),
) -> Result<SiteLock, DeployError> {
    let path = site_root.join(crate::lock::LOCK_FILE);
    let started = std::time::Instant::now();
    let mut told = false;
    loop {
        // Non-blocking: one `flock(LOCK_NB)` attempt and a small read of the label.
        let holder = match SiteLock::acquire_file(&path, command, Wait::FailFast) {
            Ok(lock) => return Ok(lock),
            Err(LockError::Held { holder, .. }) => holder,
            Err(other) => return Err(other.into()),
        };
        let limit = match wait {
            Wait::FailFast => return Err(LockError::Held { path, holder }.into()),
            Wait::For(limit) => limit,
        };
        if started.elapsed() >= limit {
            return Err(LockError::Timeout {
                path,
                waited: limit,
                holder,
            }
            .into());
        }
        if interrupt.is_requested() {
            return Err(DeployError::Interrupted);
        }
        if !told {
            told = true;
            let who = holder.map_or_else(|| "another run".to_string(), |h| h.to_string());
            on_wait(&format!(
                "waiting up to {}s for the site lock held by {who}",
                limit.as_secs()
            ));
        }
        tokio::time::sleep(LOCK_POLL).await;
    }
}

/// What a run did: every node's report (not-attempted nodes included) in rollout order,
/// the rollout's verdict, and whether a signal cut it short.
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    pub run: RunId,
    pub rollout: RolloutReport,
    pub nodes: Vec<NodeReport>,
    pub interrupted: bool,
    /// Run-history writes that failed after the run started. The nodes were applied
    /// all the same, so these are warnings: the report, not the history, is the truth.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history_errors: Vec<String>,
}

impl DeployReport {
    /// 3 when a node failed, was refused, not attempted (halt or interrupt); else 4 when
    /// some were unreachable; else 0.
    pub fn exit_status(&self) -> Status {
        self.rollout.exit_status()
    }

    pub fn nodes_with(&self, outcome: Outcome) -> Vec<&NodeName> {
        self.nodes
            .iter()
            .filter(|n| n.outcome == outcome)
            .map(|n| &n.node)
            .collect()
    }
}

/// Runs `jobs` under the site `lock` (see [`lock_site`]) and the rollout policy,
/// recording the run. `progress` gets the rollout's progress events (batches, health
/// checks, halts). The lock is released when the run is recorded as finished.
pub async fn deploy(
    jobs: Vec<Job>,
    connector: Arc<dyn Connector>,
    options: &ApplyOptions,
    ctx: RunContext,
    lock: SiteLock,
    mut progress: impl FnMut(rollout::Progress<'_>),
) -> Result<DeployReport, DeployError> {
    let store = Store::open(&ctx.store_path)?.with_secrets((*options.secrets).clone());
    store.interrupt_orphans(&lock)?;
    let run = store.begin(&ctx.run)?;
    let mut with_run = options.clone();
    with_run.applied.run = Some(run.0);
    let options = &with_run;
    options.progress.set_total(jobs.len());

    let order = |jobs: &[Job]| {
        let nodes: Vec<Node> = jobs.iter().map(|j| j.catalog.node.clone()).collect();
        rollout::plan(nodes, &ctx.datacenters, &ctx.policy)
    };
    let mut plan = order(&jobs);
    // Every node is probed before any node is applied (one probe each, in parallel):
    // the epoch guard must see all of them first, and refuses the run as a whole when
    // one carries a newer failover epoch than this checkout. Nodes in sync are done
    // there; batches, health checks and pauses are for the others.
    let all = jobs.len();
    let (jobs, settled, seen, mut held) = settle(jobs, connector.clone(), options).await;
    if let Err(stale) = crate::epoch::check(options.applied.epoch, &seen) {
        // Every held probe ends unused: nothing is sent to any node.
        release_all(held.into_values()).await;
        store.finish(run, RunStatus::Error, Some(&stale.to_string()))?;
        return Err(stale.into());
    }
    if plan.as_ref().is_ok_and(|p| p.batches.len() > 1) {
        options.progress.set_total(all + jobs.len());
        progress(rollout::Progress::Settled {
            in_sync: settled.len(),
            changing: jobs.len(),
        });
    }
    plan = order(&jobs);
    let (jobs, later) = keep_facts_for_first_batch(jobs, &mut held, plan.as_ref().ok());
    release_all(later).await;
    let plan = match plan {
        Ok(plan) => plan,
        Err(err) => {
            release_all(held.into_values()).await;
            store.finish(run, RunStatus::Error, Some(&err.to_string()))?;
            return Err(err.into());
        }
    };
    let started = SystemTime::now();
    let mut early_record_error = None;
    for report in &settled {
        if let Err(err) = record(&store, run, report, started) {
            early_record_error.get_or_insert(err);
        }
    }
    let mut by_node: HashMap<NodeName, Job> = jobs
        .into_iter()
        .map(|j| (j.catalog.node.name.clone(), j))
        .collect();
    let reports: RefCell<Vec<NodeReport>> = RefCell::default();
    let record_error: RefCell<Option<StoreError>> = RefCell::new(early_record_error);

    let rollout_report = rollout::run_until(
        plan,
        &ctx.policy,
        |batch: Vec<Node>| {
            let batch_jobs: Vec<(Job, Option<HeldProbe>)> = batch
                .iter()
                .filter_map(|n| by_node.remove(&n.name).map(|j| (j, held.remove(&n.name))))
                .collect();
            let connector = connector.clone();
            let (store, reports, record_error) = (&store, &reports, &record_error);
            async move {
                let started = SystemTime::now();
                let done = if options.interrupt.is_requested() {
                    let done = batch_jobs
                        .iter()
                        .map(|(j, _)| not_started(&j.catalog))
                        .collect();
                    release_all(batch_jobs.into_iter().filter_map(|(_, h)| h)).await;
                    done
                } else {
                    apply_held(batch_jobs, connector, options).await
                };
                for report in &done {
                    if let Err(err) = record(store, run, report, started) {
                        record_error.borrow_mut().get_or_insert(err);
                    }
                }
                let outcomes = done.iter().map(|r| (r.node.clone(), r.outcome)).collect();
                reports.borrow_mut().extend(done);
                outcomes
            }
        },
        |node: Node, command: String, timeout: Duration| {
            let connector = connector.clone();
            async move {
                if options.interrupt.is_requested() {
                    return Ok(());
                }
                command_health(&*connector, &node, &command, timeout).await
            }
        },
        &mut progress,
        || options.interrupt.is_requested(),
    )
    .await;

    let mut reports: HashMap<NodeName, NodeReport> = reports
        .into_inner()
        .into_iter()
        .map(|r| (r.node.clone(), r))
        .collect();
    let rolled: Vec<NodeReport> = rollout_report
        .nodes
        .iter()
        .map(|n| match reports.remove(&n.node) {
            Some(report) => report,
            None => {
                let mut r = not_started_named(n.node.clone(), n.datacenter.clone());
                r.error = Some(match &rollout_report.halt {
                    Some(halt) => format!("not attempted: {halt}"),
                    None => "not attempted: the run was interrupted".into(),
                });
                r
            }
        })
        .collect();
    let nodes: Vec<NodeReport> = settled.into_iter().chain(rolled).collect();
    // Interrupted when the signal left work undone; a signal during the last node's
    // apply changes nothing, and the run ends as its outcomes say.
    let interrupted = options.interrupt.is_requested()
        && nodes
            .iter()
            .any(|n| matches!(n.outcome, Outcome::NotAttempted | Outcome::Interrupted));
    let mut history_errors: Vec<String> = record_error
        .into_inner()
        .into_iter()
        .map(|e| e.to_string())
        .collect();
    if let Err(err) = store.finish_rollout(run, &rollout_report) {
        history_errors.push(err.to_string());
    }
    if interrupted {
        let not_attempted = rollout_report.not_attempted().len();
        let abandoned = nodes
            .iter()
            .filter(|n| n.outcome == Outcome::Interrupted)
            .count();
        let message = if abandoned == 0 {
            format!(
                "interrupted by a signal: nodes in flight finished, {not_attempted} nodes not attempted"
            )
        } else {
            format!(
                "interrupted by a signal: {abandoned} nodes in flight abandoned after the {:?} grace period, {not_attempted} nodes not attempted",
                options.interrupt.grace()
            )
        };
        if let Err(err) = store.finish(run, RunStatus::Interrupted, Some(&message)) {
            history_errors.push(err.to_string());
        }
    }
    drop(lock);
    Ok(DeployReport {
        run,
        rollout: rollout_report,
        nodes,
        interrupted,
        history_errors,
    })
}

/// Probes every job (a saved plan's included, for the guard, on the machine it read)
/// and plans the ones without a saved plan's expectations; those that read in sync are
/// done (reported unchanged), the others (changes pending, or the plan failed: the
/// rollout retries and counts them) are returned to be rolled out, with what their
/// probe read (`Job::probed`), and with what every probe read of the nodes' failover
/// state. A saved plan's job always goes through the rollout, where its expectations
/// are checked.
async fn settle(
    jobs: Vec<Job>,
    connector: Arc<dyn Connector>,
    options: &ApplyOptions,
) -> (
    Vec<Job>,
    Vec<NodeReport>,
    Vec<crate::epoch::Seen>,
    HashMap<NodeName, HeldProbe>,
) {
    let results = super::probe_jobs(jobs.clone(), connector, options, true).await;
    let mut settled = Vec::new();
    let mut pending = Vec::new();
    let mut seen = Vec::new();
    let mut held = HashMap::new();
    for (mut job, mut probed) in jobs.into_iter().zip(results) {
        if let Some(h) = probed.held.take() {
            held.insert(job.catalog.node.name.clone(), h);
        }
        // Leftovers of a killed run are worth the apply script, which removes them.
        let clean = probed.seen.as_ref().is_some_and(|s| !s.leftovers);
        seen.extend(probed.seen);
        match probed.result {
            NodeResult::Planned(p)
                if p.is_empty() && job.expect.is_none() && !p.record_stale && clean =>
            {
                let mut report = not_started(&job.catalog);
                report.outcome = Outcome::Unchanged;
                report.error = None;
                report.round_trips = 1;
                report.elapsed_ms = probed.took.as_millis();
                settled.push(report);
            }
            _ => {
                let took = probed.took;
                job.probed = probed.facts.map(|facts| Settled {
                    facts: Arc::new(facts),
                    took,
                });
                pending.push(job);
            }
        }
    }
    (pending, settled, seen, held)
}

/// Facts from settling, and the held probes, are reused by the nodes of the rollout's
/// first batch, which start at once; later batches follow health checks and pauses,
/// so their nodes are probed again when their turn comes (and neither their facts nor
/// their commands are held meanwhile): their held probes come back, to be released.
fn keep_facts_for_first_batch(
    mut jobs: Vec<Job>,
    held: &mut HashMap<NodeName, HeldProbe>,
    plan: Option<&rollout::RolloutPlan>,
) -> (Vec<Job>, Vec<HeldProbe>) {
    let first: std::collections::HashSet<&NodeName> = plan
        .and_then(|p| p.batches.first())
        .map(|b| b.nodes.iter().map(|n| &n.name).collect())
        .unwrap_or_default();
    let mut later = Vec::new();
    for job in &mut jobs {
        if !first.contains(&job.catalog.node.name) {
            job.probed = None;
            later.extend(held.remove(&job.catalog.node.name));
        }
    }
    (jobs, later)
}

fn not_started(catalog: &crate::catalog::Catalog) -> NodeReport {
    not_started_named(catalog.node.name.clone(), catalog.node.datacenter.clone())
}

fn not_started_named(node: NodeName, datacenter: crate::node::DatacenterName) -> NodeReport {
    NodeReport {
        node,
        datacenter,
        outcome: Outcome::NotAttempted,
        resources: Vec::new(),
        unsynced: Vec::new(),
        refused: Vec::new(),
        error: Some("not started: the run was interrupted".into()),
        round_trips: 0,
        elapsed_ms: 0,
    }
}

/// The node's outcome and each resource step (never a value: ids, actions, statuses,
/// and error lines the executor already redacted).
fn record(
    store: &Store,
    run: RunId,
    report: &NodeReport,
    batch_started: SystemTime,
) -> Result<(), StoreError> {
    let mut node = NodeRun::new(
        report.node.clone(),
        Some(report.datacenter.clone()),
        report.outcome,
        batch_started,
        Duration::from_millis(u64::try_from(report.elapsed_ms).unwrap_or(u64::MAX)),
    );
    if let Some(err) = &report.error {
        node = node.with_error(err.clone());
    }
    store.record_node(run, &node)?;
    for step in &report.resources {
        let status = match step.status {
            StepStatus::Applied => "applied",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        };
        let summary = match &step.error {
            Some(err) => format!("{status}: {err}"),
            None => status.to_string(),
        };
        store.record_change(
            run,
            &ResourceChange {
                node: report.node.clone(),
                resource: step.id.clone(),
                action: step.action.into(),
                summary,
            },
        )?;
    }
    for id in &report.refused {
        store.record_change(
            run,
            &ResourceChange {
                node: report.node.clone(),
                resource: id.clone(),
                action: ChangeAction::Refused,
                summary: "state changed since the saved plan; node left untouched".into(),
            },
        )?;
    }
    Ok(())
}

/// A command health check: exit status 0 on the node is healthy.
async fn command_health(
    connector: &dyn Connector,
    node: &Node,
    command: &str,
    timeout: Duration,
) -> Result<(), String> {
    let mut session = connector
        .connect(node)
        .await
        .map_err(|err| err.to_string())?;
    let out = session
        .exec(command, b"", timeout)
        .await
        .map_err(|err| err.to_string())?;
    if out.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.trim().lines().last().unwrap_or("").to_string();
    Err(match out.status {
        Some(code) => format!("`{command}` exited with status {code}: {last}"),
        None => format!("`{command}` was killed: {last}"),
    })
}
