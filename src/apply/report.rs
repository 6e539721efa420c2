//! What an apply reports per node and resource, how a node's error becomes its outcome,
//! and the exit status of a plan or an apply (precedence in the `apply` module doc).

use serde::Serialize;

use super::NodeError;
use crate::exit::Status;
use crate::node::{DatacenterName, NodeName};
use crate::outcome::Outcome;
use crate::plan::render::NodeResult;
use crate::plan::Action;
use crate::resource::ResourceId;
use crate::transport::TransportError;

/// What happened to one resource's change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Applied,
    Failed,
    /// A resource it depends on failed or was skipped.
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceReport {
    pub id: ResourceId,
    pub action: Action,
    pub status: StepStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One node's apply.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub node: NodeName,
    pub datacenter: DatacenterName,
    pub outcome: Outcome,
    pub resources: Vec<ResourceReport>,
    /// Resources not in sync after the apply (the node is failed when any).
    pub unsynced: Vec<ResourceId>,
    /// Resources whose state moved since the saved plan (the node was left untouched).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<ResourceId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub round_trips: u32,
    /// The node's own time: its commands (the settling probe whose facts its apply used,
    /// and the apply), not the wait for other nodes in between.
    pub elapsed_ms: u128,
}

pub(super) fn outcome_of(err: &NodeError) -> Outcome {
    match err {
        NodeError::Transport(TransportError::HostKey { .. }) => Outcome::HostKey,
        // A connection lost mid-run is a node gone unreachable, not a failed change:
        // what it applied before the loss is unknown, and the next run reads it again.
        NodeError::Transport(
            TransportError::Unreachable { .. }
            | TransportError::Auth { .. }
            | TransportError::Lost { .. }
            | TransportError::NotSent { .. },
        ) => Outcome::Unreachable,
        _ => Outcome::Failed,
    }
}

pub(super) fn node_failure(
    err: NodeError,
    node: NodeName,
    datacenter: DatacenterName,
) -> NodeResult {
    let error = err.to_string();
    match outcome_of(&err) {
        Outcome::HostKey => NodeResult::HostKey {
            node,
            datacenter,
            error,
        },
        Outcome::Unreachable => NodeResult::Unreachable {
            node,
            datacenter,
            error,
        },
        _ => NodeResult::Failed {
            node,
            datacenter,
            error,
        },
    }
}

/// The exit status of an apply (precedence in the module doc).
pub fn exit_status(reports: &[NodeReport]) -> Status {
    Outcome::exit_status(reports.iter().map(|r| r.outcome))
}

/// The exit status of a plan: as `exit_status`, with pending changes as 2.
pub fn plan_status(results: &[NodeResult]) -> Status {
    let any = |f: fn(&NodeResult) -> bool| results.iter().any(f);
    if any(|r| matches!(r, NodeResult::Failed { .. } | NodeResult::HostKey { .. })) {
        Status::Failed
    } else if any(|r| matches!(r, NodeResult::Unreachable { .. })) {
        Status::Unreachable
    } else if any(|r| matches!(r, NodeResult::Planned(p) if !p.is_empty())) {
        Status::Pending
    } else {
        Status::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn report(outcome: Outcome) -> NodeReport {
        NodeReport {
            node: NodeName::new("n").unwrap(),
            datacenter: DatacenterName::new("dc").unwrap(),
            outcome,
            resources: Vec::new(),
            unsynced: Vec::new(),
            refused: Vec::new(),
            error: None,
            round_trips: 0,
            elapsed_ms: 0,
        }
    }

    #[test]
    fn exit_status_precedence() {
        use Outcome::*;
        let status = |outcomes: &[Outcome]| {
            exit_status(&outcomes.iter().map(|o| report(*o)).collect::<Vec<_>>())
        };
        assert_eq!(status(&[Unchanged, Changed]), Status::Ok);
        assert_eq!(status(&[Changed, HostKey]), Status::Failed);
        assert_eq!(status(&[HostKey, Unreachable]), Status::Failed);
        assert_eq!(status(&[Changed, NotAttempted]), Status::Failed);
        assert_eq!(status(&[Unreachable, Failed, Changed]), Status::Failed);
    }

    #[test]
    fn transport_errors_map_to_outcomes() {
        let node = NodeName::new("n").unwrap();
        let hostkey = NodeError::Transport(TransportError::HostKey {
            node: node.clone(),
            reason: "changed".into(),
        });
        assert_eq!(outcome_of(&hostkey), Outcome::HostKey);
        let down = NodeError::Transport(TransportError::Unreachable {
            node: node.clone(),
            reason: "refused".into(),
        });
        assert_eq!(outcome_of(&down), Outcome::Unreachable);
        let lost = NodeError::Transport(TransportError::Lost {
            node: node.clone(),
            reason: "no answer from the node for 15s".into(),
        });
        assert_eq!(outcome_of(&lost), Outcome::Unreachable);
        let slow = NodeError::Transport(TransportError::Timeout {
            node: node.clone(),
            what: "sh".into(),
            after: Duration::from_secs(600),
        });
        assert_eq!(outcome_of(&slow), Outcome::Failed);
        let result = node_failure(down, node, DatacenterName::new("dc").unwrap());
        assert_eq!(plan_status(&[result]), Status::Unreachable);
    }
}
