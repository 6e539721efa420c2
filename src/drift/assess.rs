//! One node's drift assessment: per resource of its current catalog, a [`Status`] from
//! the plan against the facts (in sync or not) and the node state file (what the last
//! apply converged it to).
//!
//! A resource that does not read in sync is:
//! - `pending` when the node state file has no line for it (no apply converged it yet),
//!   or when its desired digest changed since the apply (git moved) and what the probe
//!   reads still matches the apply's `expect` digest (the node holds what was applied);
//! - `drifted` (or `missing`, when it should exist and does not) when its desired digest
//!   is the one applied, or git moved and the node no longer holds what was applied
//!   either, or nothing tells (no state file, another digest key, a type whose in-sync
//!   state is not recorded): a report never excuses what it cannot tell apart.

use crate::catalog::Catalog;
use crate::drift::probe::Read;
use crate::drift::report::{AppliedSummary, AttributeDiff, Finding, NodeReport, Status};
use crate::fact::applied::{AppliedState, Digester};
use crate::fact::NodeFacts;
use crate::node_state::{self, insync};
use crate::plan::{Action, Change, NodePlan};
use crate::resource::{Resource, Spec};
use crate::store::FindingKey;

/// A node's report and the findings to record in the history (one per attribute of
/// each drifted or missing resource), as `(index in report.resources, key)`.
pub struct Assessed {
    pub report: NodeReport,
    pub keys: Vec<(usize, FindingKey)>,
}

/// Assesses one node from how it was read.
pub fn assess(catalog: &Catalog, read: &Read, digester: &Digester<'_>) -> Assessed {
    let node = &catalog.node;
    let mut report = NodeReport {
        node: node.name.to_string(),
        datacenter: node.datacenter.to_string(),
        role: node.role.to_string(),
        status: Status::InSync,
        assessed: false,
        reason: None,
        applied: None,
        resources: Vec::new(),
    };
    let (facts, plan) = match read {
        Read::Read { facts, plan, .. } => (facts, plan),
        Read::Unreachable(why) => return unassessed(report, catalog, Status::Unreachable, why),
        Read::HostKey(why) => return unassessed(report, catalog, Status::HostKey, why),
        Read::NotChecked(why) => return unassessed(report, catalog, Status::NotChecked, why),
    };
    report.assessed = true;
    report.applied = facts.applied.as_ref().map(|a| AppliedSummary {
        commit: a.commit.clone(),
        run: a.run,
        epoch: a.epoch,
        side: a.side.as_str().to_string(),
        at: a.at.clone(),
    });
    let mut keys = Vec::new();
    for (index, r) in catalog.resources.iter().enumerate() {
        let change = plan.change(&r.id);
        let (status, reason) = classify(r, index, change, facts, digester);
        let mut finding = Finding {
            resource: r.id.to_string(),
            status,
            reason,
            attributes: Vec::new(),
            diff: None,
            since: None,
            seen: None,
            acknowledged: None,
        };
        if let Some(change) = change.filter(|_| status != Status::InSync) {
            finding.attributes = change
                .details
                .iter()
                .map(|d| AttributeDiff {
                    attribute: d.attr.to_string(),
                    desired: d.to.clone(),
                    actual: d.from.clone(),
                })
                .collect();
            finding.diff = change.diff.clone();
            if status.is_fault() {
                let at = report.resources.len();
                for key in finding_keys(node.name.as_str(), r, change, plan, digester) {
                    keys.push((at, key));
                }
            }
        }
        report.resources.push(finding);
    }
    report.status = worst(&report.resources);
    Assessed { report, keys }
}

fn unassessed(mut report: NodeReport, catalog: &Catalog, status: Status, why: &str) -> Assessed {
    report.status = status;
    report.reason = Some(why.to_string());
    report.resources = catalog
        .resources
        .iter()
        .map(|r| Finding {
            resource: r.id.to_string(),
            status,
            reason: Some(format!("node not assessed: {}", status.as_str())),
            attributes: Vec::new(),
            diff: None,
            since: None,
            seen: None,
            acknowledged: None,
        })
        .collect();
    Assessed {
        report,
        keys: Vec::new(),
    }
}

/// The node's status: in sync only when every resource is.
fn worst(resources: &[Finding]) -> Status {
    let rank = |s: Status| match s {
        Status::Drifted | Status::Missing => 4,
        Status::NotChecked => 3,
        Status::Pending => 2,
        _ => 0,
    };
    resources
        .iter()
        .map(|f| f.status)
        .filter(|s| *s != Status::InSync)
        .max_by_key(|s| (rank(*s), *s == Status::Drifted))
        .unwrap_or(Status::InSync)
}

fn classify(
    r: &Resource,
    index: usize,
    change: Option<&Change>,
    facts: &NodeFacts,
    digester: &Digester<'_>,
) -> (Status, Option<String>) {
    let Some(change) = change else {
        return (Status::InSync, None);
    };
    match (&r.spec, change.action) {
        // A refresh follows another resource's change, which is reported itself.
        (_, Action::Reload) => return (Status::InSync, None),
        (Spec::Exec(e), Action::Run) if e.refresh_only => return (Status::InSync, None),
        (Spec::Exec(e), Action::Run)
            if e.creates.is_none() && e.unless.is_none() && e.onlyif.is_none() =>
        {
            return (
                Status::NotChecked,
                Some("an exec without `creates`, `unless` or `onlyif` has no state to read".into()),
            )
        }
        _ => {}
    }
    let fault = if change.action == Action::Create {
        Status::Missing
    } else {
        Status::Drifted
    };
    let Some(applied) = &facts.applied else {
        let why = match &facts.applied_error {
            Some(err) => format!("{err}; pending cannot be told from drifted"),
            None => "no node state file (never applied by a tandem that writes one); pending cannot be told from drifted".into(),
        };
        return (fault, Some(why));
    };
    judge(r, index, facts, applied, digester, fault)
}

fn judge(
    r: &Resource,
    index: usize,
    facts: &NodeFacts,
    applied: &AppliedState,
    digester: &Digester<'_>,
    fault: Status,
) -> (Status, Option<String>) {
    let Some(line) = node_state::line(applied, &r.id) else {
        return (
            Status::Pending,
            Some("no apply has converged it yet (new in git since the last apply, or its step failed)".into()),
        );
    };
    if applied.key != digester.key_id() {
        return (
            fault,
            Some("the node state file's digests were made with another digest key; pending cannot be told from drifted".into()),
        );
    }
    if line.desired == node_state::desired(digester, &r.spec) {
        return (fault, None);
    }
    let commit = applied.commit.as_deref().unwrap_or("unknown");
    match &line.expect {
        Some(expect) => {
            let observed = insync::observed(&r.spec, index, facts, &line.attrs);
            if &digester.projection(&observed) == expect {
                (
                    Status::Pending,
                    Some(format!("git changed it since the last apply (commit {commit}); the node still holds what that apply converged it to")),
                )
            } else {
                (
                    fault,
                    Some(format!("git changed it since the last apply (commit {commit}), and the node no longer holds what that apply converged it to either")),
                )
            }
        }
        None if matches!(r.spec, Spec::Exec(_)) => (
            Status::Pending,
            Some(format!("the exec changed in git since the last apply (commit {commit})")),
        ),
        None => (
            fault,
            Some("git changed it since the last apply, and its in-sync state is not recorded for this type; pending cannot be told from drifted".into()),
        ),
    }
}

/// One history key per attribute (or one `presence` key): the actual value's digest
/// combines the attribute's reported value and the digest of everything read.
fn finding_keys(
    node: &str,
    r: &Resource,
    change: &Change,
    plan: &NodePlan,
    digester: &Digester<'_>,
) -> Vec<FindingKey> {
    let read = plan
        .read
        .iter()
        .find(|s| s.id == r.id)
        .map_or("", |s| s.digest.as_str());
    let mut attrs: Vec<(String, String)> = change
        .details
        .iter()
        .map(|d| (d.attr.to_string(), d.from.clone().unwrap_or_default()))
        .collect();
    if attrs.is_empty() {
        attrs.push(("presence".into(), change.action.as_str().into()));
    }
    attrs
        .into_iter()
        .map(|(attr, value)| FindingKey {
            node: node.to_string(),
            resource: r.id.to_string(),
            actual: digester.digest(
                "tandem drift actual",
                format!("{attr}\0{value}\0{read}").as_bytes(),
            ),
            attribute: attr,
        })
        .collect()
}
