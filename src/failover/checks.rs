//! What a promote checks on nodes: a node is ready (before) or verified (after) when a
//! fresh probe reads every resource of its catalog in sync and the role's health check
//! from the rollout policy passes. The reason a node is not is one line naming it.

use std::sync::Arc;
use std::time::Duration;

use crate::apply::{self, ApplyOptions};
use crate::catalog::Catalog;
use crate::node::{DatacenterName, Node, NodeName};
use crate::plan::render::NodeResult;
use crate::rollout::{HealthProbe, RolloutPolicy};
use crate::transport::Connector;

/// Why one node is not ready or not verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    pub node: NodeName,
    pub datacenter: DatacenterName,
    pub reason: String,
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` ({}): {}", self.node, self.datacenter, self.reason)
    }
}

/// The reason `result` is not a node in sync with its catalog, if it is not.
pub fn not_in_sync(result: &NodeResult) -> Option<String> {
    match result {
        NodeResult::Planned(p) if p.is_empty() => None,
        NodeResult::Planned(p) => {
            let ids: Vec<String> = p.changes.iter().map(|c| c.id.to_string()).collect();
            Some(format!(
                "not in sync ({} pending: {})",
                ids.len(),
                ids.join(", ")
            ))
        }
        NodeResult::Unreachable { error, .. } => Some(format!("unreachable: {error}")),
        NodeResult::HostKey { error, .. } => Some(format!("host key refused: {error}")),
        NodeResult::Failed { error, .. } => Some(format!("could not be read: {error}")),
    }
}

/// The policy's health check on `node`, when it covers the node's role.
pub async fn health(
    connector: &dyn Connector,
    policy: &RolloutPolicy,
    node: &Node,
) -> Result<(), String> {
    let Some(check) = policy.health.as_ref().filter(|c| c.covers(node)) else {
        return Ok(());
    };
    let timeout = Duration::from_secs(check.timeout_seconds.max(1));
    match &check.probe {
        HealthProbe::Http(url) => crate::rollout::check_http(url, &node.address, timeout)
            .await
            .map_err(|e| format!("health check failed: {e}")),
        HealthProbe::Command(command) => {
            let mut session = connector
                .connect(node)
                .await
                .map_err(|e| format!("health check: {e}"))?;
            let out = session
                .exec(command, b"", timeout)
                .await
                .map_err(|e| format!("health check: {e}"))?;
            if out.success() {
                Ok(())
            } else {
                Err(format!(
                    "health check `{command}` exited with status {:?}",
                    out.status
                ))
            }
        }
    }
}

/// Probes every catalog's node and runs its health check: the nodes that are not in
/// sync or not healthy, with the reason. The probe results come back too (the caller
/// reads the nodes' epochs from them).
pub async fn check_nodes(
    catalogs: &[Catalog],
    connector: Arc<dyn Connector>,
    options: &ApplyOptions,
    policy: &RolloutPolicy,
) -> (Vec<NotReady>, Vec<NodeResult>) {
    let results = apply::plan_nodes(catalogs.to_vec(), connector.clone(), options).await;
    let mut bad = Vec::new();
    let mut healthy = Vec::new();
    for (catalog, result) in catalogs.iter().zip(&results) {
        match not_in_sync(result) {
            Some(reason) => bad.push(NotReady {
                node: catalog.node.name.clone(),
                datacenter: catalog.node.datacenter.clone(),
                reason,
            }),
            None => healthy.push(&catalog.node),
        }
    }
    let mut checks = tokio::task::JoinSet::new();
    for node in healthy {
        let (connector, policy, node) = (connector.clone(), policy.clone(), node.clone());
        checks.spawn(async move {
            let outcome = health(&*connector, &policy, &node).await;
            (node, outcome)
        });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = checks.join_next().await {
        // A panicking health check is a bug; re-raise it.
        match joined {
            Ok(done) => outcomes.push(done),
            Err(err) => std::panic::resume_unwind(err.into_panic()),
        }
    }
    outcomes.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    for (node, outcome) in outcomes {
        if let Err(reason) = outcome {
            bad.push(NotReady {
                node: node.name.clone(),
                datacenter: node.datacenter.clone(),
                reason,
            });
        }
    }
    (bad, results)
}
