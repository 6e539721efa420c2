//! The executor: per node, connect once, probe, plan, and (for apply) run one batched
//! script that changes what differs and re-probes, all under the node lock. Nodes run in
//! parallel, bounded by a semaphore. `plan_nodes` and `apply_nodes` take a set of nodes,
//! so the rollout loop calls them once per batch.
//!
//! Outcomes are the one [`crate::outcome::Outcome`] the rollout and the run history use.
//! Exit status precedence (`exit_status`): some node failed, had its host key refused or
//! was not attempted (3) over some unreachable (4) over changes pending in a plan (2)
//! over success (0): the code names the most serious thing an operator must look at
//! first. An apply that is interrupted starts no new node (see [`Interrupt`]).

pub mod deploy;
pub mod held;
pub mod interrupt;
pub mod progress;
pub mod render;
mod report;
pub mod script;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::catalog::Catalog;
use crate::fact::applied::{self, AppliedContext};
use crate::fact::script::PackageCache;
use crate::fact::{FactError, Mark, NodeFacts, Section, Token};
use crate::node::NodeName;
use crate::path::RemotePath;
use crate::plan::render::NodeResult;
use crate::plan::{self, NodePlan};
use crate::secret::SecretStore;
use crate::transport::{Connector, Session, TransportError};
pub use held::HeldProbe;

pub use crate::outcome::Outcome;
pub use crate::plan::stale::{change_summary, Expect, Job, StaleResource};
use crate::plan::stale::{stale_list, stale_resources};
pub use interrupt::Interrupt;
pub use progress::Progress;
pub use report::{exit_status, plan_status, NodeReport, ResourceReport, StepStatus};
use report::{node_failure, outcome_of};

/// How the executor runs.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Nodes worked on at once.
    pub parallel: usize,
    /// Per remote command; a command running longer is killed.
    pub command_timeout: Duration,
    /// How long an apply waits for another apply's node lock.
    pub lock_wait: Duration,
    /// tandem's state directory on the node (lock, backups).
    pub state_dir: RemotePath,
    /// Known secret values, redacted from any diff that would show them.
    pub secrets: Arc<SecretStore>,
    pub progress: Progress,
    /// Once requested, no node that has not started yet is started.
    pub interrupt: Interrupt,
    /// What each apply records in the node state file (see `fact::applied`).
    pub applied: AppliedContext,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            parallel: 50,
            command_timeout: Duration::from_secs(600),
            lock_wait: Duration::from_secs(30),
            // A literal absolute path without `..`: parsing cannot fail.
            state_dir: RemotePath::parse("/var/lib/tandem").unwrap_or_else(|_| unreachable!()),
            secrets: Arc::default(),
            progress: Progress::Quiet,
            interrupt: Interrupt::default(),
            applied: AppliedContext::default(),
        }
    }
}

/// Why a node could not be planned or applied.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{node}: {error}")]
    Facts { node: NodeName, error: FactError },
    #[error("{node}: the probe exited with status {status:?}: {stderr}")]
    Probe {
        node: NodeName,
        status: Option<i32>,
        stderr: String,
    },
    #[error(
        "{node}: node lock `{lock}` is held by another apply ({holder}); gave up after {waited:?}"
    )]
    Locked {
        node: NodeName,
        lock: String,
        holder: String,
        waited: Duration,
    },
    #[error("{node}: apply script stopped: {reason}")]
    Script { node: NodeName, reason: String },
    #[error("{node}: refused, the saved plan is stale: {}; nothing was changed on this node", stale_list(.resources))]
    Stale {
        node: NodeName,
        resources: Vec<StaleResource>,
    },
    #[error(
        "{node}: refused, not the machine the saved plan read: {what}; nothing was sent to it"
    )]
    NotPlannedMachine { node: NodeName, what: String },
}

/// Plans every node: one connection and one probe round trip each.
pub async fn plan_nodes(
    catalogs: Vec<Catalog>,
    connector: Arc<dyn Connector>,
    options: &ApplyOptions,
) -> Vec<NodeResult> {
    plan_nodes_seen(catalogs, connector, options)
        .await
        .into_iter()
        .map(|(result, _)| result)
        .collect()
}

/// [`plan_nodes`], keeping what each probe read of the node's failover state (`None`
/// for a node that could not be probed), for the epoch guard (`crate::epoch`).
pub async fn plan_nodes_seen(
    catalogs: Vec<Catalog>,
    connector: Arc<dyn Connector>,
    options: &ApplyOptions,
) -> Vec<(NodeResult, Option<crate::epoch::Seen>)> {
    let jobs = catalogs.into_iter().map(Job::new).collect();
    probe_jobs(jobs, connector, options, false)
        .await
        .into_iter()
        .map(|p| (p.result, p.seen))
        .collect()
}

/// What probing one job's node read: its plan (or why there is none), its failover
/// state for the epoch guard, and the facts, which an apply that follows at once reuses
/// (`Job::probed`). Only `result` for a node that could not be probed.
pub struct Probed {
    pub result: NodeResult,
    pub seen: Option<crate::epoch::Seen>,
    pub facts: Option<NodeFacts>,
    /// The probe's command, held open on the node for its apply (see [`held`]): only
    /// when asked to hold, for a node with something to do.
    pub held: Option<HeldProbe>,
    /// From connecting to the plan made (or the failure): the node's own time.
    pub took: Duration,
}

/// Probes and plans every job's node, one connection and one round trip each. A saved
/// plan's job is probed only on the machine the plan read (address, then host key),
/// as its apply would be; any other machine is left alone and planned as refused.
/// With `hold` (an apply's settling), a node with something to do keeps its probe's
/// command open for the apply script ([`held`]); the others end theirs at once.
pub async fn probe_jobs(
    jobs: Vec<Job>,
    connector: Arc<dyn Connector>,
    options: &ApplyOptions,
    hold: bool,
) -> Vec<Probed> {
    options.progress.set_total(jobs.len());
    run_all(jobs, options, move |job: Job, options| {
        let connector = connector.clone();
        async move {
            let catalog = &job.catalog;
            let node = catalog.node.name.clone();
            options.progress.node_started(node.as_str());
            let started = Instant::now();
            let dc = catalog.node.datacenter.clone();
            let mut probed = match connect_checked(&*connector, &job).await {
                Ok(mut session) => {
                    let timeout = options.command_timeout;
                    match probe(&mut *session, catalog, &options, timeout, hold).await {
                        Ok((facts, go)) => {
                            let mut probed = planned(catalog, facts, &*session, &options);
                            if let Some((go, ends)) = go {
                                if has_work(&probed, &job) {
                                    probed.held = Some(HeldProbe { session, go, ends });
                                } else {
                                    held::release(&mut *session).await;
                                }
                            }
                            probed
                        }
                        Err(err) => unprobed(node_failure(err, node, dc)),
                    }
                }
                Err(err) => unprobed(node_failure(err, node, dc)),
            };
            probed.took = started.elapsed();
            options.progress.node_done(probed.result.node().as_str());
            probed
        }
    })
    .await
}

fn unprobed(result: NodeResult) -> Probed {
    Probed {
        result,
        seen: None,
        facts: None,
        held: None,
        took: Duration::ZERO,
    }
}

/// Whether an apply has something to do on a probed node: changes, the node state file
/// to rewrite, a killed run's leftovers, or a saved plan's check (the settling's rule).
fn has_work(probed: &Probed, job: &Job) -> bool {
    let NodeResult::Planned(p) = &probed.result else {
        return false;
    };
    let clean = probed.seen.as_ref().is_some_and(|s| !s.leftovers);
    !(p.is_empty() && job.expect.is_none() && !p.record_stale && clean)
}

/// The plan of a probed node (or why it could not be made).
fn planned(
    catalog: &Catalog,
    facts: NodeFacts,
    session: &dyn Session,
    options: &ApplyOptions,
) -> Probed {
    let seen = Some(crate::epoch::Seen::read(catalog, &facts));
    let result = match plan::plan_node(catalog, &facts, &options.secrets) {
        Ok(mut p) => {
            p.host_key = session.host_key();
            // Only an apply's settling reads it (a plan run's context has no primary):
            // a plain plan does not digest every spec.
            p.record_stale = p.is_empty()
                && options.applied.primary.is_some()
                && crate::node_state::record(catalog, &options.applied, &options.secrets)
                    .is_stale(facts.applied.as_ref());
            NodeResult::Planned(p)
        }
        Err(error) => {
            let (node, dc) = (catalog.node.name.clone(), catalog.node.datacenter.clone());
            let err = NodeError::Facts {
                node: node.clone(),
                error,
            };
            return Probed {
                result: node_failure(err, node, dc),
                seen,
                facts: None,
                held: None,
                took: Duration::ZERO,
            };
        }
    };
    Probed {
        result,
        seen,
        facts: Some(facts),
        held: None,
        took: Duration::ZERO,
    }
}

/// A session to the job's node, for a saved plan only on the machine the plan read:
/// the address is compared before connecting, the verified host key before anything
/// is run.
async fn connect_checked(
    connector: &dyn Connector,
    job: &Job,
) -> Result<Box<dyn Session>, NodeError> {
    let node = &job.catalog.node;
    if let Some(id) = &job.identity {
        if (id.address.as_str(), id.port) != (node.address.as_str(), node.port) {
            return Err(NodeError::NotPlannedMachine {
                node: node.name.clone(),
                what: format!(
                    "the plan read `{}:{}`, the inventory now says `{}:{}`",
                    id.address, id.port, node.address, node.port
                ),
            });
        }
    }
    let session = connector.connect(node).await?;
    if let Some(planned) = job.identity.as_ref().and_then(|id| id.host_key.as_ref()) {
        let now = session.host_key();
        if now.as_ref() != Some(planned) {
            return Err(NodeError::NotPlannedMachine {
                node: node.name.clone(),
                what: format!(
                    "the plan read host key `{planned}`, the node now presents `{}`",
                    now.as_deref().unwrap_or("none")
                ),
            });
        }
    }
    Ok(session)
}

/// Applies every node's catalog.
pub async fn apply_nodes(
    catalogs: Vec<Catalog>,
    connector: Arc<dyn Connector>,
    options: &ApplyOptions,
) -> Vec<NodeReport> {
    let jobs = catalogs.into_iter().map(Job::new).collect();
    apply_jobs(jobs, connector, options).await
}

/// Applies every job: a job with expectations (a saved plan) is applied only when its
/// node still reads as planned. A node whose turn comes after an interrupt was requested
/// is not started and reports `not-attempted`; nodes already started run to the end.
pub async fn apply_jobs(
    jobs: Vec<Job>,
    connector: Arc<dyn Connector>,
    options: &ApplyOptions,
) -> Vec<NodeReport> {
    let jobs = jobs.into_iter().map(|job| (job, None)).collect();
    apply_held(jobs, connector, options).await
}

/// [`apply_jobs`], where a job may come with its settling probe still held open on the
/// node ([`held`]): its apply script then goes down that command.
pub async fn apply_held(
    jobs: Vec<(Job, Option<HeldProbe>)>,
    connector: Arc<dyn Connector>,
    options: &ApplyOptions,
) -> Vec<NodeReport> {
    run_all(jobs, options, move |(job, held): (Job, Option<HeldProbe>), options| {
        let connector = connector.clone();
        async move {
            // This body runs once the node's semaphore permit is held: the moment the
            // node would start.
            if options.interrupt.is_requested() {
                if let Some(held) = held {
                    drop(held.release().await);
                }
                let mut report = empty_report(&job.catalog, Outcome::NotAttempted);
                report.error = Some("not started: the run was interrupted".into());
                return report;
            }
            options
                .progress
                .node_started(job.catalog.node.name.as_str());
            // After an interrupt, a node still in flight when the grace period ends is
            // abandoned: dropping its work closes its channel (see the SSH session).
            let report = tokio::select! {
                report = apply_node(&*connector, &job, held, &options) => report,
                () = options.interrupt.grace_over() => abandoned(&job.catalog, &options.interrupt),
            };
            options.progress.node_done(report.node.as_str());
            report
        }
    })
    .await
}

fn abandoned(catalog: &Catalog, interrupt: &Interrupt) -> NodeReport {
    let mut report = empty_report(catalog, Outcome::Interrupted);
    report.error = Some(format!(
        "interrupted: still in flight {:?} after the signal, abandoned; what it changed is unknown, and its script on the node is killed by its command timeout",
        interrupt.grace()
    ));
    report
}

fn empty_report(catalog: &Catalog, outcome: Outcome) -> NodeReport {
    NodeReport {
        node: catalog.node.name.clone(),
        datacenter: catalog.node.datacenter.clone(),
        outcome,
        resources: Vec::new(),
        unsynced: Vec::new(),
        refused: Vec::new(),
        error: None,
        round_trips: 0,
        elapsed_ms: 0,
    }
}

/// Runs `work` for every catalog, at most `options.parallel` at once, in input order.
async fn run_all<I, T, F, Fut>(catalogs: Vec<I>, options: &ApplyOptions, work: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(I, ApplyOptions) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let semaphore = Arc::new(Semaphore::new(options.parallel.max(1)));
    let mut tasks = Vec::with_capacity(catalogs.len());
    for catalog in catalogs {
        let semaphore = semaphore.clone();
        let fut = work(catalog, options.clone());
        tasks.push(tokio::spawn(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _permit = semaphore.acquire_owned().await;
            fut.await
        }));
    }
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        // A panicking node task is a bug; keep the others' results and re-raise it.
        match task.await {
            Ok(result) => results.push(result),
            Err(err) => std::panic::resume_unwind(err.into_panic()),
        }
    }
    results
}

/// Probes the node. With `hold`, and a transport that can, the probe's command is held
/// open afterwards for an apply script ([`held`]): then its `go` token and when the
/// node's own timeout ends it come back too. A probe that fails ends the held command.
async fn probe(
    session: &mut dyn Session,
    catalog: &Catalog,
    options: &ApplyOptions,
    timeout: Duration,
    hold: bool,
) -> Result<(NodeFacts, Option<(Token, Instant)>), NodeError> {
    let token = Token::random();
    // Only an apply's probe may refresh the node's package cache; a plan's reads it.
    let cache = if hold {
        PackageCache::Write(options.state_dir.clone())
    } else {
        PackageCache::Read(options.state_dir.clone())
    };
    let (mut script, stdin) = plan::probe_script_with(catalog, token.clone(), cache);
    script.push_str(&crate::fact::script::state_leftovers(&options.state_dir));
    script.push_str(&applied::probe_shell(&options.state_dir));
    let mut go = None;
    let out = if hold {
        let g = Token::random();
        let whole = held::whole(options.command_timeout, options.lock_wait);
        let ends = Instant::now() + whole;
        let marker = held::marker(&g);
        let command = format!("{script}{}", held::reader(&g));
        match session
            .hold(&command, &stdin, &marker, timeout, whole)
            .await?
        {
            Some(mut out) if session.holding() => {
                let at = out
                    .stdout
                    .windows(marker.len())
                    .rposition(|w| w == marker.as_slice());
                out.stdout.truncate(at.unwrap_or(out.stdout.len()));
                // Still running, but the probe part ended as it does on success.
                out.status = Some(0);
                go = Some((g, ends));
                out
            }
            Some(out) => out,
            None => session.exec(&script, &stdin, timeout).await?,
        }
    } else {
        session.exec(&script, &stdin, timeout).await?
    };
    let node = catalog.node.name.clone();
    if !out.success() {
        held::release(session).await;
        return Err(NodeError::Probe {
            node,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    match NodeFacts::parse(&out.stdout, &token) {
        Ok(facts) => Ok((facts, go)),
        Err(error) => {
            held::release(session).await;
            Err(NodeError::Facts { node, error })
        }
    }
}

async fn apply_node(
    connector: &dyn Connector,
    job: &Job,
    held: Option<HeldProbe>,
    options: &ApplyOptions,
) -> NodeReport {
    let started = Instant::now();
    // The node's whole apply (probe, script, verify) fits in the command timeout plus
    // the node-lock wait: each command gets what is left of it.
    let budget = options.command_timeout + options.lock_wait;
    let deadline = started + budget;
    let catalog = &job.catalog;
    let mut report = empty_report(catalog, Outcome::Failed);
    let result = async {
        // A held settling probe (on the machine it checked) carries the script when the
        // node's command has a whole apply's time left; else it ends, and the script
        // is a command of its own on the same connection. Either way the settling
        // probe's round trip is already counted on that session.
        let from_settle = held.is_some();
        let (mut session, mut go) = match held {
            Some(held) if job.probed.is_some() && held.has_left(budget) => {
                (held.session, Some(held.go))
            }
            Some(held) => (held.release().await, None),
            None => (connect_checked(connector, job).await?, None),
        };
        // Facts the run's settling read moments ago are planned from as they are: the
        // script's own verifying probe reads what its steps left. A node probed now
        // (a later batch) holds that probe's command for its script.
        let fresh;
        let facts = match &job.probed {
            Some(settled) => &*settled.facts,
            None => {
                let timeout = options.command_timeout;
                let (facts, held) = probe(&mut *session, catalog, options, timeout, true).await?;
                go = held.map(|(go, _)| go);
                fresh = facts;
                &fresh
            }
        };
        let outcome = apply_with(
            &mut *session,
            job,
            facts,
            go.as_ref(),
            options,
            deadline,
            &mut report,
        )
        .await;
        // Not sent (nothing to do, or refused): the held command ends unused.
        held::release(&mut *session).await;
        // The settling probe was this node's first round trip of the run.
        report.round_trips =
            session.round_trips() + u32::from(job.probed.is_some() && !from_settle);
        outcome
    }
    .await;
    match result {
        Ok(outcome) => report.outcome = outcome,
        Err(err) => {
            report.outcome = outcome_of(&err);
            if let NodeError::Stale { resources, .. } = &err {
                report.refused = resources.iter().map(|r| r.id.clone()).collect();
            }
            report.error = Some(err.to_string());
        }
    }
    // The settling probe whose facts the apply planned from is this node's time too
    // (not the wait for the other nodes' probes in between).
    let settled = job.probed.as_ref().map_or(Duration::ZERO, |s| s.took);
    report.elapsed_ms = (settled + started.elapsed()).as_millis();
    report
}

/// Plans `job` from `facts` and sends the script that converges and verifies: down the
/// held probe's command when `go` names one, else as a command of its own.
async fn apply_with(
    session: &mut dyn Session,
    job: &Job,
    facts: &NodeFacts,
    go: Option<&Token>,
    options: &ApplyOptions,
    deadline: Instant,
    report: &mut NodeReport,
) -> Result<Outcome, NodeError> {
    let (catalog, expect) = (&job.catalog, job.expect.as_deref());
    let node = catalog.node.name.clone();
    let plan: NodePlan =
        plan::plan_node(catalog, facts, &options.secrets).map_err(|error| NodeError::Facts {
            node: node.clone(),
            error,
        })?;
    if let Some(expect) = expect {
        let resources = stale_resources(expect, &plan);
        if !resources.is_empty() {
            return Err(NodeError::Stale { node, resources });
        }
    }
    // Nothing to change, nothing a killed run left behind, and the node state file up
    // to date: the probe was the one round trip. Leftovers or a stale state file alone
    // are worth the apply script, which removes them or rewrites it.
    let record = crate::node_state::record(catalog, &options.applied, &options.secrets);
    if plan.is_empty() && facts.leftovers.is_empty() && !record.is_stale(facts.applied.as_ref()) {
        return Ok(Outcome::Unchanged);
    }
    let token = Token::random();
    let verify_token = Token::random();
    // The node state file is written after the steps, before the verifying probe, in
    // the same script (it prints nothing, so the `applied` section is the probe's).
    let (verify, verify_stdin) = plan::probe_script_with(
        catalog,
        verify_token.clone(),
        PackageCache::Write(options.state_dir.clone()),
    );
    let stepped = catalog
        .resources
        .iter()
        .enumerate()
        .filter(|(_, r)| plan.change(&r.id).is_some())
        .map(|(i, r)| (crate::node_state::rid_digest(&r.id), i))
        .collect();
    let (record_shell, mut record_stdin) = applied::write_shell(&record, &stepped);
    record_stdin.extend_from_slice(&verify_stdin);
    let params = script::ScriptParams {
        token: &token,
        state_dir: &options.state_dir,
        lock_wait: options.lock_wait,
        verify: (record_shell + &verify, record_stdin),
    };
    let (command, stdin) = script::build(catalog, &plan, facts, params);
    let timeout = deadline.saturating_duration_since(Instant::now());
    let out = match go {
        Some(go) if session.holding() => {
            session
                .resume(&held::go(go, &command, &stdin), timeout)
                .await?
        }
        _ => session.exec(&command, &stdin, timeout).await?,
    };
    let sections = crate::fact::protocol::split(&out.stdout, &token);
    let mut verify_output: Option<&[u8]> = None;
    for (section, body) in &sections {
        let text = || String::from_utf8_lossy(body).trim().to_string();
        match *section {
            Section::Locked => {
                return Err(NodeError::Locked {
                    node,
                    lock: format!("{}/lock", options.state_dir),
                    holder: Some(text())
                        .filter(|t| !t.is_empty())
                        .unwrap_or_else(|| "unknown holder".into()),
                    waited: options.lock_wait,
                })
            }
            Section::Fatal => {
                return Err(NodeError::Script {
                    node,
                    reason: text(),
                })
            }
            Section::Frame => {
                return Err(NodeError::Script {
                    node,
                    reason: "the data fed on stdin was cut short; nothing was changed".into(),
                })
            }
            Section::Applied => verify_output = Some(body),
            Section::Step(index, mark) => {
                if let Some(r) = step_report(index, mark, body, catalog, &plan, &options.secrets) {
                    report.resources.push(r);
                }
            }
            // Probe sections belong to the verifying probe, inside `applied`.
            _ => {}
        }
    }
    let failed = report
        .resources
        .iter()
        .any(|r| r.status != StepStatus::Applied);
    let Some(verify_output) = verify_output else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(NodeError::Script {
            node,
            reason: format!("the script ended early (status {:?}): {stderr}", out.status),
        });
    };
    let after =
        NodeFacts::parse(verify_output, &verify_token).map_err(|error| NodeError::Facts {
            node: node.clone(),
            error,
        })?;
    let again =
        plan::plan_node(catalog, &after, &options.secrets).map_err(|error| NodeError::Facts {
            node: node.clone(),
            error,
        })?;
    report.unsynced = plan::unsynced(&again)
        .into_iter()
        .map(|c| c.id.clone())
        .collect();
    if plan.is_empty() && !failed && report.unsynced.is_empty() {
        return Ok(Outcome::Unchanged);
    }
    if failed || !report.unsynced.is_empty() {
        if !report.unsynced.is_empty() {
            let ids: Vec<String> = report.unsynced.iter().map(ToString::to_string).collect();
            report.error = Some(format!("not in sync after apply: {}", ids.join(", ")));
        }
        return Ok(Outcome::Failed);
    }
    Ok(Outcome::Changed)
}

/// A step's marker and its error output.
fn step_report(
    index: usize,
    mark: Mark,
    body: &[u8],
    catalog: &Catalog,
    plan: &NodePlan,
    secrets: &SecretStore,
) -> Option<ResourceReport> {
    let resource = catalog.resources.get(index)?;
    let change = plan.change(&resource.id)?;
    let (status, error) = match mark {
        Mark::Ok => (StepStatus::Applied, None),
        Mark::Skip => (
            StepStatus::Skipped,
            Some("a resource it depends on failed".to_string()),
        ),
        Mark::Fail => (
            StepStatus::Failed,
            Some(one_line(
                &secrets.redact(String::from_utf8_lossy(body).trim()),
            )),
        ),
    };
    Some(ResourceReport {
        id: resource.id.clone(),
        action: change.action,
        status,
        error,
    })
}

/// Error output of a failed step (secrets already redacted), on one line.
fn one_line(text: &str) -> String {
    text.lines().collect::<Vec<_>>().join(" | ")
}
