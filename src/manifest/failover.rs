//! `[failover.route53]` of `site.toml`, as the manifest parses it (plain serde data,
//! unknown keys refused, checked against the site's datacenters when it loads). The
//! flip itself is `failover::route53`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[failover.route53]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route53Settings {
    pub hosted_zone_id: String,
    /// Fully qualified (`payments.example.com.`); a missing final dot is added.
    pub record_name: String,
    #[serde(default = "default_record_type")]
    pub record_type: String,
    /// Datacenter name to the set identifier of its record.
    pub set_identifiers: BTreeMap<String, String>,
    /// API endpoint override (tests point it at a local emulator).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// A named AWS profile for the credentials.
    #[serde(default)]
    pub profile: Option<String>,
}

fn default_record_type() -> String {
    "A".into()
}

impl Route53Settings {
    /// Every datacenter has a set identifier, each identifier names a datacenter, and
    /// no two datacenters share one.
    pub fn check(&self, datacenters: &[&str]) -> Result<(), String> {
        let missing: Vec<&str> = datacenters
            .iter()
            .copied()
            .filter(|dc| !self.set_identifiers.contains_key(*dc))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "`[failover.route53] set_identifiers` has no entry for datacenter `{}`",
                missing.join("`, `")
            ));
        }
        if let Some(unknown) = self
            .set_identifiers
            .keys()
            .find(|k| !datacenters.contains(&k.as_str()))
        {
            return Err(format!(
                "`[failover.route53] set_identifiers` names `{unknown}`, which is not a datacenter of the site"
            ));
        }
        let mut seen: Vec<&String> = self.set_identifiers.values().collect();
        seen.sort();
        if let Some(pair) = seen.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!(
                "`[failover.route53] set_identifiers` uses `{}` for two datacenters",
                pair[0]
            ));
        }
        for (what, value) in [
            ("hosted_zone_id", &self.hosted_zone_id),
            ("record_name", &self.record_name),
            ("record_type", &self.record_type),
        ] {
            if value.trim().is_empty() || value.chars().any(char::is_control) {
                return Err(format!("`[failover.route53] {what}` is empty or invalid"));
            }
        }
        Ok(())
    }

    pub fn fqdn(&self) -> String {
        if self.record_name.ends_with('.') {
            self.record_name.clone()
        } else {
            format!("{}.", self.record_name)
        }
    }
}
