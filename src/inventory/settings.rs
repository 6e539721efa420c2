//! Discovery settings as `site.toml` spells them, one table per provider under the
//! datacenter: `[datacenters.aws-useast1.aws]`. Unknown keys are refused.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Static,
    Aws,
    Azure,
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProviderKind::Static => "static",
            ProviderKind::Aws => "aws",
            ProviderKind::Azure => "azure",
        })
    }
}

/// `[datacenters.NAME.aws]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    pub regions: Vec<String>,
    /// Only instances carrying all of these tags are nodes of the site.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Tag holding the node's role.
    #[serde(default = "default_role_tag")]
    pub role_tag: String,
    /// Tag holding the node's name.
    #[serde(default = "default_name_tag")]
    pub name_tag: String,
    /// `private` (default), `public`, or `tag:NAME`.
    #[serde(default = "default_address")]
    pub address: String,
    /// API endpoint override (tests point it at a local emulator).
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// `[datacenters.NAME.azure]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureSettings {
    pub subscription: String,
    pub resource_groups: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default = "default_role_tag")]
    pub role_tag: String,
    #[serde(default = "default_name_tag")]
    pub name_tag: String,
    #[serde(default = "default_address")]
    pub address: String,
    /// Resource Manager base URL override.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Login (token) base URL override.
    #[serde(default)]
    pub login_endpoint: Option<String>,
}

fn default_role_tag() -> String {
    "tandem-role".to_string()
}

fn default_name_tag() -> String {
    "Name".to_string()
}

fn default_address() -> String {
    "private".to_string()
}
