//! Datacenters as `site.toml` declares them: a name, whether it is the primary, and
//! how its nodes are found (the provider and its discovery settings). A leaf of the
//! module graph: the manifest parses these, inventory discovers with them, the rollout
//! orders nodes by them.

pub mod settings;

use crate::node::DatacenterName;
pub use settings::{AwsSettings, AzureCredentialSource, AzureSettings, ProviderKind};

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

impl ProviderConfig {
    pub fn kind(&self) -> ProviderKind {
        match self {
            ProviderConfig::Static => ProviderKind::Static,
            ProviderConfig::Aws(_) => ProviderKind::Aws,
            ProviderConfig::Azure(_) => ProviderKind::Azure,
        }
    }
}
