//! What `tandem serve` records besides the runs themselves: every verified webhook
//! delivery (its id, so a replay is refused even after a restart; the event, ref and
//! pusher it named; the run that served it), and every decision about a fetched branch
//! head (run, superseded by a newer head, refused with the reason, failed before any
//! host was touched). The status pages read a run's triggers with
//! [`Store::run_triggers`] and its decision with [`Store::decision_of_run`]; the daemon
//! reads the rewind guard's base with [`Store::last_deployed_commit`].
//!
//! Nothing here holds a payload body or a secret: ids, names, refs and reasons only,
//! and the reasons pass through the site's secret redaction like every stored text.

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::record::{now_millis, rfc3339};
use super::{sql, RunId, Store, StoreError};

/// A verified delivery as the history holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// `github`, `gitlab` or `generic`.
    pub receiver: String,
    /// The sender's delivery id (`X-GitHub-Delivery`, `X-Gitlab-Event-UUID`,
    /// `webhook-id`).
    pub id: String,
    /// `push`, `ping`, ...: as the sender named it.
    pub event: String,
    /// The ref the payload said was pushed (a hint only: the daemon deploys what it
    /// fetches).
    pub git_ref: Option<String>,
    /// Who pushed, as the payload said.
    pub pusher: Option<String>,
    /// `accepted`, `ignored`, `bad_request` (see `serve::observe::DeliveryResult`).
    pub result: String,
    /// RFC 3339, UTC.
    pub received_at: String,
    /// The run that served it (several deliveries may share one run).
    pub run: Option<RunId>,
}

/// What the daemon decided about one commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// A run was started for it (its status is the run's).
    Ran,
    /// Pushed while a run was going on or queued, then overtaken by a newer head.
    Superseded,
    /// Not deployed: a rewind of the deployed commit, or an unsigned head; waits for
    /// an operator.
    Refused,
    /// Could not be run: the fetch, checkout or compilation failed before any host.
    Failed,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Ran => "ran",
            Decision::Superseded => "superseded",
            Decision::Refused => "refused",
            Decision::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Option<Decision> {
        [
            Decision::Ran,
            Decision::Superseded,
            Decision::Refused,
            Decision::Failed,
        ]
        .into_iter()
        .find(|d| d.as_str() == text)
    }
}

/// One decision about one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitDecision {
    pub commit: String,
    pub decision: Decision,
    /// Why it was refused or failed, or how it ran (`apply`, `plan`).
    pub reason: Option<String>,
    pub run: Option<RunId>,
    /// For a superseded commit, the head that was deployed instead.
    pub superseded_by: Option<String>,
    /// For a plan-only run, the saved plan an operator applies with `tandem apply FILE`.
    pub saved_plan: Option<String>,
    /// RFC 3339, UTC (set when recorded).
    pub decided_at: String,
}

impl CommitDecision {
    pub fn new(commit: impl Into<String>, decision: Decision) -> CommitDecision {
        CommitDecision {
            commit: commit.into(),
            decision,
            reason: None,
            run: None,
            superseded_by: None,
            saved_plan: None,
            decided_at: String::new(),
        }
    }
}

const DELIVERY_COLUMNS: &str = "SELECT receiver, delivery_id, event, git_ref, pusher, result, received_ms, run_id FROM deliveries";
const DECISION_COLUMNS: &str = "SELECT git_commit, decision, reason, run_id, superseded_by, saved_plan, decided_ms FROM serve_commits";

impl Store {
    /// Records a verified delivery; `false` (and nothing written) when this receiver
    /// has seen its id before.
    pub fn record_delivery(&self, delivery: &Delivery) -> Result<bool, StoreError> {
        let inserted = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO deliveries (receiver, delivery_id, event, git_ref, pusher, result, received_ms, run_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    delivery.receiver,
                    delivery.id,
                    delivery.event,
                    delivery.git_ref,
                    delivery.pusher,
                    delivery.result,
                    now_millis(),
                    delivery.run.map(|r| r.0),
                ],
            )
            .map_err(sql(&self.path, "record a delivery"))?;
        Ok(inserted == 1)
    }

    /// Marks the deliveries `(receiver, id)` as served by `run`.
    pub fn attach_deliveries(
        &self,
        run: RunId,
        deliveries: &[(String, String)],
    ) -> Result<(), StoreError> {
        for (receiver, id) in deliveries {
            self.conn
                .execute(
                    "UPDATE deliveries SET run_id = ?1 WHERE receiver = ?2 AND delivery_id = ?3",
                    params![run.0, receiver, id],
                )
                .map_err(sql(&self.path, "link a delivery to its run"))?;
        }
        Ok(())
    }

    /// The newest `limit` deliveries, newest first.
    pub fn deliveries(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.conn
            .prepare(&format!(
                "{DELIVERY_COLUMNS} ORDER BY received_ms DESC, rowid DESC LIMIT ?1"
            ))
            .and_then(|mut s| s.query_map([limit], delivery_from_row)?.collect())
            .map_err(sql(&self.path, "list deliveries"))
    }

    /// The deliveries a run served (what triggered it), oldest first. An apply's are
    /// linked as soon as its rollout starts; a plan's when it ends.
    pub fn run_triggers(&self, run: RunId) -> Result<Vec<Delivery>, StoreError> {
        self.conn
            .prepare(&format!(
                "{DELIVERY_COLUMNS} WHERE run_id = ?1 ORDER BY received_ms, rowid"
            ))
            .and_then(|mut s| s.query_map([run.0], delivery_from_row)?.collect())
            .map_err(sql(&self.path, "read a run's triggers"))
    }

    /// Records a decision about a commit (its reason redacted).
    pub fn record_decision(&self, decision: &CommitDecision) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO serve_commits (git_commit, decision, reason, run_id, superseded_by, saved_plan, decided_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    decision.commit,
                    decision.decision.as_str(),
                    decision.reason.as_deref().map(|r| self.secrets.redact(r)),
                    decision.run.map(|r| r.0),
                    decision.superseded_by,
                    decision.saved_plan,
                    now_millis(),
                ],
            )
            .map_err(sql(&self.path, "record a commit decision"))?;
        Ok(())
    }

    /// The newest `limit` decisions, newest first.
    pub fn decisions(&self, limit: usize) -> Result<Vec<CommitDecision>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.conn
            .prepare(&format!("{DECISION_COLUMNS} ORDER BY id DESC LIMIT ?1"))
            .and_then(|mut s| s.query_map([limit], decision_from_row)?.collect())
            .map_err(sql(&self.path, "list commit decisions"))
    }

    /// The decision that started `run` (with its saved plan, for a plan-only run).
    pub fn decision_of_run(&self, run: RunId) -> Result<Option<CommitDecision>, StoreError> {
        self.conn
            .query_row(
                &format!("{DECISION_COLUMNS} WHERE run_id = ?1 AND decision = 'ran' ORDER BY id DESC LIMIT 1"),
                [run.0],
                decision_from_row,
            )
            .optional()
            .map_err(sql(&self.path, "read a run's decision"))
    }

    /// The commit the nodes were last converged to: the newest apply run (by the
    /// daemon or an operator) of a clean commit that reached the hosts, whatever its
    /// result. A head that does not contain it is a rewind.
    pub fn last_deployed_commit(&self) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT git_commit FROM runs WHERE kind = 'apply' AND git_commit IS NOT NULL AND dirty = 0
                 AND status IN ('succeeded', 'failed', 'unreachable', 'halted', 'interrupted')
                 ORDER BY id DESC LIMIT 1",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(sql(&self.path, "read the last deployed commit"))
    }
}

fn delivery_from_row(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        receiver: row.get(0)?,
        id: row.get(1)?,
        event: row.get(2)?,
        git_ref: row.get(3)?,
        pusher: row.get(4)?,
        result: row.get(5)?,
        received_at: rfc3339(row.get(6)?),
        run: row.get::<_, Option<i64>>(7)?.map(RunId),
    })
}

fn decision_from_row(row: &Row<'_>) -> rusqlite::Result<CommitDecision> {
    let text: String = row.get(1)?;
    let decision = Decision::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            1,
            rusqlite::types::Type::Text,
            format!("unknown decision `{text}`").into(),
        )
    })?;
    Ok(CommitDecision {
        commit: row.get(0)?,
        decision,
        reason: row.get(2)?,
        run: row.get::<_, Option<i64>>(3)?.map(RunId),
        superseded_by: row.get(4)?,
        saved_plan: row.get(5)?,
        decided_at: rfc3339(row.get(6)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: &str) -> Delivery {
        Delivery {
            receiver: "github".into(),
            id: id.into(),
            event: "push".into(),
            git_ref: Some("refs/heads/master".into()),
            pusher: Some("alice".into()),
            result: "accepted".into(),
            received_at: String::new(),
            run: None,
        }
    }

    #[test]
    fn a_delivery_id_is_recorded_once_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sqlite");
        let store = Store::open(&path).unwrap();
        assert!(store.record_delivery(&delivery("d1")).unwrap());
        assert!(!store.record_delivery(&delivery("d1")).unwrap());
        drop(store);
        let store = Store::open(&path).unwrap();
        assert!(!store.record_delivery(&delivery("d1")).unwrap());
        let mut other = delivery("d1");
        other.receiver = "gitlab".into();
        assert!(store.record_delivery(&other).unwrap());
        assert_eq!(store.deliveries(10).unwrap().len(), 2);
    }

    #[test]
    fn triggers_and_decisions_read_back_by_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("h.sqlite")).unwrap();
        let run = store
            .begin(&super::super::NewRun::by_current_user(
                super::super::RunKind::Apply,
                "tandem serve",
                Some("c2".into()),
            ))
            .unwrap();
        store.record_delivery(&delivery("d1")).unwrap();
        store.record_delivery(&delivery("d2")).unwrap();
        store
            .attach_deliveries(
                run,
                &[
                    ("github".into(), "d1".into()),
                    ("github".into(), "d2".into()),
                ],
            )
            .unwrap();
        let mut ran = CommitDecision::new("c2", Decision::Ran);
        ran.run = Some(run);
        store.record_decision(&ran).unwrap();
        let mut skipped = CommitDecision::new("c1", Decision::Superseded);
        skipped.superseded_by = Some("c2".into());
        store.record_decision(&skipped).unwrap();
        let triggers = store.run_triggers(run).unwrap();
        assert_eq!(
            triggers.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
            ["d1", "d2"]
        );
        assert_eq!(store.decision_of_run(run).unwrap().unwrap().commit, "c2");
        assert_eq!(
            store.decisions(10).unwrap()[0].decision,
            Decision::Superseded
        );
        // A running apply reached no host yet: not the rewind guard's base.
        assert_eq!(store.last_deployed_commit().unwrap(), None);
        store
            .finish(run, super::super::RunStatus::Succeeded, None)
            .unwrap();
        assert_eq!(store.last_deployed_commit().unwrap().as_deref(), Some("c2"));
    }
}
