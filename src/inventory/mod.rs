//! Finding nodes: static lists and the AWS and Azure APIs behind one trait. Each
//! datacenter in `site.toml` names its provider; `discover` lists every datacenter
//! concurrently, and a datacenter that fails is reported (with the provider's error,
//! never a credential) without stopping the others. Successful cloud listings are kept
//! for a minute in `.tandem/` (see `cache`) so that `plan` then `apply` lists the clouds
//! once. Configuration, behaviour and the reasons for the HTTP and credential choices
//! are in `README.md` beside this file.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
pub mod cache;
pub mod machine;
pub mod static_list;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use crate::datacenter::{
    AwsSettings, AzureCredentialSource, AzureSettings, DatacenterSpec, ProviderConfig, ProviderKind,
};
use crate::manifest::{ManifestError, Site};
use crate::node::{DatacenterName, Node};
pub use machine::Skipped;

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The provider's API failed; `reason` is its error chain, which never holds a
    /// credential (request bodies and headers are not part of it).
    #[error("datacenter `{datacenter}`: {provider} discovery failed: {reason}")]
    Discovery {
        datacenter: DatacenterName,
        provider: ProviderKind,
        reason: String,
    },
    #[error("datacenter `{datacenter}`: {message}")]
    Settings {
        datacenter: DatacenterName,
        message: String,
    },
    #[error("datacenter `{datacenter}`: {provider} credentials: {reason}")]
    Credentials {
        datacenter: DatacenterName,
        provider: ProviderKind,
        reason: String,
    },
    #[error(
        "datacenter `{datacenter}` uses the {provider} provider, but this tandem was built \
         without the `{provider}` feature"
    )]
    NotBuilt {
        datacenter: DatacenterName,
        provider: ProviderKind,
    },
    #[error("datacenter `{datacenter}`: discovery did not finish within {seconds} s")]
    Timeout {
        datacenter: DatacenterName,
        seconds: u64,
    },
    /// What `Inventory::complete` returns when a datacenter could not be listed.
    #[error("not discovered: {}", describe(.0))]
    Incomplete(Vec<InventoryError>),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

fn describe(failures: &[InventoryError]) -> String {
    failures
        .iter()
        .map(|failure| match failure.datacenter() {
            Some(dc) => format!("`{dc}` ({failure})"),
            None => failure.to_string(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl InventoryError {
    /// The datacenter the error is about, if any.
    pub fn datacenter(&self) -> Option<&DatacenterName> {
        match self {
            InventoryError::Discovery { datacenter, .. }
            | InventoryError::Settings { datacenter, .. }
            | InventoryError::Credentials { datacenter, .. }
            | InventoryError::NotBuilt { datacenter, .. }
            | InventoryError::Timeout { datacenter, .. } => Some(datacenter),
            InventoryError::Incomplete(_) | InventoryError::Manifest(_) => None,
        }
    }
}

/// What one datacenter's provider found.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Discovered {
    pub nodes: Vec<Node>,
    /// Machines listed by the API that are not nodes (no role tag, no address).
    pub skipped: Vec<Skipped>,
}

/// A source of nodes for one datacenter.
#[async_trait]
pub trait Provider: Send + Sync {
    async fn discover(&self, datacenter: &DatacenterSpec) -> Result<Discovered, InventoryError>;
}

/// The nodes of a site, and the datacenters that could not be listed.
#[derive(Debug, Default)]
pub struct Inventory {
    pub nodes: Vec<Node>,
    pub failures: Vec<InventoryError>,
    pub skipped: Vec<Skipped>,
}

impl Inventory {
    /// The datacenters that were not discovered, for "not discovered: …" messages.
    pub fn failed_datacenters(&self) -> Vec<&DatacenterName> {
        self.failures
            .iter()
            .filter_map(InventoryError::datacenter)
            .collect()
    }

    /// The nodes when every datacenter was discovered, otherwise an error naming each
    /// one that was not: what `plan` and `apply` use, because converging part of a site
    /// while believing it whole is worse than stopping.
    pub fn complete(self) -> Result<Vec<Node>, InventoryError> {
        if self.failures.is_empty() {
            Ok(self.nodes)
        } else {
            Err(InventoryError::Incomplete(self.failures))
        }
    }
}

/// How `discover` runs.
#[derive(Debug, Clone)]
pub struct DiscoverOptions {
    /// Ignore (and overwrite) cached listings.
    pub refresh: bool,
    /// Where cached listings live; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// How long a cached listing is used.
    pub cache_ttl: Duration,
    /// Upper bound for one datacenter's discovery, retries included.
    pub timeout: Duration,
}

impl DiscoverOptions {
    pub fn for_site(site: &Site) -> Self {
        DiscoverOptions {
            refresh: false,
            cache_dir: Some(site.root.join(".tandem")),
            cache_ttl: cache::DEFAULT_TTL,
            timeout: Duration::from_secs(300),
        }
    }
}

/// The nodes commands operate on: the static node list `file` when given (it replaces
/// discovery entirely), otherwise every datacenter's provider, cache allowed.
pub async fn resolve(site: &Site, file: Option<&Path>) -> Result<Inventory, InventoryError> {
    resolve_with(site, file, DiscoverOptions::for_site(site)).await
}

/// `resolve` with explicit options (`tandem inventory --refresh`).
pub async fn resolve_with(
    site: &Site,
    file: Option<&Path>,
    options: DiscoverOptions,
) -> Result<Inventory, InventoryError> {
    if let Some(path) = file {
        return Ok(Inventory {
            nodes: crate::manifest::nodes::load(path)?,
            ..Inventory::default()
        });
    }
    Ok(discover(site, &options).await)
}

/// Lists every datacenter of the site concurrently. Never fails as a whole: each
/// datacenter that could not be listed is one entry of `failures`.
pub async fn discover(site: &Site, options: &DiscoverOptions) -> Inventory {
    // Spawned first, awaited in declaration order: concurrent, yet a stable output.
    let handles: Vec<_> = site
        .datacenters
        .iter()
        .map(|spec| {
            let name = spec.name.clone();
            let spec = spec.clone();
            let site_name = site.name.clone();
            let static_nodes = site.nodes.clone();
            let options = options.clone();
            let handle = tokio::spawn(async move {
                discover_one(&site_name, &spec, static_nodes, &options).await
            });
            (name, handle)
        })
        .collect();
    let mut inventory = Inventory::default();
    for (name, handle) in handles {
        let result = handle.await.unwrap_or_else(|err| {
            // A panicking provider is a bug; its datacenter is still reported.
            Err(InventoryError::Settings {
                datacenter: name,
                message: format!("discovery task failed: {err}"),
            })
        });
        match result {
            Ok(found) => {
                inventory.nodes.extend(found.nodes);
                inventory.skipped.extend(found.skipped);
            }
            Err(err) => inventory.failures.push(err),
        }
    }
    inventory
}

async fn discover_one(
    site_name: &str,
    spec: &DatacenterSpec,
    static_nodes: Vec<Node>,
    options: &DiscoverOptions,
) -> Result<Discovered, InventoryError> {
    if spec.provider == ProviderConfig::Static {
        return static_list::StaticProvider::new(static_nodes)
            .discover(spec)
            .await;
    }
    let cache = options
        .cache_dir
        .as_ref()
        .map(|dir| cache::Cache::new(dir, site_name, spec, options.cache_ttl));
    if let (Some(cache), false) = (&cache, options.refresh) {
        if let Some(found) = cache.read() {
            return Ok(found);
        }
    }
    let provider = provider_for(spec)?;
    let found = tokio::time::timeout(options.timeout, provider.discover(spec))
        .await
        .map_err(|_| InventoryError::Timeout {
            datacenter: spec.name.clone(),
            seconds: options.timeout.as_secs(),
        })??;
    if let Some(cache) = &cache {
        // A cache that cannot be written costs a second listing, not the run.
        let _ = cache.write(&found);
    }
    Ok(found)
}

fn provider_for(spec: &DatacenterSpec) -> Result<Arc<dyn Provider>, InventoryError> {
    match &spec.provider {
        ProviderConfig::Static => Ok(Arc::new(static_list::StaticProvider::new(Vec::new()))),
        #[cfg(feature = "aws")]
        ProviderConfig::Aws(_) => Ok(Arc::new(aws::AwsProvider)),
        #[cfg(feature = "azure")]
        ProviderConfig::Azure(_) => Ok(Arc::new(azure::AzureProvider)),
        #[allow(unreachable_patterns)]
        other => Err(InventoryError::NotBuilt {
            datacenter: spec.name.clone(),
            provider: other.kind(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incomplete_inventory_names_each_missing_datacenter() {
        let inventory = Inventory {
            failures: vec![InventoryError::Discovery {
                datacenter: DatacenterName::new("aws-useast1").unwrap(),
                provider: ProviderKind::Aws,
                reason: "connection refused".into(),
            }],
            ..Inventory::default()
        };
        let err = inventory.complete().unwrap_err().to_string();
        assert!(
            err.starts_with("not discovered: `aws-useast1` (")
                && err.contains("connection refused"),
            "{err}"
        );
        assert!(Inventory::default().complete().unwrap().is_empty());
    }
}
