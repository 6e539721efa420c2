//! Static node lists: `manifests/nodes.toml`, and the inventory files the local fleet
//! writes, in the same format:
//!
//! ```toml
//! [[node]]
//! name = "fe-az-1"
//! datacenter = "azure-westus"
//! role = "frontend"
//! address = "10.77.0.2"
//! port = 22          # optional, default 22
//! user = "root"      # optional
//! [node.vars]        # optional, the node variable layer
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{read, toml_error, ManifestError};
use crate::node::{DatacenterName, Node, NodeName, RoleName};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNodes {
    #[serde(default)]
    node: Vec<RawNode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: String,
    datacenter: String,
    role: String,
    address: String,
    #[serde(default = "default_port")]
    port: u16,
    user: Option<String>,
    #[serde(default)]
    vars: BTreeMap<String, toml::Value>,
}

fn default_port() -> u16 {
    22
}

pub fn load(path: &Path) -> Result<Vec<Node>, ManifestError> {
    let text = read(path)?;
    let raw: RawNodes = toml::from_str(&text).map_err(|err| toml_error(path, &text, &err))?;
    Ok(raw
        .node
        .into_iter()
        .map(|n| Node {
            name: NodeName::new(n.name),
            datacenter: DatacenterName::new(n.datacenter),
            role: RoleName::new(n.role),
            address: n.address,
            port: n.port,
            user: n.user,
            facts: BTreeMap::from([("provider".to_string(), "static".to_string())]),
            vars: n
                .vars
                .into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
                    )
                })
                .collect(),
        })
        .collect())
}
