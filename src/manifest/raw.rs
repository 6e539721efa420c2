//! The serde mirror of the site's TOML files, exactly as written: every table refuses
//! unknown keys, and values keep their spans so that later errors can name the line.
//! Nothing here is validated beyond its TOML shape; `load` turns it into the model.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::datacenter::{AwsSettings, AzureSettings, ProviderKind};
use crate::rollout::RolloutPolicy;

/// A `[vars]` table: every value with its span.
pub type RawVars = BTreeMap<String, Spanned<toml::Value>>;

/// `manifests/site.toml`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    pub site: RawSiteTable,
    #[serde(default)]
    pub rollout: RolloutPolicy,
    #[serde(default)]
    pub vars: RawVars,
    pub datacenters: BTreeMap<String, Spanned<RawDatacenter>>,
    #[serde(default)]
    pub failover: RawFailover,
}

/// `[failover]` of `site.toml`: the failover epoch (a number that only grows; each
/// promote raises it, every apply writes it to the node, and a run from a checkout whose
/// epoch is lower than a node's is refused).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFailover {
    #[serde(default)]
    pub epoch: u64,
    /// `[failover.route53]`: the failover records `promote` flips.
    pub route53: Option<Spanned<super::failover::Route53Settings>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSiteTable {
    pub name: String,
}

/// `[datacenters.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatacenter {
    #[serde(default)]
    pub primary: bool,
    pub provider: ProviderKind,
    pub aws: Option<AwsSettings>,
    pub azure: Option<AzureSettings>,
    #[serde(default)]
    pub vars: RawVars,
}

/// `manifests/roles/NAME.toml`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRole {
    #[serde(default)]
    pub description: Option<String>,
    pub modules: Vec<Spanned<String>>,
    #[serde(default)]
    pub vars: RawVars,
}

/// `manifests/overlays/{standby,primary}.toml`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOverlay {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub may_change: RawMayChange,
    #[serde(default)]
    pub vars: RawVars,
}

/// `[may_change]`: the keys an overlay declares it may change.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMayChange {
    #[serde(default)]
    pub vars: Vec<Spanned<String>>,
    /// Resource id to the attributes that may differ (`"file:/etc/x" = ["content"]`).
    #[serde(default)]
    pub resources: BTreeMap<String, Spanned<Vec<String>>>,
}

/// `modules/NAME/module.toml`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModule {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub requires: Vec<Spanned<String>>,
    /// Instantiate the module once per element of this list variable.
    pub each: Option<Spanned<String>>,
    /// The variable name an element is bound to (default `item`).
    #[serde(rename = "as")]
    pub each_as: Option<String>,
    #[serde(default)]
    pub vars: RawVars,
    #[serde(default)]
    pub resource: Vec<Spanned<RawResource>>,
}

/// Explicit service commands, `commands = { start = "...", ... }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCommands {
    pub start: String,
    pub stop: String,
    pub reload: Option<String>,
    pub status: String,
}

/// Declares `RawResource` with every attribute optional, and `set_keys` listing the
/// attributes a declaration uses, so that keys that do not apply to its type are
/// refused by name without a second list to keep in sync.
macro_rules! raw_resource {
    ($($field:ident : $ty:ty),* $(,)?) => {
        /// One `[[resource]]`: the union of every type's attributes; which ones apply
        /// is checked against `type` when the module loads.
        #[derive(Debug, Clone, PartialEq, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct RawResource {
            #[serde(rename = "type")]
            pub kind: String,
            $(#[serde(default)] pub $field: Option<$ty>,)*
        }

        impl RawResource {
            pub fn set_keys(&self) -> Vec<&'static str> {
                let mut keys = Vec::new();
                $(if self.$field.is_some() { keys.push(stringify!($field)); })*
                keys
            }
        }
    };
}

raw_resource! {
    name: String,
    path: String,
    ensure: String,
    content: String,
    template: String,
    source: String,
    owner: String,
    group: String,
    mode: String,
    validate: String,
    validate_tree: String,
    backup: bool,
    target: String,
    version: String,
    running: bool,
    enabled: bool,
    reload: bool,
    commands: RawCommands,
    uid: u32,
    gid: u32,
    groups: Vec<String>,
    home: String,
    shell: String,
    system: bool,
    command: String,
    creates: String,
    unless: String,
    onlyif: String,
    refresh_only: bool,
    user: String,
    cwd: String,
    require: Vec<String>,
    before: Vec<String>,
    notify: Vec<String>,
    subscribe: Vec<String>,
}
