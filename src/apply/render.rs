//! An apply's report as text. By default: one line per node, and the steps of nodes that
//! changed or failed, grouped when they are identical (one template change reaching
//! every front end is shown once, with the nodes' names); then the rollout summary
//! (threshold rule, halt, not-attempted nodes), a line per datacenter and one for the
//! site. `verbose` lists every node with every step.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::deploy::DeployReport;
use super::{NodeReport, Outcome, StepStatus};
use crate::node::DatacenterName;
use crate::plan::render::{names, tidy_error};

/// The report as text (see the module doc).
pub fn text(report: &DeployReport, verbose: bool) -> String {
    let mut out = String::new();
    let shown = report
        .nodes
        .iter()
        .filter(|r| r.outcome != Outcome::NotAttempted);
    if verbose {
        for r in shown {
            node_text(&mut out, &format!("{} ({})", r.node, r.datacenter), r);
        }
    } else {
        let mut groups: Vec<Vec<&NodeReport>> = Vec::new();
        for r in shown {
            if r.outcome == Outcome::Unchanged {
                let _ = writeln!(out, "{} ({}): unchanged", r.node, r.datacenter);
                continue;
            }
            match groups.iter_mut().find(|g| same_steps(g[0], r)) {
                Some(group) => group.push(r),
                None => groups.push(vec![r]),
            }
        }
        for group in &groups {
            let label = names(group.iter().map(|r| (r.node.as_str(), &r.datacenter)));
            node_text(&mut out, &label, group[0]);
        }
    }
    out.push('\n');
    out.push_str(&report.rollout.to_string());
    if report.interrupted {
        let done: Vec<&str> = report
            .nodes
            .iter()
            .filter(|n| n.outcome != Outcome::NotAttempted)
            .map(|n| n.node.as_str())
            .collect();
        let _ = writeln!(
            out,
            "interrupted: no new node was started; nodes in flight finished their changes"
        );
        let _ = writeln!(out, "done: {}", list(&done));
        let not: Vec<&str> = report
            .nodes_with(Outcome::NotAttempted)
            .iter()
            .map(|n| n.as_str())
            .collect();
        let _ = writeln!(out, "not attempted: {}", list(&not));
    }
    if report.nodes.iter().any(|r| r.outcome == Outcome::HostKey) {
        out.push_str("nodes with refused host keys got no command; pin them with `tandem trust`\n");
    }
    summary(&mut out, &report.nodes);
    let status = if report.interrupted {
        "interrupted"
    } else {
        "recorded"
    };
    let _ = writeln!(
        out,
        "run {} {status}: `tandem runs show {}`",
        report.run, report.run
    );
    out
}

/// Two nodes read the same in the report: same outcome, same steps, same error text
/// once the node's own name is taken out of it.
fn same_steps(a: &NodeReport, b: &NodeReport) -> bool {
    let error = |r: &NodeReport| r.error.as_ref().map(|e| e.replace(r.node.as_str(), "NODE"));
    a.outcome == b.outcome
        && a.resources == b.resources
        && a.refused == b.refused
        && a.unsynced == b.unsynced
        && error(a) == error(b)
}

fn node_text(out: &mut String, label: &str, r: &NodeReport) {
    let _ = write!(out, "{label}: {}", r.outcome);
    if let Some(err) = &r.error {
        let state = match r.outcome {
            Outcome::HostKey => "host key not trusted",
            other => other.as_str(),
        };
        let _ = write!(out, ": {}", tidy_error(r.node.as_str(), state, err));
    }
    out.push('\n');
    for res in &r.resources {
        let mark = match res.status {
            StepStatus::Applied => "ok",
            StepStatus::Failed => "FAILED",
            StepStatus::Skipped => "skipped",
        };
        let _ = write!(out, "  {mark} {} {}", res.action.as_str(), res.id);
        if let (StepStatus::Failed, Some(err)) = (res.status, &res.error) {
            let _ = write!(out, ": {err}");
        }
        out.push('\n');
    }
    for id in &r.refused {
        let _ = writeln!(out, "  REFUSED {id}: its state changed since the plan");
    }
}

/// One line per datacenter and one for the site: nodes by outcome.
fn summary(out: &mut String, nodes: &[NodeReport]) {
    let mut per_dc: BTreeMap<&DatacenterName, BTreeMap<Outcome, usize>> = BTreeMap::new();
    let mut site: BTreeMap<Outcome, usize> = BTreeMap::new();
    for n in nodes {
        *per_dc
            .entry(&n.datacenter)
            .or_default()
            .entry(n.outcome)
            .or_default() += 1;
        *site.entry(n.outcome).or_default() += 1;
    }
    let line = |counts: &BTreeMap<Outcome, usize>| {
        let total: usize = counts.values().sum();
        let parts: Vec<String> = counts.iter().map(|(o, n)| format!("{n} {o}")).collect();
        format!("{total} nodes: {}", parts.join(", "))
    };
    for (dc, counts) in &per_dc {
        let _ = writeln!(out, "datacenter {dc}: {}", line(counts));
    }
    let _ = writeln!(out, "site: {}", line(&site));
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
