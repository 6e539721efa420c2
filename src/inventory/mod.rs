//! Finding nodes: static lists and the AWS and Azure APIs behind one trait. Each
//! datacenter in `site.toml` names its provider; discovery runs concurrently and a
//! datacenter that fails is reported without stopping the others.
//!
//! SKELETON: settings, trait and `resolve` over static nodes; the cloud providers come
//! with the inventory work.

pub mod settings;

use async_trait::async_trait;

use crate::cli::Global;
use crate::manifest::{ManifestError, Site};
use crate::node::{DatacenterName, Node};
pub use settings::{AwsSettings, AzureSettings, ProviderKind};

/// A datacenter as `site.toml` declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct DatacenterSpec {
    pub name: DatacenterName,
    pub primary: bool,
    pub provider: ProviderConfig,
}

/// How a datacenter's nodes are found.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderConfig {
    /// From `manifests/nodes.toml`.
    Static,
    Aws(AwsSettings),
    Azure(AzureSettings),
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("datacenter `{datacenter}`: {provider} discovery failed: {reason}")]
    Discovery {
        datacenter: DatacenterName,
        provider: ProviderKind,
        reason: String,
    },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// A source of nodes for one datacenter.
#[async_trait]
pub trait Provider: Send + Sync {
    async fn discover(&self, datacenter: &DatacenterSpec) -> Result<Vec<Node>, InventoryError>;
}

/// The nodes of a site, and the datacenters that could not be listed.
#[derive(Debug, Default)]
pub struct Inventory {
    pub nodes: Vec<Node>,
    pub failures: Vec<InventoryError>,
}

/// The nodes commands operate on: the `--inventory` file when given (it replaces
/// discovery entirely), otherwise every datacenter's provider.
pub async fn resolve(global: &Global, site: &Site) -> Result<Inventory, InventoryError> {
    if let Some(path) = &global.inventory {
        return Ok(Inventory {
            nodes: crate::manifest::nodes::load(path)?,
            failures: Vec::new(),
        });
    }
    Ok(Inventory {
        nodes: site.nodes.clone(),
        failures: Vec::new(),
    })
}
