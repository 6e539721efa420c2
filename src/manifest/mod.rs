//! The site repository on disk: a serde mirror of the TOML (unknown keys refused), then
//! one conversion into a validated model.
//!
//! SKELETON: `Site::load` reads datacenters and static nodes only; the full model
//! (roles, modules, overlays, variables, secrets) comes with the desired-state work and
//! keeps these fields and this signature.

pub mod nodes;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::inventory::{AwsSettings, AzureSettings, DatacenterSpec, ProviderConfig, ProviderKind};
use crate::node::{DatacenterName, Node};
use crate::rollout::RolloutPolicy;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read `{path}`: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// A loaded site repository.
#[derive(Debug, Clone)]
pub struct Site {
    pub root: PathBuf,
    pub name: String,
    pub datacenters: Vec<DatacenterSpec>,
    /// Static nodes from `manifests/nodes.toml` (empty when the file is absent).
    pub nodes: Vec<Node>,
    /// `[rollout]` of `site.toml`.
    pub rollout: RolloutPolicy,
}

#[derive(Deserialize)]
struct RawSite {
    site: RawSiteTable,
    #[serde(default)]
    rollout: RolloutPolicy,
    datacenters: std::collections::BTreeMap<String, RawDatacenter>,
}

#[derive(Deserialize)]
struct RawSiteTable {
    name: String,
}

#[derive(Deserialize)]
struct RawDatacenter {
    #[serde(default)]
    primary: bool,
    provider: ProviderKind,
    aws: Option<AwsSettings>,
    azure: Option<AzureSettings>,
}

impl Site {
    pub fn load(root: &Path) -> Result<Site, ManifestError> {
        let path = root.join("manifests/site.toml");
        let text = read(&path)?;
        let raw: RawSite = toml::from_str(&text).map_err(|err| toml_error(&path, &text, &err))?;
        let datacenters = raw
            .datacenters
            .into_iter()
            .map(|(name, dc)| DatacenterSpec {
                name: DatacenterName::new(name),
                primary: dc.primary,
                provider: match (dc.provider, dc.aws, dc.azure) {
                    (ProviderKind::Aws, Some(aws), _) => ProviderConfig::Aws(aws),
                    (ProviderKind::Azure, _, Some(azure)) => ProviderConfig::Azure(azure),
                    _ => ProviderConfig::Static,
                },
            })
            .collect();
        let nodes_path = root.join("manifests/nodes.toml");
        let nodes = if nodes_path.exists() {
            nodes::load(&nodes_path)?
        } else {
            Vec::new()
        };
        Ok(Site {
            root: root.to_path_buf(),
            name: raw.site.name,
            datacenters,
            nodes,
            rollout: raw.rollout,
        })
    }
}

pub(crate) fn read(path: &Path) -> Result<String, ManifestError> {
    std::fs::read_to_string(path).map_err(|err| ManifestError::Read {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })
}

/// A TOML error as `file:line: message`, the line taken from the error's span.
pub(crate) fn toml_error(path: &Path, text: &str, err: &toml::de::Error) -> ManifestError {
    let line = err
        .span()
        .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1)
        .unwrap_or(1);
    ManifestError::Invalid {
        path: path.to_path_buf(),
        line,
        message: err.message().to_string(),
    }
}
