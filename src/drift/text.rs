//! The drift report for a terminal: the summary first (coverage, counts, pass or fail
//! and why), then only what is not in sync (with `verbose`, everything).

use std::fmt::Write;

use crate::drift::report::{Finding, Report, Status};
use crate::plan::{diff, Diff};

pub fn render(report: &Report, verbose: bool) -> String {
    let mut out = String::new();
    let commit = match (&report.commit, report.dirty) {
        (Some(c), true) => format!("{c} (with uncommitted changes)"),
        (Some(c), false) => c.clone(),
        (None, _) => "none (not a git repository)".into(),
    };
    let _ = writeln!(
        out,
        "drift report: site `{}`, commit {commit}, tandem {}, {}",
        report.site, report.tandem_version, report.generated_at
    );
    let c = &report.coverage;
    let _ = writeln!(
        out,
        "coverage: {} nodes expected, {} assessed, {} not assessed",
        c.expected, c.assessed, c.not_assessed
    );
    for dc in &c.datacenters {
        match &dc.error {
            Some(err) => {
                let _ = writeln!(out, "  datacenter {}: NOT DISCOVERED: {err}", dc.name);
            }
            None => {
                let _ = writeln!(
                    out,
                    "  datacenter {}: {} expected, {} assessed",
                    dc.name, dc.expected, dc.assessed
                );
            }
        }
    }
    let s = &report.summary;
    let counts: Vec<String> = Status::ALL
        .iter()
        .map(|st| format!("{} {}", s.count(*st), st.as_str()))
        .collect();
    let _ = writeln!(
        out,
        "resources: {}; {} acknowledged; {} parity breaks",
        counts.join(", "),
        s.acknowledged,
        s.parity_breaks
    );
    let verdict = if report.result.passed { "PASS" } else { "FAIL" };
    let _ = write!(out, "result: {verdict} (exit {})", report.result.exit_code);
    if !report.result.reasons.is_empty() {
        let _ = write!(out, ": {}", report.result.reasons.join("; "));
    }
    out.push('\n');

    for node in &report.nodes {
        let shown: Vec<&Finding> = node
            .resources
            .iter()
            .filter(|f| verbose || (node.assessed && f.status != Status::InSync))
            .collect();
        if !verbose && node.status == Status::InSync {
            continue;
        }
        let _ = write!(
            out,
            "\n{} ({}, role {}): {}",
            node.node,
            node.datacenter,
            node.role,
            node.status.as_str()
        );
        if let Some(reason) = &node.reason {
            let _ = write!(out, ": {reason}");
        }
        out.push('\n');
        if !node.assessed && !verbose {
            let _ = writeln!(out, "  {} resources not assessed", node.resources.len());
        }
        for f in shown {
            finding(&mut out, f);
        }
    }
    if !report.parity.is_empty() {
        out.push_str("\nparity breaks (actual state, between datacenters):\n");
        for p in &report.parity {
            let [a, b] = &p.datacenters;
            let values = |dc: &String| p.values.get(dc).map(|v| v.join(", ")).unwrap_or_default();
            let _ = writeln!(
                out,
                "  role {}, {}: {a} has [{}], {b} has [{}]",
                p.role,
                p.fact,
                values(a),
                values(b)
            );
        }
    }
    out
}

fn finding(out: &mut String, f: &Finding) {
    let _ = write!(out, "  {} {}", f.status.as_str(), f.resource);
    if let Some(since) = &f.since {
        let _ = write!(out, " (since {since}, seen {} times)", f.seen.unwrap_or(1));
    }
    out.push('\n');
    if let Some(ack) = &f.acknowledged {
        let _ = writeln!(
            out,
            "      acknowledged by {} until {}: {}",
            ack.by, ack.until, ack.reason
        );
    }
    if let Some(reason) = &f.reason {
        let _ = writeln!(out, "      {reason}");
    }
    for a in &f.attributes {
        let _ = writeln!(
            out,
            "      {}: desired {}, actual {}",
            a.attribute,
            a.desired.as_deref().unwrap_or("(see diff)"),
            a.actual.as_deref().unwrap_or("(see diff)")
        );
    }
    for line in diff_lines(f.diff.as_ref()) {
        let _ = writeln!(out, "      {line}");
    }
}

/// A diff as lines: unified text (`-` the node's, `+` git's), or for secret-bearing
/// content only the changed line numbers and the secrets' fingerprints.
pub fn diff_lines(d: Option<&Diff>) -> Vec<String> {
    match d {
        Some(Diff::Text { unified }) => {
            let mut lines = vec!["diff (- on the node, + in git):".to_string()];
            lines.extend(unified.lines().map(str::to_string));
            lines
        }
        Some(Diff::Redacted {
            removed_lines,
            added_lines,
            secrets,
        }) => {
            let fps: Vec<String> = secrets.iter().map(|f| f.marker()).collect();
            vec![format!(
                "secret-bearing content: lines -{} +{}; holds {}",
                diff::ranges(removed_lines),
                diff::ranges(added_lines),
                if fps.is_empty() {
                    "no secret now".to_string()
                } else {
                    fps.join(" ")
                }
            )]
        }
        Some(Diff::Unavailable { reason }) => vec![format!("(no diff: {reason})")],
        None => Vec::new(),
    }
}
