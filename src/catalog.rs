//! A node's catalog: its resources with rendered content, in a checked dependency
//! graph. Compilation (manifest + node -> catalog) lives here too.
//!
//! SKELETON: the data type only; compilation comes with the manifest model.

use serde::Serialize;

use crate::node::Node;
use crate::resource::{Resource, ResourceId};

/// Everything one node should have. `resources` is in a valid apply order: every
/// resource comes after all of its `after` entries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Catalog {
    pub node: Node,
    pub resources: Vec<Resource>,
}

impl Catalog {
    pub fn resource(&self, id: &ResourceId) -> Option<&Resource> {
        self.resources.iter().find(|r| &r.id == id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("{node}: catalog compilation is not built yet")]
    NotBuilt { node: crate::node::NodeName },
}

/// Compiles `node`'s catalog from the site.
pub fn compile(_site: &crate::manifest::Site, node: &Node) -> Result<Catalog, CompileError> {
    Err(CompileError::NotBuilt {
        node: node.name.clone(),
    })
}
