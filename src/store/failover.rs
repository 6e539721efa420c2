//! The failover history (issue 12): one row per promote (the new epoch, from and to
//! which datacenter, who, why, when, the apply runs of its demote and promote steps, the
//! site commit and the DNS change it made), each node's outcome in it, and the nodes
//! left fence pending (an old-primary node that could not be demoted; the next run
//! demotes it first and clears it here). Text passes through the site's redaction.

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::record::{now_millis, rfc3339};
use super::{name_column, sql, RunId, Store, StoreError};
use crate::node::{DatacenterName, NodeName};

/// A promote about to be recorded.
#[derive(Debug, Clone)]
pub struct NewFailover {
    pub epoch: u64,
    pub from: DatacenterName,
    pub to: DatacenterName,
    pub started_by: String,
    pub reason: String,
}

/// A promote as the history holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failover {
    pub id: i64,
    pub epoch: u64,
    pub from: DatacenterName,
    pub to: DatacenterName,
    pub started_by: String,
    pub reason: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `running`, `promoted`, `failed` (see `failover::promote`).
    pub status: String,
    pub error: Option<String>,
    pub demote_run: Option<RunId>,
    pub promote_run: Option<RunId>,
    /// The site commit that names the new primary and epoch.
    pub commit: Option<String>,
    pub dns_change: Option<String>,
    pub dns_error: Option<String>,
}

/// One node's part in a promote: `step` is `demote`, `promote` or `fence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailoverNode {
    pub node: NodeName,
    pub datacenter: DatacenterName,
    pub step: String,
    pub outcome: String,
    pub error: Option<String>,
}

/// A node that must be demoted before anything else happens on the site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FencePending {
    pub node: NodeName,
    pub datacenter: DatacenterName,
    /// The promote that left it pending.
    pub failover: i64,
    pub epoch: u64,
    pub since: String,
}

/// The end of a promote, as [`Store::finish_failover`] records it.
#[derive(Debug, Clone, Default)]
pub struct FailoverEnd {
    pub status: String,
    pub error: Option<String>,
    pub demote_run: Option<RunId>,
    pub promote_run: Option<RunId>,
    pub commit: Option<String>,
    pub dns_change: Option<String>,
    pub dns_error: Option<String>,
}

const COLUMNS: &str = "SELECT id, epoch, from_dc, to_dc, started_by, reason, started_ms, finished_ms, status, error, demote_run, promote_run, git_commit, dns_change, dns_error FROM failovers";

impl Store {
    pub fn begin_failover(&self, failover: &NewFailover) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO failovers (epoch, from_dc, to_dc, started_by, reason, started_ms, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running')",
                params![
                    i64::try_from(failover.epoch).unwrap_or(i64::MAX),
                    failover.from.as_str(),
                    failover.to.as_str(),
                    failover.started_by,
                    self.secrets.redact(&failover.reason),
                    now_millis(),
                ],
            )
            .map_err(sql(&self.path, "record the start of a promote"))?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn record_failover_node(&self, id: i64, node: &FailoverNode) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO failover_nodes (failover_id, node, datacenter, step, outcome, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id,
                    node.node.as_str(),
                    node.datacenter.as_str(),
                    node.step,
                    node.outcome,
                    node.error.as_deref().map(|e| self.secrets.redact(e)),
                ],
            )
            .map_err(sql(&self.path, "record a promote's node"))?;
        Ok(())
    }

    pub fn finish_failover(&self, id: i64, end: &FailoverEnd) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE failovers SET finished_ms = ?2, status = ?3, error = ?4, demote_run = ?5,
                 promote_run = ?6, git_commit = ?7, dns_change = ?8, dns_error = ?9 WHERE id = ?1",
                params![
                    id,
                    now_millis(),
                    end.status,
                    end.error.as_deref().map(|e| self.secrets.redact(e)),
                    end.demote_run.map(|r| r.0),
                    end.promote_run.map(|r| r.0),
                    end.commit,
                    end.dns_change,
                    end.dns_error.as_deref().map(|e| self.secrets.redact(e)),
                ],
            )
            .map_err(sql(&self.path, "record the end of a promote"))?;
        Ok(())
    }

    /// The newest promote, if any.
    pub fn last_failover(&self) -> Result<Option<Failover>, StoreError> {
        self.conn
            .query_row(
                &format!("{COLUMNS} ORDER BY id DESC LIMIT 1"),
                [],
                failover_from_row,
            )
            .optional()
            .map_err(sql(&self.path, "read the last promote"))
    }

    pub fn failover_nodes(&self, id: i64) -> Result<Vec<FailoverNode>, StoreError> {
        self.conn
            .prepare("SELECT node, datacenter, step, outcome, error FROM failover_nodes WHERE failover_id = ?1 ORDER BY step, node")
            .and_then(|mut s| {
                s.query_map([id], |row| {
                    Ok(FailoverNode {
                        node: name_column(row, 0)?,
                        datacenter: name_column(row, 1)?,
                        step: row.get(2)?,
                        outcome: row.get(3)?,
                        error: row.get(4)?,
                    })
                })?
                .collect()
            })
            .map_err(sql(&self.path, "read a promote's nodes"))
    }

    /// Marks `node` fence pending (replacing an older mark of it).
    pub fn add_fence_pending(
        &self,
        node: &NodeName,
        datacenter: &DatacenterName,
        failover: i64,
        epoch: u64,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO fence_pending (node, datacenter, failover_id, epoch, since_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    node.as_str(),
                    datacenter.as_str(),
                    failover,
                    i64::try_from(epoch).unwrap_or(i64::MAX),
                    now_millis()
                ],
            )
            .map_err(sql(&self.path, "record a fence-pending node"))?;
        Ok(())
    }

    /// Every fence-pending node, by name.
    pub fn fence_pending(&self) -> Result<Vec<FencePending>, StoreError> {
        self.conn
            .prepare("SELECT node, datacenter, failover_id, epoch, since_ms FROM fence_pending ORDER BY node")
            .and_then(|mut s| {
                s.query_map([], |row| {
                    Ok(FencePending {
                        node: name_column(row, 0)?,
                        datacenter: name_column(row, 1)?,
                        failover: row.get(2)?,
                        epoch: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
                        since: rfc3339(row.get(4)?),
                    })
                })?
                .collect()
            })
            .map_err(sql(&self.path, "read fence-pending nodes"))
    }

    /// `node` was demoted (by run `run`): no longer fence pending.
    pub fn clear_fence_pending(&self, node: &NodeName) -> Result<(), StoreError> {
        self.conn
            .execute(
                "DELETE FROM fence_pending WHERE node = ?1",
                params![node.as_str()],
            )
            .map_err(sql(&self.path, "clear a fence-pending node"))?;
        Ok(())
    }
}

fn failover_from_row(row: &Row<'_>) -> rusqlite::Result<Failover> {
    let finished: Option<i64> = row.get(7)?;
    Ok(Failover {
        id: row.get(0)?,
        epoch: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
        from: name_column(row, 2)?,
        to: name_column(row, 3)?,
        started_by: row.get(4)?,
        reason: row.get(5)?,
        started_at: rfc3339(row.get(6)?),
        finished_at: finished.map(rfc3339),
        status: row.get(8)?,
        error: row.get(9)?,
        demote_run: row.get::<_, Option<i64>>(10)?.map(RunId),
        promote_run: row.get::<_, Option<i64>>(11)?.map(RunId),
        commit: row.get(12)?,
        dns_change: row.get(13)?,
        dns_error: row.get(14)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dc(name: &str) -> DatacenterName {
        DatacenterName::new(name).unwrap()
    }

    #[test]
    fn a_promote_its_nodes_and_fences_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("h.sqlite")).unwrap();
        assert_eq!(store.last_failover().unwrap(), None);
        let id = store
            .begin_failover(&NewFailover {
                epoch: 3,
                from: dc("azure-westus"),
                to: dc("aws-useast1"),
                started_by: "ops@laptop".into(),
                reason: "azure outage".into(),
            })
            .unwrap();
        let node = NodeName::new("fe-az-1").unwrap();
        store
            .record_failover_node(
                id,
                &FailoverNode {
                    node: node.clone(),
                    datacenter: dc("azure-westus"),
                    step: "fence".into(),
                    outcome: "unreachable".into(),
                    error: None,
                },
            )
            .unwrap();
        store
            .add_fence_pending(&node, &dc("azure-westus"), id, 3)
            .unwrap();
        store
            .finish_failover(
                id,
                &FailoverEnd {
                    status: "promoted".into(),
                    commit: Some("abc".into()),
                    ..FailoverEnd::default()
                },
            )
            .unwrap();
        let last = store.last_failover().unwrap().unwrap();
        assert_eq!(
            (last.epoch, last.status.as_str(), last.reason.as_str()),
            (3, "promoted", "azure outage")
        );
        assert_eq!(last.commit.as_deref(), Some("abc"));
        assert_eq!(store.failover_nodes(id).unwrap().len(), 1);
        assert_eq!(store.fence_pending().unwrap()[0].node, node);
        store.clear_fence_pending(&node).unwrap();
        assert!(store.fence_pending().unwrap().is_empty());
    }
}
