//! The run worker: one run at a time. It wakes when deliveries are queued, takes them
//! all, fetches the mirror, resolves the deploy branch's head and decides: refused (a
//! rewind of the deployed commit without `allow_rewind`, or an unsigned head with
//! `require_signed`), or run. A run compiles a clean checkout of exactly that commit
//! and, by policy, plans it and saves the plan for an operator, or applies it under the
//! site lock and the site's rollout. Every decision, every commit a run supersedes and
//! every delivery it serves is recorded in the history.
//!
//! A run that converges no node, or in which a datacenter was not discovered, is
//! recorded `failed`: a green "0 of 0" would hide a broken inventory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::{Config, Policy};
use super::observe::{Observer, RunFinished};
use super::queue::{Queue, Trigger};
use super::repo::Mirror;
use crate::apply::{Interrupt, Progress};
use crate::lock::Wait;
use crate::outcome::Outcome;
use crate::run::{self, ApplyRequest, PlanRequest, RunError, Settings, Workspace};
use crate::store::{CommitDecision, Decision, RunId, RunKind, RunStatus, Store};

mod finished;

/// Checkouts kept (the current one included); older ones are removed.
const KEEP_CHECKOUTS: usize = 5;

/// What the worker needs, shared with the audit.
pub struct Worker {
    pub config: Config,
    /// The operator's settings (site root, inventory, transport); each run's copy points
    /// at its checkout instead.
    pub settings: Settings,
    pub mirror: Mirror,
    pub queue: Arc<Queue>,
    pub observer: Arc<dyn Observer>,
    /// Requested on SIGTERM: the running apply lets in-flight nodes finish.
    pub interrupt: Interrupt,
    /// Turns `true` on SIGTERM: no new run starts.
    pub stop: tokio::sync::watch::Receiver<bool>,
}

impl Worker {
    fn store(&self) -> Result<Store, crate::store::StoreError> {
        Store::open(&self.settings.history_path())
    }

    fn log(&self, line: &str) {
        eprintln!("serve: {line}");
    }

    /// Serves the queue until `interrupt` is requested; runs the audit on its interval.
    pub async fn serve(self: Arc<Self>) {
        let mut audit = self.config.audit_interval.map(|every| {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick
        });
        let mut stop = self.stop.clone();
        // Kept connections are kept alive (and dead ones dropped) while the worker idles.
        let every = self
            .settings
            .connection
            .keepalive
            .max(Duration::from_secs(1));
        let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let audit_due = async {
                match audit.as_mut() {
                    Some(tick) => {
                        tick.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            let mut due_audit = false;
            let mut due_keepalive = false;
            tokio::select! {
                _ = self.queue.woken() => {}
                _ = audit_due => due_audit = true,
                _ = keepalive.tick() => due_keepalive = true,
                _ = stop.wait_for(|stopping| *stopping) => {}
            }
            if *stop.borrow() {
                return;
            }
            if due_keepalive {
                if let Some(pool) = &self.settings.pool {
                    let closed = pool.keepalive().await;
                    if closed > 0 {
                        self.log(&format!(
                            "closed {closed} kept connection(s): dead or idle past `keep_connections`"
                        ));
                    }
                }
                continue;
            }
            if due_audit {
                if let Err(err) = super::audit::audit(&self).await {
                    self.log(&format!("audit: {err:#}"));
                }
                continue;
            }
            let triggers = self.queue.take();
            if triggers.is_empty() {
                continue;
            }
            if let Err(err) = self.deploy(&triggers).await {
                self.log(&format!("{err:#}"));
            }
        }
    }

    /// One round: fetch, decide, run. Errors before a run are recorded as a `failed`
    /// decision and returned for the log.
    async fn deploy(&self, triggers: &[Trigger]) -> anyhow::Result<()> {
        let mirror = self.mirror.clone();
        let branch = self.config.branch.clone();
        let woke = Instant::now();
        let fetched = tokio::task::spawn_blocking(move || mirror.fetch(&branch)).await?;
        let fetch_ms = woke.elapsed().as_millis();
        let head = match fetched {
            Ok(head) => head,
            Err(err) => {
                self.decide(CommitDecision {
                    reason: Some(err.to_string()),
                    ..CommitDecision::new("unknown", Decision::Failed)
                })?;
                return Err(err.into());
            }
        };
        let base = self.store()?.last_deployed_commit()?;
        if let Some(base) = &base {
            if !self.config.allow_rewind && !self.mirror.contains(&head, base)? {
                let reason = format!(
                    "the head of `{}` does not contain the deployed commit `{base}` (a rewind): not deployed; an operator deploys it with `tandem apply`, or the site sets `allow_rewind`",
                    self.config.branch
                );
                self.log(&format!("refused `{head}`: {reason}"));
                self.decide(CommitDecision {
                    reason: Some(reason),
                    ..CommitDecision::new(&head, Decision::Refused)
                })?;
                return Ok(());
            }
        }
        if let Some(signers) = &self.config.allowed_signers {
            let signature = self.mirror.signature(&head)?;
            if let Err(err) = super::signing::verify(&head, signature, signers) {
                self.log(&format!("refused: {err}"));
                self.decide(CommitDecision {
                    reason: Some(err.to_string()),
                    ..CommitDecision::new(&head, Decision::Refused)
                })?;
                return Ok(());
            }
        }
        let checkouts = self.config.state_dir.join("checkouts");
        let state = self.settings.site.join(".tandem");
        crate::state_dir::create(&state)?;
        let state = std::fs::canonicalize(&state)?;
        let checkout = match self.mirror.checkout(&head, &checkouts, &state) {
            Ok(path) => path,
            Err(err) => {
                self.decide(CommitDecision {
                    reason: Some(err.to_string()),
                    ..CommitDecision::new(&head, Decision::Failed)
                })?;
                return Err(err.into());
            }
        };
        super::repo::prune(&checkouts, KEEP_CHECKOUTS, &head);
        let served: Vec<(String, String)> = triggers
            .iter()
            .map(|t| (t.receiver.as_str().to_string(), t.delivery.clone()))
            .collect();
        let started = Instant::now();
        // Where a push's time goes, for the log (and benches/serve.sh).
        self.log(&format!(
            "`{}`: fetched in {fetch_ms} ms, checked out {} ms later",
            short(&head),
            woke.elapsed().as_millis() - fetch_ms
        ));
        let outcome = match self.config.policy {
            Policy::Apply => self.apply(&head, checkout, &served).await,
            Policy::Plan => self.plan(&head, checkout).await,
        };
        let (run, saved_plan) = match outcome {
            Ok(done) => done,
            Err(err) => {
                let reason = format!("{:#}", anyhow::Error::from(err));
                self.log(&format!("run of `{head}` failed before any host: {reason}"));
                self.decide(CommitDecision {
                    reason: Some(reason),
                    ..CommitDecision::new(&head, Decision::Failed)
                })?;
                return Ok(());
            }
        };
        let store = self.store()?;
        store.attach_deliveries(run, &served)?;
        self.decide(CommitDecision {
            reason: Some(self.config.policy.as_str().into()),
            run: Some(run),
            saved_plan: saved_plan.map(|p| p.display().to_string()),
            ..CommitDecision::new(&head, Decision::Ran)
        })?;
        if let Some(base) = &base {
            for skipped in self.mirror.between(&head, base, 100)? {
                self.decide(CommitDecision {
                    superseded_by: Some(head.clone()),
                    run: Some(run),
                    ..CommitDecision::new(skipped, Decision::Superseded)
                })?;
            }
        }
        self.finished(&store, run, started)?;
        Ok(())
    }

    /// Records `decision`; a refused or failed head is also a run that ended without
    /// touching a host, as far as the observer is concerned (`refused` or `error`).
    fn decide(&self, decision: CommitDecision) -> Result<(), crate::store::StoreError> {
        let result = match decision.decision {
            Decision::Refused => Some("refused"),
            Decision::Failed => Some("error"),
            Decision::Ran | Decision::Superseded => None,
        };
        if let Some(result) = result {
            self.observer.run_finished(&RunFinished {
                kind: self.config.policy.as_str(),
                result: result.to_string(),
                seconds: 0.0,
                nodes_by_outcome: Vec::new(),
                deployed: Vec::new(),
            });
        }
        self.store()?.record_decision(&decision)
    }

    /// The settings of a run of `commit` from `checkout`: the operator's history and
    /// known_hosts, a lock label naming the daemon.
    fn run_settings(&self, commit: &str, checkout: PathBuf, what: &str) -> Settings {
        let mut settings = self.settings.clone();
        settings.history = Some(self.settings.history_path());
        settings.connection.known_hosts = Some(self.settings.known_hosts_path());
        settings.site = checkout;
        settings.started_by = Some("webhook (tandem serve)".into());
        settings.command = format!("tandem serve: {what} of {}", short(commit));
        settings
    }

    /// Links `served` to the apply run labelled `command` while it runs, so the status
    /// pages show what triggered it before it ends. Under the site lock the only
    /// running apply is ours; a failure here only delays the link to the run's end.
    fn link_running(&self, command: &str, served: &[(String, String)]) {
        let linked = self.store().and_then(|store| {
            let newest = store.runs(1)?.into_iter().next();
            match newest {
                Some(run)
                    if run.status == RunStatus::Running
                        && run.kind == RunKind::Apply
                        && run.command == command =>
                {
                    store.attach_deliveries(run.id, served)
                }
                _ => Ok(()),
            }
        });
        if let Err(err) = linked {
            self.log(&format!(
                "cannot link the deliveries to the running run: {err}"
            ));
        }
    }

    async fn apply(
        &self,
        commit: &str,
        checkout: PathBuf,
        served: &[(String, String)],
    ) -> Result<(RunId, Option<PathBuf>), RunError> {
        let settings = self.run_settings(commit, checkout, "apply");
        let command = settings.command.clone();
        let mut linked = false;
        let request = ApplyRequest {
            on: None,
            saved: None,
            parallel: self.config.parallel,
            lock_wait: Wait::For(self.config.lock_wait),
            interrupt: self.interrupt.clone(),
            progress: Progress::default(),
        };
        self.log(&format!("applying `{commit}`"));
        let applied = run::apply(settings, request, |event| match event {
            run::apply::Event::Waiting(msg) => eprintln!("serve: {msg}"),
            run::apply::Event::Rollout(_) if !linked => {
                linked = true;
                self.link_running(&command, served);
            }
            _ => {}
        })
        .await?;
        let run = applied.report.run;
        let converged = applied
            .report
            .nodes
            .iter()
            .filter(|n| matches!(n.outcome, Outcome::Changed | Outcome::Unchanged))
            .count();
        let failure = undiscovered(&applied.failures).or_else(|| {
            (converged == 0 && !applied.report.interrupted)
                .then(|| "no node was converged".to_string())
        });
        if let Some(failure) = failure {
            self.store()?
                .finish(run, RunStatus::Failed, Some(&failure))?;
        }
        Ok((run, None))
    }

    async fn plan(
        &self,
        commit: &str,
        checkout: PathBuf,
    ) -> Result<(RunId, Option<PathBuf>), RunError> {
        let settings = self.run_settings(commit, checkout, "plan");
        let lock = crate::apply::deploy::lock_site(
            &settings.site,
            &settings.command,
            Wait::For(self.config.lock_wait),
            &self.interrupt,
            |msg| eprintln!("serve: {msg}"),
        )
        .await?;
        let plans = self.config.state_dir.join("plans");
        crate::state_dir::create(&plans).map_err(|error| crate::store::StoreError::Dir {
            path: plans.clone(),
            error,
        })?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let out = plans.join(format!("{}-{stamp}.plan", short(commit)));
        let ws = Workspace::open(settings)?;
        self.log(&format!("planning `{commit}`"));
        let planned = run::plan(
            &ws,
            PlanRequest {
                on: None,
                out: Some(out.clone()),
                parallel: self.config.parallel,
                progress: Progress::default(),
            },
        )
        .await?;
        drop(lock);
        let planned_ok = planned
            .results
            .iter()
            .filter(|r| matches!(r, crate::plan::render::NodeResult::Planned(_)))
            .count();
        let failure = undiscovered(&planned.failures)
            .or_else(|| (planned_ok == 0).then(|| "no node could be planned".to_string()));
        if let Some(failure) = failure {
            ws.store()?
                .finish(planned.run, RunStatus::Failed, Some(&failure))?;
        }
        self.log(&format!(
            "saved the plan of `{commit}`: apply it with `tandem --site {} apply {}`",
            ws.root().display(),
            out.display()
        ));
        Ok((planned.run, Some(out)))
    }
}

/// "discovery failed for datacenter ..." when some datacenter was not discovered.
fn undiscovered(failures: &[crate::inventory::InventoryError]) -> Option<String> {
    (!failures.is_empty()).then(|| {
        let list: Vec<String> = failures.iter().map(|f| f.to_string()).collect();
        format!("discovery failed: {}", list.join("; "))
    })
}

pub fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
