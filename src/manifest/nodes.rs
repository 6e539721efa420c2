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
use toml::Spanned;

use super::model::line_of;
use super::{read, toml_error, ManifestError};
use crate::node::{
    check_account, check_address, DatacenterName, NameError, Node, NodeName, RoleName,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNodes {
    #[serde(default)]
    node: Vec<RawNode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Spanned<String>,
    datacenter: Spanned<String>,
    role: Spanned<String>,
    address: Spanned<String>,
    #[serde(default = "default_port")]
    port: u16,
    user: Option<Spanned<String>>,
    #[serde(default)]
    vars: BTreeMap<String, toml::Value>,
}

fn default_port() -> u16 {
    22
}

/// Reads a node list. Every node is checked (names, address, login user) and every
/// bad one reported with its line and key; the list loads only when all are good.
pub fn load(path: &Path) -> Result<Vec<Node>, ManifestError> {
    let text = read(path)?;
    let raw: RawNodes = toml::from_str(&text).map_err(|err| toml_error(path, &text, &err))?;
    let mut errors = Vec::new();
    let mut nodes = Vec::new();
    for entry in raw.node {
        match node(path, &text, entry) {
            Ok(node) => nodes.push(node),
            Err(err) => errors.push(err),
        }
    }
    match errors.len() {
        0 => Ok(nodes),
        1 => Err(errors.remove(0)),
        _ => Err(ManifestError::Many(errors)),
    }
}

fn node(path: &Path, text: &str, n: RawNode) -> Result<Node, ManifestError> {
    let label = n.name.get_ref().escape_debug().to_string();
    let at = |key: &str, field: &Spanned<String>, err: NameError| ManifestError::Invalid {
        path: path.to_path_buf(),
        line: line_of(text, field.span().start),
        message: format!("node `{label}`, key `{key}`: {err}"),
    };
    let name = NodeName::new(n.name.get_ref().clone()).map_err(|e| at("name", &n.name, e))?;
    let datacenter = DatacenterName::new(n.datacenter.get_ref().clone())
        .map_err(|e| at("datacenter", &n.datacenter, e))?;
    let role = RoleName::new(n.role.get_ref().clone()).map_err(|e| at("role", &n.role, e))?;
    check_address(n.address.get_ref()).map_err(|e| at("address", &n.address, e))?;
    if let Some(user) = &n.user {
        check_account("user", user.get_ref()).map_err(|e| at("user", user, e))?;
    }
    Ok(Node {
        name,
        datacenter,
        role,
        address: n.address.into_inner(),
        port: n.port,
        user: n.user.map(Spanned::into_inner),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages of loading `text`, with the temporary directory left out.
    fn load_text(text: &str) -> Result<Vec<Node>, Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodes.toml");
        std::fs::write(&path, text).unwrap();
        let prefix = format!("{}/", dir.path().display());
        load(&path).map_err(|err| {
            err.flatten()
                .iter()
                .map(|e| e.to_string().replace(&prefix, ""))
                .collect()
        })
    }

    const GOOD: &str =
        "[[node]]\nname = \"fe-1\"\ndatacenter = \"dc\"\nrole = \"web\"\naddress = \"10.0.0.1\"\n";

    #[test]
    fn good_nodes_load() {
        let nodes = load_text(GOOD).unwrap();
        assert_eq!(nodes[0].name.as_str(), "fe-1");
    }

    #[test]
    fn bad_names_and_addresses_name_line_and_key() {
        let err = load_text(&GOOD.replace("\"fe-1\"", "\"fe-1\\n10.0.0.9\"")).unwrap_err();
        assert_eq!(
            err,
            [
                "nodes.toml:2: node `fe-1\\n10.0.0.9`, key `name`: node name \
             `fe-1\\n10.0.0.9` holds a control character (`\\n`)"
            ]
        );
        let err = load_text(&GOOD.replace("10.0.0.1", "-oProxyCommand=x")).unwrap_err();
        assert!(
            err[0].starts_with(
                "nodes.toml:5: node `fe-1`, key `address`: address `-oProxyCommand=x`"
            ),
            "{err:?}"
        );
        let two = format!("{GOOD}user = \"Root\"\n{}", GOOD.replace("web", "w b"));
        let errors = load_text(&two).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("nodes.toml:6:"), "{errors:?}");
        assert!(errors[0].contains("key `user`"), "{errors:?}");
        assert!(errors[1].starts_with("nodes.toml:10:"), "{errors:?}");
    }
}
