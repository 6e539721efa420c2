//! Saved-plan guards: what a saved plan read and meant to do per resource
//! ([`Expect`]), and the check, made right after a node is probed again, that every
//! resource still reads as it did then. Any difference refuses the node by resource
//! name, with what changed, before its apply script is built, so the node is untouched.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::catalog::Catalog;
use crate::fact::NodeFacts;
use crate::plan::{self, NodePlan};
use crate::resource::ResourceId;

/// One node to apply: its catalog and, for a saved plan, what the plan read and which
/// machine it read it from.
#[derive(Debug, Clone)]
pub struct Job {
    pub catalog: Catalog,
    pub expect: Option<Vec<Expect>>,
    pub identity: Option<NodeIdentity>,
    /// What the run's settling probe read of the node moments ago, when its apply
    /// follows at once (the rollout's first batch): the apply plans from it instead of
    /// probing again, and its script's verifying probe reads what the steps left.
    pub probed: Option<Settled>,
}

/// What a run's settling probe read of a node, and how long it took.
#[derive(Debug, Clone)]
pub struct Settled {
    pub facts: Arc<NodeFacts>,
    /// Connecting, probing, planning: part of the node's own time in its report, with
    /// its apply.
    pub took: Duration,
}

impl Job {
    /// A job that converges `catalog` to whatever the node holds now.
    pub fn new(catalog: Catalog) -> Job {
        Job {
            catalog,
            expect: None,
            identity: None,
            probed: None,
        }
    }
}

/// The machine a saved plan read: an apply of the plan goes nowhere else. The address
/// is compared before connecting, the host key after tandem's known_hosts verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    pub address: String,
    pub port: u16,
    /// `TYPE SHA256:…`; `None` when the plan's transport had no host key.
    pub host_key: Option<String>,
}

/// A resource whose state moved between a saved plan and its apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaleResource {
    pub id: ResourceId,
    /// What changed, for people: `planned: modify (content); now: modify (content, mode)`.
    pub what: String,
}

pub(crate) fn stale_list(resources: &[StaleResource]) -> String {
    let parts: Vec<String> = resources
        .iter()
        .map(|r| format!("`{}` ({})", r.id, r.what))
        .collect();
    parts.join(", ")
}

/// What a saved plan read and meant to do for one resource; an apply of the saved plan
/// touches a node only when every resource still reads the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub id: ResourceId,
    /// [`plan::ReadState::digest`] at planning time.
    pub read_digest: String,
    /// The planned change as [`change_summary`] words it (`in sync` when none).
    pub planned: String,
}

/// The resources whose read state differs from what the saved plan read, or that are
/// in one of catalog and plan but not the other.
pub(crate) fn stale_resources(expect: &[Expect], plan: &NodePlan) -> Vec<StaleResource> {
    let now = |id: &ResourceId| change_summary(plan.change(id));
    let mut stale = Vec::new();
    for read in &plan.read {
        match expect.iter().find(|e| e.id == read.id) {
            None => stale.push(StaleResource {
                id: read.id.clone(),
                what: "not in the saved plan".into(),
            }),
            Some(e) if e.read_digest != read.digest => stale.push(StaleResource {
                id: read.id.clone(),
                what: format!(
                    "its state changed since the plan; planned: {}; now: {}",
                    e.planned,
                    now(&read.id)
                ),
            }),
            Some(_) => {}
        }
    }
    for e in expect {
        if !plan.read.iter().any(|r| r.id == e.id) {
            stale.push(StaleResource {
                id: e.id.clone(),
                what: "in the saved plan but no longer in the catalog".into(),
            });
        }
    }
    stale
}

/// A change in a few words, never a value: `modify (content, mode)`, or `in sync`.
pub fn change_summary(change: Option<&plan::Change>) -> String {
    match change {
        None => "in sync".into(),
        Some(c) if c.details.is_empty() => c.action.as_str().into(),
        Some(c) => {
            let attrs: Vec<&str> = c.details.iter().map(|d| d.attr.as_ref()).collect();
            format!("{} ({})", c.action.as_str(), attrs.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{DatacenterName, NodeName};
    use crate::plan::{Action, Change, Detail, ReadState};
    use crate::resource::ResourceKind;

    fn id(name: &str) -> ResourceId {
        ResourceId::new(ResourceKind::File, name)
    }

    fn expect(name: &str, digest: &str, planned: &str) -> Expect {
        Expect {
            id: id(name),
            read_digest: digest.into(),
            planned: planned.into(),
        }
    }

    fn plan_now() -> NodePlan {
        let mut change = Change::new(&id("/a"), Action::Modify);
        change.details.push(Detail::new("mode", None, None));
        NodePlan {
            node: NodeName::new("n").unwrap(),
            datacenter: DatacenterName::new("dc").unwrap(),
            changes: vec![change],
            host_key: None,
            record_stale: false,
            read: vec![
                ReadState {
                    id: id("/a"),
                    digest: "a2".into(),
                },
                ReadState {
                    id: id("/b"),
                    digest: "b1".into(),
                },
            ],
        }
    }

    #[test]
    fn unchanged_reads_pass() {
        let ok = [
            expect("/a", "a2", "modify (mode)"),
            expect("/b", "b1", "in sync"),
        ];
        assert!(stale_resources(&ok, &plan_now()).is_empty());
    }

    #[test]
    fn a_moved_resource_is_named_with_what_changed() {
        let planned = [expect("/a", "a1", "create"), expect("/b", "b1", "in sync")];
        let stale = stale_resources(&planned, &plan_now());
        assert_eq!(stale.len(), 1);
        assert_eq!(stale[0].id, id("/a"));
        assert!(
            stale[0]
                .what
                .contains("planned: create; now: modify (mode)"),
            "{}",
            stale[0].what
        );
    }

    #[test]
    fn resources_in_only_one_side_are_stale() {
        let planned = [
            expect("/a", "a2", "modify (mode)"),
            expect("/c", "c1", "create"),
        ];
        let stale = stale_resources(&planned, &plan_now());
        let ids: Vec<String> = stale.iter().map(|s| s.id.to_string()).collect();
        assert_eq!(ids, vec!["file:/b", "file:/c"]);
        assert!(stale[1].what.contains("no longer in the catalog"));
    }
}
