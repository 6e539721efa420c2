//! The drift report: plain data, serialized as the JSON format (schema
//! `docs/drift.schema.json`, [`SCHEMA_VERSION`]: additive changes bump the minor) and
//! rendered by `text`, `html` and `junit`. Values in it are what a plan may show:
//! secret-bearing content only as line numbers and fingerprints.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::exit::Status as Exit;
use crate::plan::Diff;

/// The JSON format's version (semver).
pub const SCHEMA_VERSION: &str = "1.0.0";

/// One resource's status (or, for a node not assessed, why it was not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    InSync,
    Drifted,
    Pending,
    Missing,
    Unreachable,
    HostKey,
    NotChecked,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::InSync,
        Status::Drifted,
        Status::Pending,
        Status::Missing,
        Status::Unreachable,
        Status::HostKey,
        Status::NotChecked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::InSync => "in_sync",
            Status::Drifted => "drifted",
            Status::Pending => "pending",
            Status::Missing => "missing",
            Status::Unreachable => "unreachable",
            Status::HostKey => "host_key",
            Status::NotChecked => "not_checked",
        }
    }

    /// Drifted or missing: the node no longer holds what was applied.
    pub fn is_fault(self) -> bool {
        matches!(self, Status::Drifted | Status::Missing)
    }

    /// The node (or resource) was not assessed.
    pub fn is_unassessed(self) -> bool {
        matches!(
            self,
            Status::Unreachable | Status::HostKey | Status::NotChecked
        )
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: &'static str,
    pub tandem_version: &'static str,
    /// RFC 3339, when the nodes were read.
    pub generated_at: String,
    pub site: String,
    pub commit: Option<String>,
    pub dirty: bool,
    /// The `--on` selector, when one was given.
    pub selector: Option<String>,
    pub coverage: Coverage,
    /// Resources per status (acknowledged findings included in their status).
    pub summary: Summary,
    pub result: Outcome,
    pub nodes: Vec<NodeReport>,
    pub parity: Vec<ParityBreak>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Coverage {
    /// Nodes the inventory lists for the selection.
    pub expected: usize,
    pub assessed: usize,
    pub not_assessed: usize,
    pub datacenters: Vec<DatacenterCoverage>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatacenterCoverage {
    pub name: String,
    pub discovered: bool,
    /// Why discovery failed.
    pub error: Option<String>,
    pub expected: usize,
    pub assessed: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub in_sync: usize,
    pub drifted: usize,
    pub pending: usize,
    pub missing: usize,
    pub unreachable: usize,
    pub host_key: usize,
    pub not_checked: usize,
    /// Drifted or missing resources whose finding is acknowledged (not failing).
    pub acknowledged: usize,
    pub parity_breaks: usize,
}

impl Summary {
    pub fn count(&self, status: Status) -> usize {
        match status {
            Status::InSync => self.in_sync,
            Status::Drifted => self.drifted,
            Status::Pending => self.pending,
            Status::Missing => self.missing,
            Status::Unreachable => self.unreachable,
            Status::HostKey => self.host_key,
            Status::NotChecked => self.not_checked,
        }
    }

    fn add(&mut self, status: Status) {
        *match status {
            Status::InSync => &mut self.in_sync,
            Status::Drifted => &mut self.drifted,
            Status::Pending => &mut self.pending,
            Status::Missing => &mut self.missing,
            Status::Unreachable => &mut self.unreachable,
            Status::HostKey => &mut self.host_key,
            Status::NotChecked => &mut self.not_checked,
        } += 1;
    }
}

/// Pass or fail, the exit code, and every reason for failing.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub passed: bool,
    pub exit_code: i32,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub node: String,
    pub datacenter: String,
    pub role: String,
    /// `in_sync` when every resource is; otherwise the worst resource status, or why the
    /// node was not assessed (`unreachable`, `host_key`, `not_checked`).
    pub status: Status,
    pub assessed: bool,
    /// Why the node was not assessed.
    pub reason: Option<String>,
    /// The node state file the last apply left (`None`: none on the node).
    pub applied: Option<AppliedSummary>,
    pub resources: Vec<Finding>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppliedSummary {
    pub commit: Option<String>,
    pub run: Option<i64>,
    pub epoch: u64,
    pub side: String,
    pub at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub resource: String,
    pub status: Status,
    /// Why this status (always set for `pending`, `not_checked` and not-assessed nodes).
    pub reason: Option<String>,
    pub attributes: Vec<AttributeDiff>,
    pub diff: Option<Diff>,
    /// When this drift was first seen (run history of this control node).
    pub since: Option<String>,
    /// How many reports have seen it.
    pub seen: Option<u64>,
    pub acknowledged: Option<Ack>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttributeDiff {
    pub attribute: String,
    pub desired: Option<String>,
    pub actual: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ack {
    pub by: String,
    pub reason: String,
    pub until: String,
}

/// A fact that differs between two datacenters for one role.
#[derive(Debug, Clone, Serialize)]
pub struct ParityBreak {
    pub role: String,
    /// `os_release`, `kernel_release`, `package:NAME`, `service:NAME`, `resource:ID`.
    pub fact: String,
    pub datacenters: [String; 2],
    /// Per datacenter, the distinct values read (for `resource:ID`, the statuses).
    pub values: BTreeMap<String, Vec<String>>,
}

impl Report {
    /// Fills `summary` and `result` from nodes, parity and coverage. Exit codes: 4 when
    /// some node was not assessed, a datacenter was not discovered or no node was
    /// assessed; else 2 for an unacknowledged drifted or missing resource or a parity
    /// break; else 0.
    pub fn conclude(&mut self) {
        let mut summary = Summary::default();
        let mut faults = 0;
        for node in &self.nodes {
            for r in &node.resources {
                summary.add(r.status);
                if r.status.is_fault() {
                    if r.acknowledged.is_some() {
                        summary.acknowledged += 1;
                    } else {
                        faults += 1;
                    }
                }
            }
        }
        summary.parity_breaks = self.parity.len();
        let mut reasons = Vec::new();
        let c = &self.coverage;
        if c.assessed == 0 {
            reasons.push("no node was assessed".to_string());
        }
        if c.not_assessed > 0 {
            reasons.push(format!(
                "{} of {} nodes were not assessed",
                c.not_assessed, c.expected
            ));
        }
        for dc in c.datacenters.iter().filter(|d| !d.discovered) {
            reasons.push(format!("datacenter `{}` was not discovered", dc.name));
        }
        let unassessed = !reasons.is_empty();
        if faults > 0 {
            reasons.push(format!("{faults} resources drifted or missing"));
        }
        if !self.parity.is_empty() {
            reasons.push(format!("{} parity breaks", self.parity.len()));
        }
        let exit = if unassessed {
            Exit::Unreachable
        } else if faults > 0 || !self.parity.is_empty() {
            Exit::Pending
        } else {
            Exit::Ok
        };
        self.summary = summary;
        self.result = Outcome {
            passed: reasons.is_empty(),
            exit_code: i32::from(exit.code()),
            reasons,
        };
    }

    pub fn exit(&self) -> Exit {
        match self.result.exit_code {
            0 => Exit::Ok,
            2 => Exit::Pending,
            _ => Exit::Unreachable,
        }
    }

    /// Resources per datacenter and status, for the daemon's
    /// `tandem_drift_resources{datacenter,status}` gauge.
    pub fn resources_by_datacenter(&self) -> BTreeMap<(String, Status), usize> {
        let mut out = BTreeMap::new();
        for node in &self.nodes {
            for r in &node.resources {
                *out.entry((node.datacenter.clone(), r.status)).or_insert(0) += 1;
            }
        }
        out
    }

    pub fn to_json(&self) -> String {
        // Plain data with string keys: serializing cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
