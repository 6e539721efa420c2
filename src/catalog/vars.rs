//! Variable scopes: the layers module defaults < site < role < datacenter < overlay <
//! node merged into the context templates see, and `explain`, which lists every layer
//! that set a variable. A scope per (role, datacenter) is merged once and shared by
//! every node of that pair; only nodes with their own variables pay for a copy.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::manifest::{Site, VarLayer};
use crate::node::{DatacenterName, Node, RoleName};

/// One layer's setting of a variable, as `tandem explain` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerSetting {
    /// `module nginx`, `site`, `role frontend`, `datacenter aws-useast1`,
    /// `overlay standby`, `node fe-az-1`.
    pub layer: String,
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub value: Value,
}

/// A variable's value for a node and every layer that set it, weakest first; the last
/// one is the value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub node: String,
    pub var: String,
    pub value: Option<Value>,
    pub layers: Vec<LayerSetting>,
}

/// The named layers of a (role, datacenter) pair, weakest first, without the node.
pub(crate) fn layers<'s>(
    site: &'s Site,
    role: &RoleName,
    datacenter: &DatacenterName,
) -> Vec<(String, &'s VarLayer)> {
    let mut layers = Vec::new();
    if let Some(role) = site.roles.get(role) {
        for module in &role.modules {
            if let Some(module) = site.modules.get(module) {
                layers.push((format!("module {}", module.name), &module.vars));
            }
        }
        layers.push(("site".to_string(), &site.vars));
        layers.push((format!("role {}", role.name), &role.vars));
    } else {
        layers.push(("site".to_string(), &site.vars));
    }
    if let Some(vars) = site.datacenter_vars.get(datacenter) {
        layers.push((format!("datacenter {datacenter}"), vars));
    }
    if let Some(overlay) = site.overlay_for(datacenter) {
        let which = overlay
            .file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("overlay")
            .to_string();
        layers.push((format!("overlay {which}"), &overlay.vars));
    }
    layers
}

/// The merged variables of a (role, datacenter) pair.
pub(crate) fn merge_scope(
    site: &Site,
    role: &RoleName,
    datacenter: &DatacenterName,
) -> Map<String, Value> {
    let mut merged = Map::new();
    for (_, layer) in layers(site, role, datacenter) {
        for (name, setting) in &layer.0 {
            merged.insert(name.clone(), setting.value.clone());
        }
    }
    merged
}

/// The template context of `node`: its scope, its own variables, and `node`
/// (name, datacenter, role, address) for templates that need the node's identity.
pub(crate) fn node_context(scope: &Map<String, Value>, node: &Node) -> Value {
    let mut context = scope.clone();
    for (name, value) in &node.vars {
        context.insert(name.clone(), value.clone());
    }
    context.insert(
        "node".to_string(),
        serde_json::json!({
            "name": node.name,
            "datacenter": node.datacenter,
            "role": node.role,
            "address": node.address,
        }),
    );
    Value::Object(context)
}

/// Every layer that sets `var` for `node`, weakest first.
pub fn explain(site: &Site, node: &Node, var: &str) -> Explanation {
    let mut settings: Vec<LayerSetting> = layers(site, &node.role, &node.datacenter)
        .into_iter()
        .filter_map(|(layer, vars)| {
            vars.get(var).map(|setting| LayerSetting {
                layer,
                file: Some(setting.file.clone()),
                line: Some(setting.line),
                value: setting.value.clone(),
            })
        })
        .collect();
    if let Some(value) = node.vars.get(var) {
        settings.push(LayerSetting {
            layer: format!("node {}", node.name),
            file: None,
            line: None,
            value: value.clone(),
        });
    }
    Explanation {
        node: node.name.to_string(),
        var: var.to_string(),
        value: settings.last().map(|s| s.value.clone()),
        layers: settings,
    }
}
