//! Nodes and the names that identify them. Names are newtypes so that a role name can
//! never be passed where a datacenter is expected.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(name: impl Into<String>) -> Self {
                Self(name.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A node's name, unique across the site (`fe-az-1`).
    NodeName
);
name_type!(
    /// A datacenter's name as `site.toml` declares it (`azure-westus`).
    DatacenterName
);
name_type!(
    /// A role's name, the stem of its file in `manifests/roles/` (`frontend`).
    RoleName
);

/// A machine tandem manages: where it is, what it is, and what discovery learned of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub name: NodeName,
    pub datacenter: DatacenterName,
    pub role: RoleName,
    /// Host name or IP address that SSH connects to.
    pub address: String,
    pub port: u16,
    /// Login user; `None` means the transport's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// What discovery learned: provider, region, instance id, private IP, tags. Shown by
    /// `inventory`; never used to decide what the node gets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, String>,
    /// Node-level variables, the last and strongest variable layer.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, serde_json::Value>,
}
