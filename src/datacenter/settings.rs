//! Discovery settings as `site.toml` spells them, one table per provider under the
//! datacenter: `[datacenters.aws-useast1.aws]`. Unknown keys are refused. These are
//! plain serde structs; `address::AddressSource` and the providers validate them when a
//! datacenter is discovered, so a typo fails with the datacenter's name.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

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
///
/// ```toml
/// [datacenters.aws-useast1.aws]
/// regions = ["us-east-1"]
/// tags = { tandem-site = "prod" }
/// address = "private"          # or "public", or "tag:ssh-address"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// Regions listed concurrently.
    pub regions: Vec<String>,
    /// Only instances carrying all of these tags are nodes of the site.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Instance states that make a node (`running` by default).
    #[serde(default = "default_aws_states")]
    pub states: Vec<String>,
    /// Tag holding the node's role.
    #[serde(default = "default_role_tag")]
    pub role_tag: String,
    /// Tag holding the node's name (the instance id when absent).
    #[serde(default = "default_name_tag")]
    pub name_tag: String,
    /// `private` (default), `public`, or `tag:NAME`.
    #[serde(default = "default_address")]
    pub address: String,
    /// API endpoint override (tests point it at a local emulator).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Named profile of the shared AWS config; the SDK's standard chain otherwise.
    #[serde(default)]
    pub profile: Option<String>,
    /// Instances per DescribeInstances page (5 to 1000).
    #[serde(default = "default_aws_page_size")]
    pub page_size: i32,
}

/// `[datacenters.NAME.azure]`
///
/// ```toml
/// [datacenters.azure-westus.azure]
/// subscription = "00000000-0000-0000-0000-000000000000"
/// resource_groups = ["prod-westus"]
/// tags = { tandem-site = "prod" }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureSettings {
    pub subscription: String,
    pub resource_groups: Vec<String>,
    /// Only virtual machines carrying all of these tags are nodes of the site.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Power states that make a node (`running` by default), as in `PowerState/running`.
    #[serde(default = "default_azure_states")]
    pub states: Vec<String>,
    #[serde(default = "default_role_tag")]
    pub role_tag: String,
    /// Tag holding the node's name (the VM name when absent).
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
    /// Where the token comes from: `environment` (default: a service principal in
    /// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`), `file` (see
    /// `credentials_file`), `managed-identity` (the VM's identity through the instance
    /// metadata service; `AZURE_CLIENT_ID` picks a user-assigned one) or `cli`
    /// (`az account get-access-token`).
    #[serde(default)]
    pub credentials: AzureCredentialSource,
    /// A JSON file as `az ad sp create-for-rbac` prints it (`appId`, `password`,
    /// `tenant`); used when `credentials = "file"`.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Instance metadata service override for `managed-identity` (tests).
    #[serde(default)]
    pub identity_endpoint: Option<String>,
}

/// Where Azure credentials come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AzureCredentialSource {
    #[default]
    Environment,
    File,
    ManagedIdentity,
    Cli,
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

fn default_aws_states() -> Vec<String> {
    vec!["running".to_string()]
}

fn default_azure_states() -> Vec<String> {
    vec!["running".to_string()]
}

fn default_aws_page_size() -> i32 {
    1000
}
