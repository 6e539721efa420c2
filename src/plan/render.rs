//! Rendering plans: text for people (per node the changes with diffs, a summary line per
//! datacenter and for the site) and JSON for programs. Secret-bearing content is already
//! reduced to line numbers and fingerprints in `Diff`, so neither form can show it.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::node::DatacenterName;
use crate::plan::{diff, Action, Change, Diff, NodePlan};

/// A node's planning result: its plan, or why none could be made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum NodeResult {
    Planned(NodePlan),
    Unreachable {
        node: crate::node::NodeName,
        datacenter: DatacenterName,
        error: String,
    },
    HostKey {
        node: crate::node::NodeName,
        datacenter: DatacenterName,
        error: String,
    },
    Failed {
        node: crate::node::NodeName,
        datacenter: DatacenterName,
        error: String,
    },
}

impl NodeResult {
    pub fn node(&self) -> &crate::node::NodeName {
        match self {
            NodeResult::Planned(p) => &p.node,
            NodeResult::Unreachable { node, .. }
            | NodeResult::HostKey { node, .. }
            | NodeResult::Failed { node, .. } => node,
        }
    }

    pub fn datacenter(&self) -> &DatacenterName {
        match self {
            NodeResult::Planned(p) => &p.datacenter,
            NodeResult::Unreachable { datacenter, .. }
            | NodeResult::HostKey { datacenter, .. }
            | NodeResult::Failed { datacenter, .. } => datacenter,
        }
    }
}

/// Counts for one summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub nodes: usize,
    pub in_sync: usize,
    pub with_changes: usize,
    pub changes: usize,
    pub unreachable: usize,
    pub failed: usize,
}

impl Summary {
    fn add(&mut self, result: &NodeResult) {
        self.nodes += 1;
        match result {
            NodeResult::Planned(p) if p.is_empty() => self.in_sync += 1,
            NodeResult::Planned(p) => {
                self.with_changes += 1;
                self.changes += p.changes.len();
            }
            NodeResult::Unreachable { .. } => self.unreachable += 1,
            NodeResult::HostKey { .. } | NodeResult::Failed { .. } => self.failed += 1,
        }
    }

    fn line(&self) -> String {
        let mut s = format!(
            "{} nodes: {} in sync, {} with changes ({} changes)",
            self.nodes, self.in_sync, self.with_changes, self.changes
        );
        if self.unreachable > 0 {
            let _ = write!(s, ", {} unreachable", self.unreachable);
        }
        if self.failed > 0 {
            let _ = write!(s, ", {} failed", self.failed);
        }
        s
    }
}

/// Summaries per datacenter and for the site.
pub fn summarize(results: &[NodeResult]) -> (BTreeMap<DatacenterName, Summary>, Summary) {
    let mut per_dc: BTreeMap<DatacenterName, Summary> = BTreeMap::new();
    let mut site = Summary::default();
    for r in results {
        per_dc.entry(r.datacenter().clone()).or_default().add(r);
        site.add(r);
    }
    (per_dc, site)
}

/// The plan as text, every node and every change (`--verbose`, and saved plans).
pub fn text(results: &[NodeResult]) -> String {
    let mut out = String::new();
    for r in results {
        node_text(&mut out, r);
    }
    summary_text(&mut out, results);
    out
}

/// The plan as text for a terminal: nodes whose changes are identical (one template
/// change reaching every front end) are shown once, with their names and the changes;
/// every other node one line (in sync, or why it could not be planned). Then the
/// summaries.
pub fn grouped(results: &[NodeResult]) -> String {
    let mut out = String::new();
    let mut groups: Vec<(Vec<&NodePlan>, &[Change])> = Vec::new();
    for r in results {
        let NodeResult::Planned(plan) = r else {
            continue;
        };
        if plan.is_empty() {
            continue;
        }
        match groups
            .iter_mut()
            .find(|(_, changes)| *changes == plan.changes.as_slice())
        {
            Some((plans, _)) => plans.push(plan),
            None => groups.push((vec![plan], plan.changes.as_slice())),
        }
    }
    for (plans, changes) in &groups {
        let n = changes.len();
        let _ = writeln!(
            out,
            "{}: {n} change{}",
            names(plans.iter().map(|p| (p.node.as_str(), &p.datacenter))),
            if n == 1 { "" } else { "s" }
        );
        for change in *changes {
            change_text(&mut out, change);
        }
    }
    for r in results {
        let shown_in_group = matches!(r, NodeResult::Planned(p) if !p.is_empty());
        if !shown_in_group {
            node_text(&mut out, r);
        }
    }
    summary_text(&mut out, results);
    out
}

/// `a, b (dc1), c (dc2)`: node names, each datacenter named once after its nodes.
pub fn names<'a>(nodes: impl Iterator<Item = (&'a str, &'a DatacenterName)>) -> String {
    let mut by_dc: Vec<(&DatacenterName, Vec<&str>)> = Vec::new();
    for (node, dc) in nodes {
        match by_dc.iter_mut().find(|(d, _)| *d == dc) {
            Some((_, list)) => list.push(node),
            None => by_dc.push((dc, vec![node])),
        }
    }
    by_dc
        .iter()
        .map(|(dc, list)| format!("{} ({dc})", list.join(", ")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn summary_text(out: &mut String, results: &[NodeResult]) {
    let (per_dc, site) = summarize(results);
    out.push('\n');
    for (dc, summary) in &per_dc {
        let _ = writeln!(out, "datacenter {dc}: {}", summary.line());
    }
    let _ = writeln!(out, "site: {}", site.line());
}

/// `error` without what the line already says: the node's name, and the state word
/// (`unreachable: `) the line puts before it. Errors carry both because they travel
/// far from the node they are about; a line that names the node need not repeat them.
pub fn tidy_error<'e>(node: &str, state: &str, error: &'e str) -> &'e str {
    let error = error
        .strip_prefix(node)
        .and_then(|e| e.strip_prefix(": "))
        .unwrap_or(error);
    error
        .strip_prefix(state)
        .and_then(|e| e.strip_prefix(": "))
        .unwrap_or(error)
}

fn node_text(out: &mut String, r: &NodeResult) {
    let (node, datacenter, label, state, error) = match r {
        NodeResult::Planned(plan) if plan.is_empty() => {
            let _ = writeln!(out, "{} ({}): in sync", plan.node, plan.datacenter);
            return;
        }
        NodeResult::Planned(plan) => {
            let n = plan.changes.len();
            let s = if n == 1 { "" } else { "s" };
            let _ = writeln!(out, "{} ({}): {n} change{s}", plan.node, plan.datacenter);
            for change in &plan.changes {
                change_text(out, change);
            }
            return;
        }
        NodeResult::Unreachable {
            node,
            datacenter,
            error,
        } => (node, datacenter, "unreachable", "unreachable", error),
        NodeResult::HostKey {
            node,
            datacenter,
            error,
        } => (
            node,
            datacenter,
            "host key refused",
            "host key not trusted",
            error,
        ),
        NodeResult::Failed {
            node,
            datacenter,
            error,
        } => (node, datacenter, "failed", "failed", error),
    };
    let error = tidy_error(node.as_str(), state, error);
    let _ = writeln!(out, "{node} ({datacenter}): {label}: {error}");
}

fn change_text(out: &mut String, change: &Change) {
    let sign = match change.action {
        Action::Create => '+',
        Action::Remove => '-',
        Action::Modify => '~',
        Action::Run | Action::Reload => '!',
    };
    let details: Vec<String> = change
        .details
        .iter()
        .filter(|d| d.from.is_some() || d.to.is_some())
        .map(|d| match (&d.from, &d.to) {
            (Some(f), Some(t)) => format!("{} {f} -> {t}", d.attr),
            (None, Some(t)) => format!("{} {t}", d.attr),
            (Some(f), None) => format!("{} {f} -> none", d.attr),
            (None, None) => d.attr.to_string(),
        })
        .collect();
    let _ = write!(out, "  {sign} {} {}", change.action.as_str(), change.id);
    if !details.is_empty() {
        let _ = write!(out, " ({})", details.join("; "));
    }
    out.push('\n');
    match &change.diff {
        Some(Diff::Text { unified }) => {
            for line in unified.lines() {
                let _ = writeln!(out, "      {line}");
            }
        }
        Some(Diff::Redacted {
            removed_lines,
            added_lines,
            secrets,
        }) => {
            let fps: Vec<String> = secrets.iter().map(|f| f.marker()).collect();
            let holds = if fps.is_empty() {
                "the node's copy held a secret; the new content holds none".to_string()
            } else {
                format!("holds {}", fps.join(" "))
            };
            let _ = writeln!(
                out,
                "      secret-bearing content: lines -{} +{}; {holds}",
                diff::ranges(removed_lines),
                diff::ranges(added_lines),
            );
        }
        Some(Diff::Unavailable { reason }) => {
            let _ = writeln!(out, "      (no diff: {reason})");
        }
        None => {}
    }
}

/// The plan as JSON: the node results and the summaries.
pub fn json(results: &[NodeResult]) -> serde_json::Value {
    let (per_dc, site) = summarize(results);
    serde_json::json!({
        "version": 1,
        "nodes": results,
        "datacenters": per_dc,
        "site": site,
    })
}
