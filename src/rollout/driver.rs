//! The rollout driver: runs a [`RolloutPlan`] batch by batch through the caller's apply
//! function, counts failures against `max_failed`, runs the health check between
//! batches, pauses, and reports every node, including those never attempted.
//!
//! It knows nothing of SSH: the executor passes "apply these nodes" as a closure, and a
//! command health check as another, so this logic is tested with plain closures.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use super::health::{check_http, HealthFailure};
use super::planner::{Batch, RolloutPlan};
use super::{HealthProbe, RolloutPolicy};
use crate::exit::Status;
use crate::node::{DatacenterName, Node, NodeName};
use crate::outcome::Outcome;

/// What one node came to in the rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeResult {
    pub node: NodeName,
    pub datacenter: DatacenterName,
    /// The batch number it was planned in (see [`Batch::number`]).
    pub batch: usize,
    pub outcome: Outcome,
}

/// Why a rollout stopped early. Either way the batch in flight finished; no later batch
/// was started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Halt {
    /// More than `max_failed` nodes failed, were unreachable or had a bad host key.
    Threshold {
        after_batch: usize,
        failed: usize,
        max_failed: usize,
    },
    /// The health check failed on at least one node of the batch.
    Health {
        after_batch: usize,
        failures: Vec<HealthFailure>,
    },
}

impl fmt::Display for Halt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Halt::Threshold { after_batch, failed, max_failed } => write!(
                f,
                "halted after batch {after_batch}: {failed} failed nodes exceed max_failed {max_failed}"
            ),
            Halt::Health { after_batch, failures } => {
                write!(f, "halted after batch {after_batch}: health check failed")?;
                for (i, failure) in failures.iter().enumerate() {
                    let sep = if i == 0 { " on " } else { ", " };
                    write!(f, "{sep}`{}` ({})", failure.node, failure.reason)?;
                }
                Ok(())
            }
        }
    }
}

/// How nodes count against `max_failed`, as reports state it.
pub const FAILURE_RULE: &str =
    "failed, unreachable and host-key nodes count against max_failed; skipped and not-attempted nodes do not";

/// Every planned node with its outcome, in plan order, and why the rollout halted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolloutReport {
    pub nodes: Vec<NodeResult>,
    pub halt: Option<Halt>,
    pub max_failed: usize,
    /// [`FAILURE_RULE`], so that JSON readers see the rule next to the numbers.
    pub failure_rule: &'static str,
}

impl RolloutReport {
    /// Nodes counted against `max_failed`: failed, unreachable and host-key.
    pub fn failed_count(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.outcome.counts_as_failure())
            .count()
    }

    pub fn not_attempted(&self) -> Vec<&NodeName> {
        self.nodes
            .iter()
            .filter(|n| n.outcome == Outcome::NotAttempted)
            .map(|n| &n.node)
            .collect()
    }

    /// 0 when all went well, 3 when a node failed or the rollout halted, 4 when nodes
    /// were only unreachable.
    pub fn exit_status(&self) -> Status {
        let status = Outcome::exit_status(self.nodes.iter().map(|n| n.outcome));
        if self.halt.is_some() {
            Status::Failed
        } else {
            status
        }
    }
}

impl fmt::Display for RolloutReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut counts: BTreeMap<Outcome, usize> = BTreeMap::new();
        for node in &self.nodes {
            *counts.entry(node.outcome).or_default() += 1;
        }
        let summary: Vec<String> = counts.iter().map(|(o, n)| format!("{n} {o}")).collect();
        if self.nodes.is_empty() {
            // Every node was planned in sync before the rollout (see `apply::deploy`).
            writeln!(f, "rollout: no node had a change to roll out")?;
        } else {
            writeln!(
                f,
                "rollout: {} nodes: {}",
                self.nodes.len(),
                summary.join(", ")
            )?;
        }
        writeln!(
            f,
            "failure threshold: {} of max {} ({})",
            self.failed_count(),
            self.max_failed,
            self.failure_rule
        )?;
        match &self.halt {
            None => {}
            Some(Halt::Threshold { after_batch, failed, max_failed }) => writeln!(
                f,
                "halted after batch {after_batch}: {failed} failed nodes exceed max_failed {max_failed}"
            )?,
            Some(Halt::Health { after_batch, failures }) => {
                writeln!(f, "halted after batch {after_batch}: health check failed")?;
                for failure in failures {
                    writeln!(f, "  {}: {}", failure.node, failure.reason)?;
                }
            }
        }
        let skipped = self.not_attempted();
        if !skipped.is_empty() {
            let names: Vec<&str> = skipped.iter().map(|n| n.as_str()).collect();
            writeln!(f, "not attempted: {}", names.join(", "))?;
        }
        Ok(())
    }
}

/// What the driver is doing, for progress lines (`Display` gives a plain line).
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A batch is about to be applied; `of` is the number of batches in the plan.
    Batch { batch: &'a Batch, of: usize },
    /// The health check is about to run on `nodes` converged nodes of `batch`.
    Health { batch: &'a Batch, nodes: usize },
    /// Waiting before the next batch.
    Pause { seconds: u64 },
    /// The rollout stops here.
    Halt(&'a Halt),
    /// Before the rollout: every node was planned; `in_sync` were verified in sync and
    /// are done, `changing` are rolled out.
    Settled { in_sync: usize, changing: usize },
}

impl fmt::Display for Progress<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Progress::Batch { batch, of } => {
                let n = batch.nodes.len();
                let s = if n == 1 { "" } else { "s" };
                write!(f, "{} of {of}: applying {n} node{s}", batch.label())
            }
            Progress::Health { batch, nodes } => {
                write!(f, "health check on {nodes} nodes of {}", batch.label())
            }
            Progress::Pause { seconds } => write!(f, "pausing {seconds}s before the next batch"),
            Progress::Settled { in_sync, changing } => write!(
                f,
                "planned every node: {in_sync} in sync (verified, nothing to do), {changing} to roll out"
            ),
            Progress::Halt(Halt::Threshold { after_batch, failed, max_failed }) => write!(
                f,
                "halting after batch {after_batch}: {failed} failed nodes exceed max_failed {max_failed}"
            ),
            Progress::Halt(Halt::Health { after_batch, failures }) => write!(
                f,
                "halting after batch {after_batch}: health check failed on {} nodes",
                failures.len()
            ),
        }
    }
}

/// Runs `plan` under `policy`, telling `progress` what it does.
///
/// `apply` gets each batch's nodes and returns an outcome per node; a node it leaves out
/// counts as failed (a node must never pass silently). After each batch but the last
/// (whose failures show in the outcomes and exit status, with nothing left to stop):
/// if more than `policy.max_failed` nodes of the whole rollout so far failed, were
/// unreachable or had a host-key problem, the rollout halts. Otherwise the health check
/// (if any) runs on the batch's converged nodes, HTTP probes here and command probes
/// through `command_check(node, command, timeout)`, which returns `Err` with a reason
/// when the command failed; any unhealthy node halts the rollout. Then it waits
/// `pause_seconds` and goes on.
pub async fn run<A, AF, C, CF>(
    plan: RolloutPlan,
    policy: &RolloutPolicy,
    apply: A,
    command_check: C,
    progress: impl FnMut(Progress<'_>),
) -> RolloutReport
where
    A: FnMut(Vec<Node>) -> AF,
    AF: Future<Output = Vec<(NodeName, Outcome)>>,
    C: FnMut(Node, String, Duration) -> CF,
    CF: Future<Output = Result<(), String>>,
{
    run_until(plan, policy, apply, command_check, progress, || false).await
}

/// [`run`], stopping early once `stop()` is true (an interrupted run): no batch starts
/// after that, its nodes are reported not attempted, and a pause is cut short.
pub async fn run_until<A, AF, C, CF>(
    plan: RolloutPlan,
    policy: &RolloutPolicy,
    mut apply: A,
    mut command_check: C,
    mut progress: impl FnMut(Progress<'_>),
    stop: impl Fn() -> bool,
) -> RolloutReport
where
    A: FnMut(Vec<Node>) -> AF,
    AF: Future<Output = Vec<(NodeName, Outcome)>>,
    C: FnMut(Node, String, Duration) -> CF,
    CF: Future<Output = Result<(), String>>,
{
    let mut report = RolloutReport {
        nodes: Vec::with_capacity(plan.node_count()),
        halt: None,
        max_failed: policy.max_failed,
        failure_rule: FAILURE_RULE,
    };
    let total = plan.batches.len();
    for (index, batch) in plan.batches.into_iter().enumerate() {
        let last = index + 1 == total;
        if report.halt.is_some() || stop() {
            report.nodes.extend(
                batch
                    .nodes
                    .iter()
                    .map(|n| result(n, &batch, Outcome::NotAttempted)),
            );
            continue;
        }
        progress(Progress::Batch {
            batch: &batch,
            of: total,
        });
        let mut outcomes: BTreeMap<NodeName, Outcome> =
            apply(batch.nodes.clone()).await.into_iter().collect();
        let results: Vec<NodeResult> = batch
            .nodes
            .iter()
            .map(|n| {
                result(
                    n,
                    &batch,
                    outcomes.remove(&n.name).unwrap_or(Outcome::Failed),
                )
            })
            .collect();
        let converged: Vec<Node> = batch
            .nodes
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.outcome.is_converged())
            .map(|(n, _)| n.clone())
            .collect();
        report.nodes.extend(results);

        if last {
            break;
        }
        let failed = report.failed_count();
        if failed > policy.max_failed {
            let halt = Halt::Threshold {
                after_batch: batch.number,
                failed,
                max_failed: policy.max_failed,
            };
            progress(Progress::Halt(&halt));
            report.halt = Some(halt);
            continue;
        }
        if let Some(health) = &policy.health {
            let converged: Vec<Node> = converged.into_iter().filter(|n| health.covers(n)).collect();
            let timeout = Duration::from_secs(health.timeout_seconds);
            progress(Progress::Health {
                batch: &batch,
                nodes: converged.len(),
            });
            let failures = check_batch(&health.probe, converged, timeout, &mut command_check).await;
            if !failures.is_empty() {
                let halt = Halt::Health {
                    after_batch: batch.number,
                    failures,
                };
                progress(Progress::Halt(&halt));
                report.halt = Some(halt);
                continue;
            }
        }
        if policy.pause_seconds > 0 {
            progress(Progress::Pause {
                seconds: policy.pause_seconds,
            });
            let until = tokio::time::Instant::now() + Duration::from_secs(policy.pause_seconds);
            while !stop() && tokio::time::Instant::now() < until {
                let left = until - tokio::time::Instant::now();
                tokio::time::sleep(left.min(Duration::from_millis(100))).await;
            }
        }
    }
    report
}

fn result(node: &Node, batch: &Batch, outcome: Outcome) -> NodeResult {
    NodeResult {
        node: node.name.clone(),
        datacenter: node.datacenter.clone(),
        batch: batch.number,
        outcome,
    }
}

/// HTTP probes run concurrently (each bounded by `timeout`); command probes one after
/// another through the callback, each bounded by `timeout` here as well.
async fn check_batch<C, CF>(
    probe: &HealthProbe,
    nodes: Vec<Node>,
    timeout: Duration,
    command_check: &mut C,
) -> Vec<HealthFailure>
where
    C: FnMut(Node, String, Duration) -> CF,
    CF: Future<Output = Result<(), String>>,
{
    let mut failures = Vec::new();
    match probe {
        HealthProbe::Http(url) => {
            // Spawned together so they run concurrently, awaited in node order.
            let checks: Vec<(NodeName, tokio::task::JoinHandle<Result<(), String>>)> = nodes
                .into_iter()
                .map(|node| {
                    let url = url.clone();
                    let address = node.address;
                    let task =
                        tokio::spawn(async move { check_http(&url, &address, timeout).await });
                    (node.name, task)
                })
                .collect();
            for (node, task) in checks {
                let outcome = task
                    .await
                    .unwrap_or_else(|err| Err(format!("health check task failed: {err}")));
                if let Err(reason) = outcome {
                    failures.push(HealthFailure { node, reason });
                }
            }
        }
        HealthProbe::Command(command) => {
            for node in nodes {
                let name = node.name.clone();
                let check = command_check(node, command.clone(), timeout);
                let outcome =
                    match tokio::time::timeout(timeout + Duration::from_secs(1), check).await {
                        Ok(outcome) => outcome,
                        Err(_) => Err(format!(
                            "`{command}` did not finish within {}s",
                            timeout.as_secs()
                        )),
                    };
                if let Err(reason) = outcome {
                    failures.push(HealthFailure { node: name, reason });
                }
            }
        }
    }
    failures.sort_by(|a, b| a.node.cmp(&b.node));
    failures
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
