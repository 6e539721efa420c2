//! Rollout planning, pure: which nodes go in which batch, in which order. No I/O, so
//! every rule is unit-tested here.
//!
//! Rules: datacenters are ranked by the policy's order (standby datacenters first by
//! default, ties by name). Each datacenter's first `canary` nodes by name form one
//! canary batch per datacenter, in that rank. The remaining nodes, ordered by
//! (datacenter rank, node name), are cut into batches of `batch` nodes; a percentage is
//! of the nodes left after the canaries, rounded up, at least 1.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Order, RolloutPolicy};
use crate::datacenter::DatacenterSpec;
use crate::node::{DatacenterName, Node, NodeName};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RolloutError {
    #[error("node `{node}` is in datacenter `{datacenter}`, which `site.toml` does not declare")]
    UnknownDatacenter {
        node: NodeName,
        datacenter: DatacenterName,
    },
    #[error("node `{node}` appears twice in the rollout")]
    DuplicateNode { node: NodeName },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchKind {
    Canary,
    Batch,
}

/// Nodes applied together; the rollout checks its threshold and health after each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Batch {
    pub kind: BatchKind,
    /// 1-based position in the rollout, canaries included.
    pub number: usize,
    pub nodes: Vec<Node>,
}

impl Batch {
    /// `canary 1 (aws-useast1)` or `batch 3`, for progress lines and reports.
    pub fn label(&self) -> String {
        match self.kind {
            BatchKind::Canary => {
                let datacenter = self
                    .nodes
                    .first()
                    .map(|n| n.datacenter.as_str())
                    .unwrap_or("");
                format!("canary {} ({datacenter})", self.number)
            }
            BatchKind::Batch => format!("batch {}", self.number),
        }
    }
}

/// The batches of one rollout, in the order they run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutPlan {
    pub batches: Vec<Batch>,
}

impl RolloutPlan {
    pub fn node_count(&self) -> usize {
        self.batches.iter().map(|b| b.nodes.len()).sum()
    }
}

/// Orders `nodes` into batches following `policy`; `datacenters` says which is primary.
pub fn plan(
    nodes: Vec<Node>,
    datacenters: &[DatacenterSpec],
    policy: &RolloutPolicy,
) -> Result<RolloutPlan, RolloutError> {
    let rank = datacenter_ranks(datacenters, policy.order);
    let mut seen = BTreeSet::new();
    let mut by_datacenter: BTreeMap<usize, Vec<Node>> = BTreeMap::new();
    for node in nodes {
        let Some(&r) = rank.get(&node.datacenter) else {
            return Err(RolloutError::UnknownDatacenter {
                node: node.name,
                datacenter: node.datacenter,
            });
        };
        if !seen.insert(node.name.clone()) {
            return Err(RolloutError::DuplicateNode { node: node.name });
        }
        by_datacenter.entry(r).or_default().push(node);
    }

    let mut batches = Vec::new();
    let mut rest = Vec::new();
    for (_, mut nodes) in by_datacenter {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let canaries: Vec<Node> = nodes.drain(..policy.canary.min(nodes.len())).collect();
        if !canaries.is_empty() {
            batches.push(Batch {
                kind: BatchKind::Canary,
                number: batches.len() + 1,
                nodes: canaries,
            });
        }
        rest.extend(nodes);
    }
    let size = policy.batch.nodes_per_batch(rest.len());
    let mut rest = rest.into_iter().peekable();
    while rest.peek().is_some() {
        batches.push(Batch {
            kind: BatchKind::Batch,
            number: batches.len() + 1,
            nodes: rest.by_ref().take(size).collect(),
        });
    }
    Ok(RolloutPlan { batches })
}

/// Rank 0 goes first. Within standby (or primary) datacenters, by name.
fn datacenter_ranks(
    datacenters: &[DatacenterSpec],
    order: Order,
) -> BTreeMap<DatacenterName, usize> {
    let mut ordered: Vec<&DatacenterSpec> = datacenters.iter().collect();
    ordered.sort_by_key(|dc| {
        let goes_first = match order {
            Order::StandbyFirst => !dc.primary,
            Order::PrimaryFirst => dc.primary,
        };
        (!goes_first, dc.name.clone())
    });
    ordered
        .into_iter()
        .enumerate()
        .map(|(rank, dc)| (dc.name.clone(), rank))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::datacenter::ProviderConfig;
    use crate::rollout::BatchSize;

    pub(crate) fn node(name: &str, datacenter: &str) -> Node {
        Node {
            name: NodeName::new(name).unwrap(),
            datacenter: DatacenterName::new(datacenter).unwrap(),
            role: crate::node::RoleName::new("frontend").unwrap(),
            address: "127.0.0.1".into(),
            port: 22,
            user: None,
            facts: Default::default(),
            vars: Default::default(),
        }
    }

    pub(crate) fn datacenters() -> Vec<DatacenterSpec> {
        [("azure-westus", true), ("aws-useast1", false)]
            .into_iter()
            .map(|(name, primary)| DatacenterSpec {
                name: DatacenterName::new(name).unwrap(),
                primary,
                provider: ProviderConfig::Static,
            })
            .collect()
    }

    /// Ten nodes per datacenter, listed out of order.
    pub(crate) fn fleet() -> Vec<Node> {
        let mut nodes = Vec::new();
        for i in [7, 2, 9, 0, 4, 1, 8, 3, 6, 5] {
            nodes.push(node(&format!("az-{i}"), "azure-westus"));
            nodes.push(node(&format!("aws-{i}"), "aws-useast1"));
        }
        nodes
    }

    fn names(plan: &RolloutPlan) -> Vec<Vec<String>> {
        plan.batches
            .iter()
            .map(|b| b.nodes.iter().map(|n| n.name.to_string()).collect())
            .collect()
    }

    fn policy(canary: usize, batch: BatchSize, order: Order) -> RolloutPolicy {
        RolloutPolicy {
            canary,
            batch,
            order,
            ..RolloutPolicy::default()
        }
    }

    #[test]
    fn standby_canary_then_primary_canary_then_batches() {
        let plan = plan(
            fleet(),
            &datacenters(),
            &policy(1, BatchSize::Count(5), Order::StandbyFirst),
        )
        .unwrap();
        let names = names(&plan);
        assert_eq!(names[0], ["aws-0"]);
        assert_eq!(names[1], ["az-0"]);
        assert_eq!(names[2], ["aws-1", "aws-2", "aws-3", "aws-4", "aws-5"]);
        assert_eq!(names[3], ["aws-6", "aws-7", "aws-8", "aws-9", "az-1"]);
        assert_eq!(names[5], ["az-7", "az-8", "az-9"]);
        assert_eq!(names.len(), 6);
        assert_eq!(plan.batches[0].kind, BatchKind::Canary);
        assert_eq!(plan.batches[2].kind, BatchKind::Batch);
        assert_eq!(plan.batches[0].label(), "canary 1 (aws-useast1)");
        assert_eq!(plan.batches[5].label(), "batch 6");
        assert_eq!(plan.node_count(), 20);
    }

    #[test]
    fn primary_first_puts_the_primary_canary_first() {
        let plan = plan(
            fleet(),
            &datacenters(),
            &policy(2, BatchSize::Count(100), Order::PrimaryFirst),
        )
        .unwrap();
        let names = names(&plan);
        assert_eq!(names[0], ["az-0", "az-1"]);
        assert_eq!(names[1], ["aws-0", "aws-1"]);
        assert_eq!(names[2].len(), 16);
        assert_eq!(names[2][0], "az-2");
        assert_eq!(names[2][15], "aws-9");
    }

    #[test]
    fn percentage_is_of_the_nodes_left_after_canaries_rounded_up() {
        // 18 left after two canaries: 25% is 4.5, so batches of 5: 5, 5, 5, 3.
        let plan = plan(
            fleet(),
            &datacenters(),
            &policy(1, BatchSize::Percent(25), Order::StandbyFirst),
        )
        .unwrap();
        let sizes: Vec<usize> = plan.batches.iter().map(|b| b.nodes.len()).collect();
        assert_eq!(sizes, [1, 1, 5, 5, 5, 3]);
    }

    #[test]
    fn tiny_percentages_still_make_progress() {
        let plan = plan(
            fleet(),
            &datacenters(),
            &policy(0, BatchSize::Percent(1), Order::StandbyFirst),
        )
        .unwrap();
        assert_eq!(plan.batches.len(), 20);
        assert!(plan
            .batches
            .iter()
            .all(|b| b.nodes.len() == 1 && b.kind == BatchKind::Batch));
    }

    #[test]
    fn canaries_larger_than_a_datacenter_take_all_of_it() {
        let nodes = vec![
            node("aws-1", "aws-useast1"),
            node("az-1", "azure-westus"),
            node("az-2", "azure-westus"),
        ];
        let plan = plan(
            nodes,
            &datacenters(),
            &policy(5, BatchSize::Count(1), Order::StandbyFirst),
        )
        .unwrap();
        assert_eq!(names(&plan), vec![vec!["aws-1"], vec!["az-1", "az-2"]]);
        assert!(plan.batches.iter().all(|b| b.kind == BatchKind::Canary));
    }

    #[test]
    fn a_datacenter_without_nodes_gets_no_canary() {
        let nodes = vec![node("az-2", "azure-westus"), node("az-1", "azure-westus")];
        let plan = plan(nodes, &datacenters(), &RolloutPolicy::default()).unwrap();
        assert_eq!(names(&plan), vec![vec!["az-1"], vec!["az-2"]]);
        assert!(
            super::plan(Vec::new(), &datacenters(), &RolloutPolicy::default())
                .unwrap()
                .batches
                .is_empty()
        );
    }

    #[test]
    fn the_order_does_not_depend_on_input_order() {
        let policy = RolloutPolicy::default();
        let forward = plan(fleet(), &datacenters(), &policy).unwrap();
        let mut reversed_nodes = fleet();
        reversed_nodes.reverse();
        let mut reversed_dcs = datacenters();
        reversed_dcs.reverse();
        assert_eq!(
            forward,
            plan(reversed_nodes, &reversed_dcs, &policy).unwrap()
        );
    }

    #[test]
    fn unknown_datacenters_and_duplicates_are_refused() {
        let err = plan(
            vec![node("gcp-1", "gcp-central")],
            &datacenters(),
            &RolloutPolicy::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "node `gcp-1` is in datacenter `gcp-central`, which `site.toml` does not declare"
        );
        let err = plan(
            vec![node("az-1", "azure-westus"), node("az-1", "azure-westus")],
            &datacenters(),
            &RolloutPolicy::default(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            RolloutError::DuplicateNode {
                node: NodeName::new("az-1").unwrap()
            }
        );
    }

    proptest::proptest! {
        /// Any fleet, any policy: every node exactly once, canaries first and one
        /// datacenter each, the first datacenter's nodes all before the other's, no batch
        /// larger than the policy allows.
        #[test]
        fn every_node_once_in_a_safe_order(
            aws in 0usize..30,
            az in 0usize..30,
            canary in 0usize..4,
            count in proptest::option::of(1usize..10),
            percent in 1u8..=100,
            primary_first in proptest::bool::ANY,
        ) {
            let mut nodes: Vec<Node> = (0..aws).map(|i| node(&format!("aws-{i:02}"), "aws-useast1")).collect();
            nodes.extend((0..az).map(|i| node(&format!("az-{i:02}"), "azure-westus")));
            let batch = count.map_or(BatchSize::Percent(percent), BatchSize::Count);
            let order = if primary_first { Order::PrimaryFirst } else { Order::StandbyFirst };
            let plan = plan(nodes.clone(), &datacenters(), &policy(canary, batch, order)).unwrap();

            let mut names: Vec<String> = plan.batches.iter().flat_map(|b| b.nodes.iter().map(|n| n.name.to_string())).collect();
            proptest::prop_assert_eq!(names.len(), aws + az);
            names.sort();
            names.dedup();
            proptest::prop_assert_eq!(names.len(), aws + az);

            let canaries = plan.batches.iter().take_while(|b| b.kind == BatchKind::Canary).count();
            proptest::prop_assert!(plan.batches[canaries..].iter().all(|b| b.kind == BatchKind::Batch));
            for b in &plan.batches[..canaries] {
                proptest::prop_assert!(b.nodes.len() <= canary);
                proptest::prop_assert!(b.nodes.iter().all(|n| n.datacenter == b.nodes[0].datacenter));
            }
            let first = if primary_first { "azure-westus" } else { "aws-useast1" };
            let rest: Vec<&Node> = plan.batches[canaries..].iter().flat_map(|b| &b.nodes).collect();
            let switch = rest.iter().position(|n| n.datacenter.as_str() != first).unwrap_or(rest.len());
            proptest::prop_assert!(rest[switch..].iter().all(|n| n.datacenter.as_str() != first));
            let size = batch.nodes_per_batch(rest.len());
            proptest::prop_assert!(plan.batches[canaries..].iter().all(|b| !b.nodes.is_empty() && b.nodes.len() <= size));
            for (i, b) in plan.batches.iter().enumerate() {
                proptest::prop_assert_eq!(b.number, i + 1);
            }
        }
    }
}
