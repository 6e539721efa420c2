//! What the status pages show, as plain serializable data: the JSON API prints these
//! as they are, the HTML pages render them. The field names are the API: add fields,
//! never rename one ([`VERSION`] goes up if one ever has to change).
//!
//! The history keeps each change as a one-line summary (secrets redacted on write),
//! not the full diff: a run's page shows the summaries.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::{RunDetail, RunId};

/// The version of the JSON documents' shape.
pub const VERSION: u32 = 1;

/// Node counts: how many, and how many of each outcome (outcome words as in
/// `tandem runs show`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub total: u64,
    pub by_outcome: BTreeMap<&'static str, u64>,
}

impl Counts {
    fn add(&mut self, outcome: &'static str) {
        self.total += 1;
        *self.by_outcome.entry(outcome).or_insert(0) += 1;
    }

    /// `2 changed, 1 failed`, or `none`.
    pub fn words(&self) -> String {
        if self.total == 0 {
            return "none".into();
        }
        self.by_outcome
            .iter()
            .map(|(outcome, n)| format!("{n} {outcome}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One datacenter's nodes in a run; `datacenter` is `null` for nodes recorded without.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatacenterCounts {
    pub datacenter: Option<String>,
    #[serde(flatten)]
    pub counts: Counts,
}

/// A webhook delivery that asked for a run (several may share one run). Every field
/// but `receiver` and `received_at` is as the sender's payload named it: shown, never
/// trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trigger {
    /// `github`, `gitlab` or `generic`.
    pub receiver: String,
    /// The sender's delivery id.
    pub delivery: String,
    /// `push`, ...
    pub event: String,
    pub git_ref: Option<String>,
    pub pusher: Option<String>,
    /// RFC 3339, UTC.
    pub received_at: String,
}

impl Trigger {
    /// `github push of refs/heads/master by alice`.
    pub fn words(&self) -> String {
        let mut out = format!("{} {}", self.receiver, self.event);
        if let Some(git_ref) = &self.git_ref {
            out.push_str(&format!(" of {git_ref}"));
        }
        if let Some(pusher) = &self.pusher {
            out.push_str(&format!(" by {pusher}"));
        }
        out
    }
}

/// A run as the runs list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    pub id: RunId,
    /// The page of this run; `.json` after it for the JSON document.
    pub url: String,
    pub kind: &'static str,
    pub status: &'static str,
    pub commit: Option<String>,
    /// The compiled site differed from `commit` (uncommitted changes).
    pub dirty: bool,
    pub started_by: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    pub nodes: Counts,
    pub datacenters: Vec<DatacenterCounts>,
    /// The deliveries that asked for this run, oldest first; empty for a run started
    /// from the command line (or when the daemon's records are not wired in).
    pub triggers: Vec<Trigger>,
}

/// `GET /runs.json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunList {
    pub version: u32,
    pub runs: Vec<RunSummary>,
}

/// One node's part in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeView {
    pub node: String,
    pub datacenter: Option<String>,
    pub outcome: &'static str,
    pub started_at: String,
    pub duration_ms: i64,
    pub error: Option<String>,
}

/// One resource change made (apply) or proposed (plan).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeView {
    pub node: String,
    /// `file:/etc/nginx/nginx.conf`.
    pub resource: String,
    pub action: &'static str,
    /// The plan's one line for people (never a secret value).
    pub summary: String,
}

/// `GET /runs/{id}.json`: the summary's fields, then everything recorded under it.
#[derive(Debug, Clone, Serialize)]
pub struct RunPage {
    pub version: u32,
    #[serde(flatten)]
    pub summary: RunSummary,
    /// The command line, secrets redacted.
    pub command: String,
    pub host: String,
    pub pid: u32,
    pub site_digest: Option<String>,
    pub node_runs: Vec<NodeView>,
    pub changes: Vec<ChangeView>,
}

impl RunSummary {
    pub fn of(detail: &RunDetail, triggers: Vec<Trigger>) -> RunSummary {
        let run = &detail.run;
        let mut nodes = Counts::default();
        let mut by_dc: BTreeMap<Option<String>, Counts> = BTreeMap::new();
        for node in &detail.nodes {
            let outcome = node.outcome.as_str();
            nodes.add(outcome);
            by_dc
                .entry(node.datacenter.as_ref().map(ToString::to_string))
                .or_default()
                .add(outcome);
        }
        RunSummary {
            id: run.id,
            url: format!("/runs/{}", run.id),
            kind: run.kind.as_str(),
            status: run.status.as_str(),
            commit: run.commit.clone(),
            dirty: run.dirty,
            started_by: run.started_by.clone(),
            started_at: run.started_at.clone(),
            finished_at: run.finished_at.clone(),
            duration_ms: run.duration_ms,
            error: run.error.clone(),
            nodes,
            datacenters: by_dc
                .into_iter()
                .map(|(datacenter, counts)| DatacenterCounts { datacenter, counts })
                .collect(),
            triggers,
        }
    }
}

impl RunPage {
    pub fn of(detail: &RunDetail, triggers: Vec<Trigger>) -> RunPage {
        let run = &detail.run;
        RunPage {
            version: VERSION,
            summary: RunSummary::of(detail, triggers),
            command: run.command.clone(),
            host: run.host.clone(),
            pid: run.pid,
            site_digest: run.site_digest.clone(),
            node_runs: detail
                .nodes
                .iter()
                .map(|n| NodeView {
                    node: n.node.to_string(),
                    datacenter: n.datacenter.as_ref().map(ToString::to_string),
                    outcome: n.outcome.as_str(),
                    started_at: n.started_at.clone(),
                    duration_ms: n.duration_ms,
                    error: n.error.clone(),
                })
                .collect(),
            changes: detail
                .changes
                .iter()
                .map(|c| ChangeView {
                    node: c.node.to_string(),
                    resource: c.resource.to_string(),
                    action: c.action.as_str(),
                    summary: c.summary.clone(),
                })
                .collect(),
        }
    }
}
