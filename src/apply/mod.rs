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
pub mod interrupt;
pub mod progress;
pub mod script;
mod stale;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::catalog::Catalog;
use crate::exit::Status;
use crate::fact::{FactError, Mark, NodeFacts, Section, Token};
use crate::node::{DatacenterName, NodeName};
use crate::path::RemotePath;
use crate::plan::render::NodeResult;
use crate::plan::{self, Action, NodePlan};
use crate::resource::ResourceId;
use crate::secret::SecretStore;
use crate::transport::{Connector, Session, TransportError};

pub use crate::outcome::Outcome;
pub use interrupt::Interrupt;
pub use progress::Progress;
pub use stale::{change_summary, Expect, StaleResource};
use stale::{stale_list, stale_resources};

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
        }
    }
}

/// Why a node could not be planned or applied.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{node}: {source}")]
    Facts { node: NodeName, source: FactError },
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
}

/// One node to apply: its catalog and, for a saved plan, what the plan read.
#[derive(Debug, Clone)]
pub struct Job {
    pub catalog: Catalog,
    pub expect: Option<Vec<Expect>>,
}

/// What happened to one resource's change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Applied,
    Failed,
    /// A resource it depends on failed or was skipped.
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceReport {
    pub id: ResourceId,
    pub action: Action,
    pub status: StepStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One node's apply.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub node: NodeName,
    pub datacenter: DatacenterName,
    pub outcome: Outcome,
    pub resources: Vec<ResourceReport>,
    /// Resources not in sync after the apply (the node is failed when any).
    pub unsynced: Vec<ResourceId>,
    /// Resources whose state moved since the saved plan (the node was left untouched).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<ResourceId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub round_trips: u32,
    pub elapsed_ms: u128,
}

/// Plans every node: one connection and one probe round trip each.
pub async fn plan_nodes(
    catalogs: Vec<Catalog>,
    connector: Arc<dyn Connector>,
    options: &ApplyOptions,
) -> Vec<NodeResult> {
    let total = catalogs.len();
    run_all(catalogs, options, move |catalog, options| {
        let connector = connector.clone();
        async move {
            let node = catalog.node.name.clone();
            let dc = catalog.node.datacenter.clone();
            let result = match connect_and_probe(&*connector, &catalog, &options).await {
                Ok((_, facts)) => match plan::plan_node(&catalog, &facts, &options.secrets) {
                    Ok(p) => NodeResult::Planned(p),
                    Err(source) => node_failure(
                        NodeError::Facts {
                            node: node.clone(),
                            source,
                        },
                        node,
                        dc,
                    ),
                },
                Err(err) => node_failure(err, node, dc),
            };
            options.progress.node_done(result_label(&result), total);
            result
        }
    })
    .await
}

/// Applies every node's catalog.
pub async fn apply_nodes(
    catalogs: Vec<Catalog>,
    connector: Arc<dyn Connector>,
    options: &ApplyOptions,
) -> Vec<NodeReport> {
    let jobs = catalogs
        .into_iter()
        .map(|catalog| Job {
            catalog,
            expect: None,
        })
        .collect();
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
    let total = jobs.len();
    run_all(jobs, options, move |job: Job, options| {
        let connector = connector.clone();
        async move {
            // This body runs once the node's semaphore permit is held: the moment the
            // node would start.
            if options.interrupt.is_requested() {
                let mut report = empty_report(&job.catalog, Outcome::NotAttempted);
                report.error = Some("not started: the run was interrupted".into());
                return report;
            }
            let report = apply_node(&*connector, &job, &options).await;
            options
                .progress
                .node_done(format!("{}: {}", report.node, report.outcome), total);
            report
        }
    })
    .await
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
    options.progress.finish();
    results
}

async fn connect_and_probe(
    connector: &dyn Connector,
    catalog: &Catalog,
    options: &ApplyOptions,
) -> Result<(Box<dyn Session>, NodeFacts), NodeError> {
    let mut session = connector.connect(&catalog.node).await?;
    let facts = probe(&mut *session, catalog, options).await?;
    Ok((session, facts))
}

async fn probe(
    session: &mut dyn Session,
    catalog: &Catalog,
    options: &ApplyOptions,
) -> Result<NodeFacts, NodeError> {
    let token = Token::random();
    let (mut script, stdin) = plan::probe_script(catalog, token.clone());
    script.push_str(&crate::fact::script::state_leftovers(&options.state_dir));
    let out = session
        .exec(&script, &stdin, options.command_timeout)
        .await?;
    let node = catalog.node.name.clone();
    if !out.success() {
        return Err(NodeError::Probe {
            node,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    NodeFacts::parse(&out.stdout, &token).map_err(|source| NodeError::Facts { node, source })
}

async fn apply_node(connector: &dyn Connector, job: &Job, options: &ApplyOptions) -> NodeReport {
    let started = Instant::now();
    let catalog = &job.catalog;
    let mut report = empty_report(catalog, Outcome::Failed);
    let result = async {
        let (mut session, facts) = connect_and_probe(connector, catalog, options).await?;
        let outcome = apply_with(
            &mut *session,
            catalog,
            &facts,
            job.expect.as_deref(),
            options,
            &mut report,
        )
        .await;
        report.round_trips = session.round_trips();
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
    report.elapsed_ms = started.elapsed().as_millis();
    report
}

async fn apply_with(
    session: &mut dyn Session,
    catalog: &Catalog,
    facts: &NodeFacts,
    expect: Option<&[Expect]>,
    options: &ApplyOptions,
    report: &mut NodeReport,
) -> Result<Outcome, NodeError> {
    let node = catalog.node.name.clone();
    let plan: NodePlan =
        plan::plan_node(catalog, facts, &options.secrets).map_err(|source| NodeError::Facts {
            node: node.clone(),
            source,
        })?;
    if let Some(expect) = expect {
        let resources = stale_resources(expect, &plan);
        if !resources.is_empty() {
            return Err(NodeError::Stale { node, resources });
        }
    }
    // Nothing to change and nothing a killed run left behind: the probe was the one
    // round trip. Leftovers alone are worth the apply script, which removes them.
    if plan.is_empty() && facts.leftovers.is_empty() {
        return Ok(Outcome::Unchanged);
    }
    let token = Token::random();
    let verify_token = Token::random();
    let params = script::ScriptParams {
        token: &token,
        state_dir: &options.state_dir,
        lock_wait: options.lock_wait,
        verify: plan::probe_script(catalog, verify_token.clone()),
    };
    let (command, stdin) = script::build(catalog, &plan, facts, params);
    let timeout = options.command_timeout + options.lock_wait;
    let out = session.exec(&command, &stdin, timeout).await?;
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
        NodeFacts::parse(verify_output, &verify_token).map_err(|source| NodeError::Facts {
            node: node.clone(),
            source,
        })?;
    let again =
        plan::plan_node(catalog, &after, &options.secrets).map_err(|source| NodeError::Facts {
            node: node.clone(),
            source,
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

fn outcome_of(err: &NodeError) -> Outcome {
    match err {
        NodeError::Transport(TransportError::HostKey { .. }) => Outcome::HostKey,
        NodeError::Transport(TransportError::Unreachable { .. } | TransportError::Auth { .. }) => {
            Outcome::Unreachable
        }
        _ => Outcome::Failed,
    }
}

fn node_failure(err: NodeError, node: NodeName, datacenter: DatacenterName) -> NodeResult {
    let error = err.to_string();
    match outcome_of(&err) {
        Outcome::HostKey => NodeResult::HostKey {
            node,
            datacenter,
            error,
        },
        Outcome::Unreachable => NodeResult::Unreachable {
            node,
            datacenter,
            error,
        },
        _ => NodeResult::Failed {
            node,
            datacenter,
            error,
        },
    }
}

fn result_label(result: &NodeResult) -> String {
    match result {
        NodeResult::Planned(p) if p.is_empty() => format!("{}: in sync", p.node),
        NodeResult::Planned(p) => format!("{}: {} changes", p.node, p.changes.len()),
        NodeResult::Unreachable { node, .. } => format!("{node}: unreachable"),
        NodeResult::HostKey { node, .. } => format!("{node}: host key refused"),
        NodeResult::Failed { node, .. } => format!("{node}: failed"),
    }
}

/// The exit status of an apply (precedence in the module doc).
pub fn exit_status(reports: &[NodeReport]) -> Status {
    Outcome::exit_status(reports.iter().map(|r| r.outcome))
}

/// The exit status of a plan: as `exit_status`, with pending changes as 2.
pub fn plan_status(results: &[NodeResult]) -> Status {
    let any = |f: fn(&NodeResult) -> bool| results.iter().any(f);
    if any(|r| matches!(r, NodeResult::Failed { .. } | NodeResult::HostKey { .. })) {
        Status::Failed
    } else if any(|r| matches!(r, NodeResult::Unreachable { .. })) {
        Status::Unreachable
    } else if any(|r| matches!(r, NodeResult::Planned(p) if !p.is_empty())) {
        Status::Pending
    } else {
        Status::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: Outcome) -> NodeReport {
        NodeReport {
            node: NodeName::new("n"),
            datacenter: DatacenterName::new("dc"),
            outcome,
            resources: Vec::new(),
            unsynced: Vec::new(),
            refused: Vec::new(),
            error: None,
            round_trips: 0,
            elapsed_ms: 0,
        }
    }

    #[test]
    fn exit_status_precedence() {
        use Outcome::*;
        let status = |outcomes: &[Outcome]| {
            exit_status(&outcomes.iter().map(|o| report(*o)).collect::<Vec<_>>())
        };
        assert_eq!(status(&[Unchanged, Changed]), Status::Ok);
        assert_eq!(status(&[Changed, HostKey]), Status::Failed);
        assert_eq!(status(&[HostKey, Unreachable]), Status::Failed);
        assert_eq!(status(&[Changed, NotAttempted]), Status::Failed);
        assert_eq!(status(&[Unreachable, Failed, Changed]), Status::Failed);
    }

    #[test]
    fn transport_errors_map_to_outcomes() {
        let node = NodeName::new("n");
        let hostkey = NodeError::Transport(TransportError::HostKey {
            node: node.clone(),
            reason: "changed".into(),
        });
        assert_eq!(outcome_of(&hostkey), Outcome::HostKey);
        let down = NodeError::Transport(TransportError::Unreachable {
            node: node.clone(),
            reason: "refused".into(),
        });
        assert_eq!(outcome_of(&down), Outcome::Unreachable);
        let result = node_failure(down, node, DatacenterName::new("dc"));
        assert_eq!(plan_status(&[result]), Status::Unreachable);
    }
}
