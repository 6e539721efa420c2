//! Drift findings and their acknowledgements (issue 11). A finding is one attribute of
//! one resource on one node read with one actual value (by its keyed digest, never the
//! value): seen again with the same value it keeps its first-seen time and counts up; a
//! new value is a new finding. An acknowledgement names a node and resource, who, why
//! and until when; it is active until `until`.

use rusqlite::params;

use super::record::{now_millis, rfc3339};
use super::{sql, Store, StoreError};

/// What identifies a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingKey {
    pub node: String,
    pub resource: String,
    pub attribute: String,
    /// Keyed digest of the actual value (see `drift`).
    pub actual: String,
}

/// A finding's history after this sighting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingSeen {
    /// RFC 3339.
    pub first_seen: String,
    pub last_seen: String,
    pub count: u64,
}

/// One acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgement {
    pub node: String,
    pub resource: String,
    pub by: String,
    pub reason: String,
    /// RFC 3339.
    pub until: String,
    pub until_ms: i64,
    pub at: String,
}

impl Store {
    /// Records that each finding was seen now; returns each one's history, in order.
    pub fn record_findings(&self, seen: &[FindingKey]) -> Result<Vec<FindingSeen>, StoreError> {
        let now = now_millis();
        let mut out = Vec::with_capacity(seen.len());
        for f in seen {
            self.conn
                .execute(
                    "INSERT INTO drift_findings (node, resource, attribute, actual, first_seen_ms, last_seen_ms, count)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5, 1)
                     ON CONFLICT (node, resource, attribute, actual)
                     DO UPDATE SET last_seen_ms = ?5, count = count + 1",
                    params![f.node, f.resource, f.attribute, f.actual, now],
                )
                .map_err(sql(&self.path, "record a drift finding"))?;
            let (first, last, count): (i64, i64, i64) = self
                .conn
                .query_row(
                    "SELECT first_seen_ms, last_seen_ms, count FROM drift_findings
                     WHERE node = ?1 AND resource = ?2 AND attribute = ?3 AND actual = ?4",
                    params![f.node, f.resource, f.attribute, f.actual],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .map_err(sql(&self.path, "read a drift finding"))?;
            out.push(FindingSeen {
                first_seen: rfc3339(first),
                last_seen: rfc3339(last),
                count: u64::try_from(count).unwrap_or(0),
            });
        }
        Ok(out)
    }

    /// Records an acknowledgement of `resource` on `node` until `until_ms`.
    pub fn acknowledge(
        &self,
        node: &str,
        resource: &str,
        by: &str,
        reason: &str,
        until_ms: i64,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO drift_acks (node, resource, acked_by, reason, until_ms, at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    node,
                    resource,
                    self.secrets.redact(by),
                    self.secrets.redact(reason),
                    until_ms,
                    now_millis()
                ],
            )
            .map_err(sql(&self.path, "record a drift acknowledgement"))?;
        Ok(())
    }

    /// The acknowledgements still in force (the latest per node and resource).
    pub fn active_acknowledgements(&self) -> Result<Vec<Acknowledgement>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT node, resource, acked_by, reason, until_ms, at_ms FROM drift_acks
                 WHERE until_ms > ?1 ORDER BY id",
            )
            .map_err(sql(&self.path, "read drift acknowledgements"))?;
        let rows = stmt
            .query_map(params![now_millis()], |row| {
                let until_ms: i64 = row.get(4)?;
                Ok(Acknowledgement {
                    node: row.get(0)?,
                    resource: row.get(1)?,
                    by: row.get(2)?,
                    reason: row.get(3)?,
                    until: rfc3339(until_ms),
                    until_ms,
                    at: rfc3339(row.get(5)?),
                })
            })
            .map_err(sql(&self.path, "read drift acknowledgements"))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row.map_err(sql(&self.path, "read a drift acknowledgement"))?);
        }
        Ok(out)
    }
}
