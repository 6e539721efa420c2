//! Run history: an embedded SQLite database (default `.tandem/history.sqlite` in the
//! site) with one row per run, each node's outcome and timings, and each resource
//! change. A run is inserted as `running` when it starts and finished at the end; a run
//! whose process died first is marked `interrupted` when the store is next opened on the
//! same host (its pid is gone, or now belongs to a younger process), or by any run that
//! holds the site lock ([`Store::interrupt_orphans`]).
//!
//! WAL mode, so `tandem runs` reads while an apply writes; a busy timeout so two writers
//! queue instead of failing; the schema version lives in `PRAGMA user_version` and
//! [`MIGRATIONS`] upgrades older files in place. Everything written as text (command
//! line, errors, summaries) passes through the site's secret redaction first.
//!
//! A `Store` is one connection: `Send`, not `Sync`. The executor records from the task
//! that gathers node results, not from every node's task.

mod deliveries;
mod failover;
mod findings;
mod record;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::lock::{current_host, SiteLock};
use crate::outcome::Outcome;
use crate::rollout::RolloutReport;
use crate::secret::SecretStore;
pub use deliveries::{CommitDecision, Decision, Delivery};
pub use failover::{Failover, FailoverEnd, FailoverNode, FencePending, NewFailover};
pub use findings::{Acknowledgement, FindingKey, FindingSeen};
pub use record::{
    duration_text, ChangeAction, NewRun, NodeRun, ResourceChange, Run, RunDetail, RunId, RunKind,
    RunStatus,
};
use record::{now_millis, parse_rfc3339, rfc3339};

/// The history file, relative to the site root.
pub const DEFAULT_PATH: &str = ".tandem/history.sqlite";

/// Schema migrations; entry `n` takes `user_version` from `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        started_by TEXT NOT NULL,
        command TEXT NOT NULL,
        git_commit TEXT,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        pid_start INTEGER,
        started_ms INTEGER NOT NULL,
        finished_ms INTEGER,
        error TEXT
    );
    CREATE INDEX runs_by_status ON runs (status);
    CREATE TABLE node_runs (
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        node TEXT NOT NULL,
        datacenter TEXT,
        outcome TEXT NOT NULL,
        started_ms INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        error TEXT,
        PRIMARY KEY (run_id, node)
    );
    CREATE TABLE resource_changes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        node TEXT NOT NULL,
        resource TEXT NOT NULL,
        action TEXT NOT NULL,
        summary TEXT NOT NULL
    );
    CREATE INDEX changes_by_run ON resource_changes (run_id, node);",
    // What exactly was compiled: the commit alone credits it with uncommitted edits.
    "ALTER TABLE runs ADD COLUMN dirty INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN site_digest TEXT;",
    // Issue 10 (`tandem serve`): webhook deliveries (replays are refused by id, across
    // restarts) and what the daemon decided about each branch head it fetched.
    "CREATE TABLE deliveries (
        receiver TEXT NOT NULL,
        delivery_id TEXT NOT NULL,
        event TEXT NOT NULL,
        git_ref TEXT,
        pusher TEXT,
        result TEXT NOT NULL,
        received_ms INTEGER NOT NULL,
        run_id INTEGER REFERENCES runs (id) ON DELETE SET NULL,
        PRIMARY KEY (receiver, delivery_id)
    );
    CREATE INDEX deliveries_by_run ON deliveries (run_id);
    CREATE TABLE serve_commits (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        git_commit TEXT NOT NULL,
        decision TEXT NOT NULL,
        reason TEXT,
        run_id INTEGER REFERENCES runs (id) ON DELETE SET NULL,
        superseded_by TEXT,
        saved_plan TEXT,
        decided_ms INTEGER NOT NULL
    );
    CREATE INDEX serve_commits_by_run ON serve_commits (run_id);",
    // Issue 11 (`tandem drift`): each drift finding seen, and acknowledgements.
    "CREATE TABLE drift_findings (
        node TEXT NOT NULL,
        resource TEXT NOT NULL,
        attribute TEXT NOT NULL,
        actual TEXT NOT NULL,
        first_seen_ms INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (node, resource, attribute, actual)
    );
    CREATE TABLE drift_acks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        node TEXT NOT NULL,
        resource TEXT NOT NULL,
        acked_by TEXT NOT NULL,
        reason TEXT NOT NULL,
        until_ms INTEGER NOT NULL,
        at_ms INTEGER NOT NULL
    );
    CREATE INDEX drift_acks_by_resource ON drift_acks (node, resource);",
    // Issue 12: promotes, their nodes, and the nodes left fence pending.
    "CREATE TABLE failovers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        epoch INTEGER NOT NULL,
        from_dc TEXT NOT NULL,
        to_dc TEXT NOT NULL,
        started_by TEXT NOT NULL,
        reason TEXT NOT NULL,
        started_ms INTEGER NOT NULL,
        finished_ms INTEGER,
        status TEXT NOT NULL,
        error TEXT,
        demote_run INTEGER,
        promote_run INTEGER,
        git_commit TEXT,
        dns_change TEXT,
        dns_error TEXT
    );
    CREATE TABLE failover_nodes (
        failover_id INTEGER NOT NULL REFERENCES failovers (id) ON DELETE CASCADE,
        node TEXT NOT NULL,
        datacenter TEXT NOT NULL,
        step TEXT NOT NULL,
        outcome TEXT NOT NULL,
        error TEXT,
        PRIMARY KEY (failover_id, node, step)
    );
    CREATE TABLE fence_pending (
        node TEXT PRIMARY KEY,
        datacenter TEXT NOT NULL,
        failover_id INTEGER NOT NULL,
        epoch INTEGER NOT NULL,
        since_ms INTEGER NOT NULL
    );",
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the directory of the run history `{path}`: {error}")]
    Dir {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("run history `{path}`: cannot {action}: {error}")]
    Sql {
        path: PathBuf,
        action: &'static str,
        error: rusqlite::Error,
    },
    #[error("run history `{path}` has schema version {found}, newer than this tandem knows ({known}): upgrade tandem")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("run history `{path}` has schema version {found}, which tandem never writes: is it another program's database?")]
    BadVersion { path: PathBuf, found: i64 },
    #[error("no run `{id}` in the run history `{path}`")]
    NoSuchRun { path: PathBuf, id: RunId },
}

/// An open run history.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    secrets: SecretStore,
}

impl Store {
    /// Opens (creating it if needed) the history at `path`, migrates it, and marks this
    /// host's dead runs `interrupted`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let dir_error = |error| StoreError::Dir {
            path: path.to_path_buf(),
            error,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::state_dir::create(dir).map_err(dir_error)?;
        }
        crate::state_dir::private_file(path, &["-wal", "-shm", "-journal"]).map_err(dir_error)?;
        let conn = Connection::open(path).map_err(sql(path, "open it"))?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
            secrets: SecretStore::default(),
        };
        store.configure()?;
        store.migrate()?;
        store.reap_dead_local_runs()?;
        Ok(store)
    }

    /// [`Store::open`] on the site's default path.
    pub fn open_site(site_root: &Path) -> Result<Store, StoreError> {
        Store::open(&site_root.join(DEFAULT_PATH))
    }

    /// [`Store::open`], or `None` when there is no history file yet (reading commands
    /// should not create one).
    pub fn open_existing(path: &Path) -> Result<Option<Store>, StoreError> {
        if path.exists() {
            Store::open(path).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Redacts these secrets from every text written from now on.
    pub fn with_secrets(mut self, secrets: SecretStore) -> Store {
        self.secrets = secrets;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn configure(&self) -> Result<(), StoreError> {
        self.conn
            .busy_timeout(Duration::from_secs(10))
            .map_err(sql(&self.path, "set the busy timeout"))?;
        // A file system without shared memory keeps the old journal mode (the pragma
        // answers with it); the store still works then, only readers wait for writers.
        self.conn
            .pragma_update_and_check(None, "journal_mode", "wal", |row| row.get::<_, String>(0))
            .map_err(sql(&self.path, "switch to WAL mode"))?;
        self.conn
            .execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
            .map_err(sql(&self.path, "configure the connection"))
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
        let found: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(sql(&self.path, "read the schema version"))?;
        if found > known {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found,
                known,
            });
        }
        let Ok(done) = usize::try_from(found) else {
            return Err(StoreError::BadVersion {
                path: self.path.clone(),
                found,
            });
        };
        for (version, migration) in MIGRATIONS.iter().enumerate().skip(done) {
            // One transaction per step, version bump included, so a crash mid-upgrade
            // leaves the previous version intact.
            let batch = format!(
                "BEGIN IMMEDIATE; {migration}; PRAGMA user_version = {}; COMMIT;",
                version + 1
            );
            if let Err(error) = self.conn.execute_batch(&batch) {
                let _ = self.conn.execute_batch("ROLLBACK;");
                return Err(StoreError::Sql {
                    path: self.path.clone(),
                    action: "migrate the schema",
                    error,
                });
            }
        }
        Ok(())
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(sql(&self.path, "read the schema version"))
    }

    /// Records the start of a run, status `running`.
    pub fn begin(&self, run: &NewRun) -> Result<RunId, StoreError> {
        let pid = std::process::id();
        self.conn
            .execute(
                "INSERT INTO runs (kind, status, started_by, command, git_commit, dirty, site_digest, host, pid, pid_start, started_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    run.kind.as_str(),
                    RunStatus::Running.as_str(),
                    run.started_by,
                    self.secrets.redact(&run.command),
                    run.commit,
                    run.dirty,
                    run.site_digest,
                    current_host(),
                    pid,
                    process_start(pid),
                    now_millis(),
                ],
            )
            .map_err(sql(&self.path, "record the start of a run"))?;
        Ok(RunId(self.conn.last_insert_rowid()))
    }

    /// Records a node's outcome (replacing an earlier record of the same node).
    pub fn record_node(&self, run: RunId, node: &NodeRun) -> Result<(), StoreError> {
        let started = parse_rfc3339(&node.started_at).unwrap_or_else(now_millis);
        self.conn
            .execute(
                "INSERT OR REPLACE INTO node_runs (run_id, node, datacenter, outcome, started_ms, duration_ms, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    run.0,
                    node.node.as_str(),
                    node.datacenter.as_ref().map(|d| d.as_str()),
                    node.outcome.as_str(),
                    started,
                    node.duration_ms,
                    node.error.as_deref().map(|e| self.secrets.redact(e)),
                ],
            )
            .map_err(sql(&self.path, "record a node outcome"))?;
        Ok(())
    }

    /// Records one resource change.
    pub fn record_change(&self, run: RunId, change: &ResourceChange) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO resource_changes (run_id, node, resource, action, summary) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    run.0,
                    change.node.as_str(),
                    change.resource.to_string(),
                    change.action.as_str(),
                    self.secrets.redact(&change.summary),
                ],
            )
            .map_err(sql(&self.path, "record a resource change"))?;
        Ok(())
    }

    /// Records the end of a run.
    pub fn finish(
        &self,
        run: RunId,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let updated = self
            .conn
            .execute(
                "UPDATE runs SET status = ?2, finished_ms = ?3, error = ?4 WHERE id = ?1",
                params![
                    run.0,
                    status.as_str(),
                    now_millis(),
                    error.map(|e| self.secrets.redact(e))
                ],
            )
            .map_err(sql(&self.path, "record the end of a run"))?;
        if updated == 0 {
            return Err(StoreError::NoSuchRun {
                path: self.path.clone(),
                id: run,
            });
        }
        Ok(())
    }

    /// Finishes a run that went through the rollout driver: records the nodes it never
    /// attempted (the executor records the others as they finish), and sets the status:
    /// `halted` with the reason when the rollout halted, else from its exit status.
    pub fn finish_rollout(&self, run: RunId, report: &RolloutReport) -> Result<(), StoreError> {
        let now = SystemTime::now();
        for node in report
            .nodes
            .iter()
            .filter(|n| n.outcome == Outcome::NotAttempted)
        {
            let record = NodeRun::new(
                node.node.clone(),
                Some(node.datacenter.clone()),
                node.outcome,
                now,
                Duration::ZERO,
            );
            self.record_node(run, &record)?;
        }
        match &report.halt {
            Some(halt) => self.finish(run, RunStatus::Halted, Some(&halt.to_string())),
            None => self.finish(run, RunStatus::from_exit(report.exit_status()), None),
        }
    }

    /// Marks every `running` apply as interrupted. Only the holder of the site lock may
    /// call this: holding it proves that no other apply is running, on any host.
    pub fn interrupt_orphans(&self, _lock: &SiteLock) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "UPDATE runs SET status = 'interrupted', error = 'the run ended without recording its end (found by a later run holding the site lock)'
                 WHERE status = 'running' AND kind = 'apply'",
                [],
            )
            .map_err(sql(&self.path, "mark interrupted runs"))
    }

    /// Runs of this host left `running` by a process that is gone.
    fn reap_dead_local_runs(&self) -> Result<(), StoreError> {
        let host = current_host();
        let mut statement = self
            .conn
            .prepare("SELECT id, pid, pid_start FROM runs WHERE status = 'running' AND host = ?1")
            .map_err(sql(&self.path, "look for interrupted runs"))?;
        let candidates: Vec<(i64, u32, Option<i64>)> = statement
            .query_map([&host], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .and_then(|rows| rows.collect())
            .map_err(sql(&self.path, "look for interrupted runs"))?;
        for (id, pid, started) in candidates {
            let alive =
                process_start(pid).is_some_and(|now| started.is_none_or(|then| then == now));
            if !alive {
                let error =
                    format!("process {pid} on `{host}` ended without recording the end of the run");
                self.conn
                    .execute(
                        "UPDATE runs SET status = 'interrupted', error = ?2 WHERE id = ?1 AND status = 'running'",
                        params![id, error],
                    )
                    .map_err(sql(&self.path, "mark interrupted runs"))?;
            }
        }
        Ok(())
    }

    /// The newest `limit` runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<Run>, StoreError> {
        let mut statement = self
            .conn
            .prepare(&format!("{RUN_COLUMNS} ORDER BY id DESC LIMIT ?1"))
            .map_err(sql(&self.path, "list runs"))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let runs = statement
            .query_map([limit], run_from_row)
            .and_then(|rows| rows.collect())
            .map_err(sql(&self.path, "list runs"))?;
        Ok(runs)
    }

    /// One run with its nodes (by name) and changes (in recording order).
    pub fn run(&self, id: RunId) -> Result<RunDetail, StoreError> {
        let run = self
            .conn
            .query_row(
                &format!("{RUN_COLUMNS} WHERE id = ?1"),
                [id.0],
                run_from_row,
            )
            .optional()
            .map_err(sql(&self.path, "read a run"))?
            .ok_or_else(|| StoreError::NoSuchRun {
                path: self.path.clone(),
                id,
            })?;
        let nodes = self
            .conn
            .prepare("SELECT node, datacenter, outcome, started_ms, duration_ms, error FROM node_runs WHERE run_id = ?1 ORDER BY node")
            .and_then(|mut s| s.query_map([id.0], node_from_row)?.collect())
            .map_err(sql(&self.path, "read a run's nodes"))?;
        let changes = self
            .conn
            .prepare("SELECT node, resource, action, summary FROM resource_changes WHERE run_id = ?1 ORDER BY id")
            .and_then(|mut s| s.query_map([id.0], change_from_row)?.collect())
            .map_err(sql(&self.path, "read a run's changes"))?;
        Ok(RunDetail {
            run,
            nodes,
            changes,
        })
    }
}

const RUN_COLUMNS: &str = "SELECT id, kind, status, started_by, command, git_commit, host, pid, started_ms, finished_ms, error, dirty, site_digest FROM runs";

fn run_from_row(row: &Row<'_>) -> rusqlite::Result<Run> {
    let started: i64 = row.get(8)?;
    let finished: Option<i64> = row.get(9)?;
    Ok(Run {
        id: RunId(row.get(0)?),
        kind: parse_column(row, 1)?,
        status: parse_column(row, 2)?,
        started_by: row.get(3)?,
        command: row.get(4)?,
        commit: row.get(5)?,
        host: row.get(6)?,
        pid: row.get(7)?,
        started_at: rfc3339(started),
        finished_at: finished.map(rfc3339),
        duration_ms: finished.map(|f| f - started),
        error: row.get(10)?,
        dirty: row.get(11)?,
        site_digest: row.get(12)?,
    })
}

fn node_from_row(row: &Row<'_>) -> rusqlite::Result<NodeRun> {
    Ok(NodeRun {
        node: name_column(row, 0)?,
        datacenter: match row.get::<_, Option<String>>(1)? {
            Some(_) => Some(name_column(row, 1)?),
            None => None,
        },
        outcome: parse_column(row, 2)?,
        started_at: rfc3339(row.get(3)?),
        duration_ms: row.get(4)?,
        error: row.get(5)?,
    })
}

fn change_from_row(row: &Row<'_>) -> rusqlite::Result<ResourceChange> {
    Ok(ResourceChange {
        node: name_column(row, 0)?,
        resource: parse_column(row, 1)?,
        action: parse_column(row, 2)?,
        summary: row.get(3)?,
    })
}

/// A text column parsed with `FromStr`; a bad value is a conversion error naming it.
fn parse_column<T: std::str::FromStr<Err = String>>(
    row: &Row<'_>,
    index: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    text.parse().map_err(|err: String| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, err.into())
    })
}

/// A node or datacenter name column, checked as when it was recorded.
fn name_column<T: std::str::FromStr<Err = crate::node::NameError>>(
    row: &Row<'_>,
    index: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    text.parse().map_err(|err: crate::node::NameError| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, err.into())
    })
}

fn sql(path: &Path, action: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    move |error| StoreError::Sql {
        path,
        action,
        error,
    }
}

/// When process `pid` started (clock ticks since boot, `/proc/PID/stat` field 22), or
/// `None` when there is no such process. Tells a live run from a reused pid.
fn process_start(pid: u32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
