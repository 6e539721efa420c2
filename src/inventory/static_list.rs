//! The static provider: the nodes of `manifests/nodes.toml` that name the datacenter.
//! Nothing to list remotely, so it is never cached and cannot fail.

use async_trait::async_trait;

use super::{DatacenterSpec, Discovered, InventoryError, Provider};
use crate::node::Node;

/// Serves a datacenter's nodes from the site's static list.
#[derive(Debug, Clone, Default)]
pub struct StaticProvider {
    nodes: Vec<Node>,
}

impl StaticProvider {
    pub fn new(nodes: Vec<Node>) -> Self {
        StaticProvider { nodes }
    }
}

#[async_trait]
impl Provider for StaticProvider {
    async fn discover(&self, datacenter: &DatacenterSpec) -> Result<Discovered, InventoryError> {
        let mut nodes: Vec<Node> = self
            .nodes
            .iter()
            .filter(|node| node.datacenter == datacenter.name)
            .cloned()
            .collect();
        for node in &mut nodes {
            node.facts
                .entry("provider".to_string())
                .or_insert_with(|| "static".to_string());
        }
        Ok(Discovered {
            nodes,
            skipped: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::datacenter::ProviderConfig;
    use crate::node::{DatacenterName, NodeName, RoleName};

    fn node(name: &str, dc: &str) -> Node {
        Node {
            name: NodeName::new(name).unwrap(),
            datacenter: DatacenterName::new(dc).unwrap(),
            role: RoleName::new("frontend").unwrap(),
            address: "127.0.0.1".into(),
            port: 22,
            user: None,
            facts: BTreeMap::new(),
            vars: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn lists_only_the_nodes_of_the_datacenter() {
        let provider = StaticProvider::new(vec![node("a", "dc1"), node("b", "dc2")]);
        let spec = DatacenterSpec {
            name: DatacenterName::new("dc2").unwrap(),
            primary: false,
            provider: ProviderConfig::Static,
        };
        let found = provider.discover(&spec).await.unwrap();
        assert_eq!(found.nodes.len(), 1);
        assert_eq!(found.nodes[0].name.as_str(), "b");
        assert_eq!(found.nodes[0].facts["provider"], "static");
    }
}
