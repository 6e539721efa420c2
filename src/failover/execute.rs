//! `tandem promote DC`, second half: carry out a [`Prepared`] promote, in the order
//! that never leaves two writable primaries.
//!
//! 1. Demote: the old primary's reachable nodes are converged to their promoted
//!    catalogs (standby overlay) under the rollout policy, then verified: probed again
//!    (every resource in sync) and health checked. Any failure stops here, before any
//!    node of the target changes: both sides are then standby, which is safe.
//! 2. Fence: unreachable old-primary nodes (only with `--old-primary-unreachable`) are
//!    recorded fence pending.
//! 3. Promote: the target's nodes are converged to their promoted catalogs (no standby
//!    overlay) under the rollout policy, and verified the same way.
//! 4. DNS: with `[failover.route53]`, the failover records are flipped in one batch. A
//!    DNS failure is reported and leaves the nodes promoted (docs/failover.md says why).
//! 5. Git: `site.toml` names the new primary and epoch, in a new commit, pushed when
//!    asked. The promote, who, why, when and every node's outcome go into the history.
//!
//! Each step's apply is a run of its own in the history. The site lock is held from
//! `prepare` to the end; each step's executor is handed a lock of its own on a step
//! file (`crate::apply::deploy` takes a lock as proof that no other apply runs, which
//! the held site lock already is).

use std::time::{Duration, Instant};

use serde::Serialize;

use super::checks::{self, NotReady};
use super::promote::{options, Prepared, PromoteError, StepNode};
use super::route53::{self, Flipped};
use super::site_file;
use crate::apply::deploy::{self, DeployReport, RunContext};
use crate::apply::Job;
use crate::exit::Status;
use crate::lock::{SiteLock, Wait};
use crate::manifest::Site;
use crate::node::NodeName;
use crate::outcome::Outcome;
use crate::rollout;
use crate::store::{FailoverEnd, FailoverNode, NewFailover, RunKind, Store};

/// Something to show while the promote runs.
pub enum Event<'a> {
    Step(&'a str),
    Rollout(rollout::Progress<'a>),
}

/// What a promote did.
#[derive(Debug, Serialize)]
pub struct Promoted {
    pub failover: i64,
    pub epoch: u64,
    pub from: String,
    pub to: String,
    pub demote: Option<DeployReport>,
    pub promote: Option<DeployReport>,
    /// Nodes not verified after their step, with the reason.
    pub unverified: Vec<String>,
    pub fence_pending: Vec<NodeName>,
    pub dns: Option<Result<Flipped, String>>,
    pub commit: Option<String>,
    pub pushed: Option<String>,
    pub git_error: Option<String>,
    /// Where the promote stopped, when it did.
    pub stopped: Option<String>,
    pub timings: Timings,
    #[serde(skip)]
    pub status: Status,
}

/// Seconds per step, for the operator and the benchmark.
#[derive(Debug, Default, Serialize)]
pub struct Timings {
    pub demote_s: f64,
    pub promote_s: f64,
    pub dns_s: f64,
    pub total_s: f64,
}

impl Prepared {
    /// Carries the promote out (see the module documentation).
    pub async fn execute(
        self,
        mut on_event: impl FnMut(Event<'_>),
    ) -> Result<Promoted, PromoteError> {
        let started = Instant::now();
        let Prepared {
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
            ..
        } = self;
        let store = ws.store()?;
        let who = ws.new_run(RunKind::Apply).started_by;
        let id = store.begin_failover(&NewFailover {
            epoch,
            from: from.clone(),
            to: to.clone(),
            started_by: who,
            reason: request.reason.clone(),
        })?;
        let mut out = Promoted {
            failover: id,
            epoch,
            from: from.to_string(),
            to: to.to_string(),
            demote: None,
            promote: None,
            unverified: Vec::new(),
            fence_pending: Vec::new(),
            dns: None,
            commit: None,
            pushed: None,
            git_error: None,
            stopped: None,
            timings: Timings::default(),
            status: Status::Ok,
        };
        let mut end = FailoverEnd::default();
        let steps = StepRunner {
            ws: &ws,
            site: &promoted,
            request: &request,
            store: &store,
            failover: id,
        };

        on_event(Event::Step(&format!(
            "demote: {} nodes of `{from}` gain the standby overlay",
            demote.len()
        )));
        let t = Instant::now();
        let (report, bad) = steps.run("demote", &demote, &mut on_event).await?;
        out.timings.demote_s = t.elapsed().as_secs_f64();
        end.demote_run = Some(report.run);
        out.demote = Some(report);
        if !bad.is_empty() {
            out.unverified = bad.iter().map(ToString::to_string).collect();
            let why = format!(
                "stopped after the demote step: {} old-primary nodes not demoted and verified; no node of `{to}` was changed",
                bad.len()
            );
            return finish(store, id, end, out, why, started);
        }
        for (node, error) in &fence {
            store.add_fence_pending(&node.name, &node.datacenter, id, epoch)?;
            store.record_failover_node(
                id,
                &FailoverNode {
                    node: node.name.clone(),
                    datacenter: node.datacenter.clone(),
                    step: "fence".into(),
                    outcome: "fence-pending".into(),
                    error: Some(error.clone()),
                },
            )?;
            out.fence_pending.push(node.name.clone());
        }

        on_event(Event::Step(&format!(
            "promote: {} nodes of `{to}` lose the standby overlay",
            promote.len()
        )));
        let t = Instant::now();
        let (report, bad) = steps.run("promote", &promote, &mut on_event).await?;
        out.timings.promote_s = t.elapsed().as_secs_f64();
        end.promote_run = Some(report.run);
        out.promote = Some(report);
        if !bad.is_empty() {
            out.unverified = bad.iter().map(ToString::to_string).collect();
            out.status = Status::Failed;
        }

        if let Some(r53) = &promoted.route53 {
            on_event(Event::Step("dns: flipping the Route53 failover records"));
            let t = Instant::now();
            let flipped = route53::flip(r53, to.as_str()).await;
            out.timings.dns_s = t.elapsed().as_secs_f64();
            match &flipped {
                Ok(f) => end.dns_change = Some(f.change_id.clone()),
                Err(err) => {
                    end.dns_error = Some(err.to_string());
                    out.status = Status::Failed;
                }
            }
            out.dns = Some(flipped.map_err(|e| e.to_string()));
        }

        // Git last: the nodes carry the new epoch already, so until this commit lands a
        // run from the old checkout is refused by the guard rather than undoing it.
        match commit_site(&ws.settings.site, &promoted, &request) {
            Ok((commit, pushed)) => {
                out.commit = commit;
                out.pushed = pushed;
            }
            Err(err) => {
                out.git_error = Some(err.to_string());
                out.status = Status::Failed;
            }
        }
        end.commit = out.commit.clone();
        out.timings.total_s = started.elapsed().as_secs_f64();
        end.status = if out.unverified.is_empty() {
            "promoted".into()
        } else {
            "promoted-unverified".into()
        };
        end.error = out.unverified.first().cloned().or(out.git_error.clone());
        store.finish_failover(id, &end)?;
        drop(lock);
        Ok(out)
    }
}

fn finish(
    store: Store,
    id: i64,
    mut end: FailoverEnd,
    mut out: Promoted,
    why: String,
    started: Instant,
) -> Result<Promoted, PromoteError> {
    end.status = "stopped".into();
    end.error = Some(why.clone());
    store.finish_failover(id, &end)?;
    out.stopped = Some(why);
    out.status = Status::Failed;
    out.timings.total_s = started.elapsed().as_secs_f64();
    Ok(out)
}

fn commit_site(
    root: &std::path::Path,
    promoted: &Site,
    request: &super::promote::PromoteRequest,
) -> Result<(Option<String>, Option<String>), site_file::SiteFileError> {
    let path = root.join("manifests/site.toml");
    let text = std::fs::read_to_string(&path).map_err(|error| site_file::SiteFileError::Read {
        path: path.clone(),
        error,
    })?;
    let primary = super::primary_of(promoted).map_or("", |p| p.as_str());
    let new = site_file::rewrite(&path, &text, primary, promoted.epoch)?;
    site_file::write_atomic(&path, &new)?;
    let message = format!(
        "promote `{primary}` to primary, failover epoch {}\n\nReason: {}\nBy: tandem promote ({})\n",
        promoted.epoch,
        request.reason,
        crate::store::NewRun::by_current_user(RunKind::Apply, "", None).started_by
    );
    let commit = site_file::commit(&path, &message)?;
    let pushed = match (&request.push, &commit) {
        (Some(branch), Some(_)) => {
            site_file::push(root, "origin", branch)?;
            Some(format!("origin/{branch}"))
        }
        _ => None,
    };
    Ok((commit, pushed))
}

/// Runs one step's nodes through the executor and verifies them.
struct StepRunner<'a> {
    ws: &'a crate::run::Workspace,
    site: &'a Site,
    request: &'a super::promote::PromoteRequest,
    store: &'a Store,
    failover: i64,
}

impl StepRunner<'_> {
    async fn run(
        &self,
        step: &str,
        nodes: &[StepNode],
        on_event: &mut impl FnMut(Event<'_>),
    ) -> Result<(DeployReport, Vec<NotReady>), PromoteError> {
        let connector = self.ws.settings.connector()?;
        let options = options(self.ws, self.site, self.request);
        let mut run = self.ws.new_run(RunKind::Apply);
        run.command = format!("{} ({step} step)", run.command);
        let ctx = RunContext {
            datacenters: self.site.datacenters.clone(),
            policy: self.site.rollout.clone(),
            store_path: self.ws.settings.history_path(),
            run,
        };
        let step_lock = SiteLock::acquire_file(
            &self.ws.settings.site.join(".tandem/promote-step.lock"),
            &self.ws.settings.command,
            Wait::For(Duration::from_secs(5)),
        )
        .map_err(deploy::DeployError::from)?;
        let jobs: Vec<Job> = nodes.iter().map(|s| Job::new(s.catalog.clone())).collect();
        let report = deploy::deploy(jobs, connector.clone(), &options, ctx, step_lock, |e| {
            on_event(Event::Rollout(e))
        })
        .await?;
        let catalogs: Vec<_> = nodes.iter().map(|s| s.catalog.clone()).collect();
        let mut bad: Vec<NotReady> = Vec::new();
        for node in &report.nodes {
            if !matches!(node.outcome, Outcome::Changed | Outcome::Unchanged) {
                bad.push(NotReady {
                    node: node.node.clone(),
                    datacenter: node.datacenter.clone(),
                    reason: format!(
                        "{}: {}",
                        node.outcome,
                        node.error.as_deref().unwrap_or("no detail")
                    ),
                });
            }
        }
        if bad.is_empty() {
            let (unverified, _) =
                checks::check_nodes(&catalogs, connector, &options, &self.site.rollout).await;
            bad = unverified;
        }
        for node in &report.nodes {
            let failed = bad.iter().find(|b| b.node == node.node);
            self.store.record_failover_node(
                self.failover,
                &FailoverNode {
                    node: node.node.clone(),
                    datacenter: node.datacenter.clone(),
                    step: step.to_string(),
                    outcome: match failed {
                        Some(_) => "not-verified".into(),
                        None => format!("{} and verified", node.outcome),
                    },
                    error: failed.map(|b| b.reason.clone()),
                },
            )?;
        }
        Ok((report, bad))
    }
}
