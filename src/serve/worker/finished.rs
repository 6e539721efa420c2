//! The end of a run in the daemon: the log line, the pool's connection summary and the
//! observer's `run_finished` (metrics), from the run as the history recorded it.

use std::time::Instant;

use super::{short, Worker};
use crate::serve::observe::RunFinished;
use crate::store::{RunId, RunKind, RunStatus, Store};

impl Worker {
    /// Tells the observer and the log how run `run` ended.
    pub fn finished(&self, store: &Store, run: RunId, started: Instant) -> anyhow::Result<()> {
        let detail = store.run(run)?;
        let mut by_outcome: Vec<(String, u64)> = Vec::new();
        for node in &detail.nodes {
            let word = node.outcome.as_str().to_string();
            match by_outcome.iter_mut().find(|(w, _)| *w == word) {
                Some((_, n)) => *n += 1,
                None => by_outcome.push((word, 1)),
            }
        }
        let mut deployed: Vec<(String, String)> = Vec::new();
        if detail.run.kind == RunKind::Apply && detail.run.status == RunStatus::Succeeded {
            if let Some(commit) = &detail.run.commit {
                for node in &detail.nodes {
                    if let Some(dc) = &node.datacenter {
                        let dc = dc.as_str().to_string();
                        if !deployed.iter().any(|(d, _)| *d == dc) {
                            deployed.push((dc, commit.clone()));
                        }
                    }
                }
            }
        }
        let kind = if detail.run.started_by.starts_with("audit") {
            "audit"
        } else {
            detail.run.kind.as_str()
        };
        self.log(&format!(
            "run {run} ({kind} of {}) {}",
            detail.run.commit.as_deref().map_or("no commit", short),
            detail.run.status
        ));
        if let Some(pool) = &self.settings.pool {
            self.log(&pool.summary());
        }
        self.observer.run_finished(&RunFinished {
            kind,
            result: detail.run.status.as_str().to_string(),
            seconds: started.elapsed().as_secs_f64(),
            nodes_by_outcome: by_outcome,
            deployed,
        });
        Ok(())
    }
}
