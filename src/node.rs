//! Nodes and the names that identify them. Names are newtypes so that a role name can
//! never be passed where a datacenter is expected, and their constructors are the only
//! way in: a node name, a role or a datacenter that breaks the rules below cannot be
//! built, so it cannot reach known_hosts, a log line or a shell. Names come from files
//! anyone can edit and from cloud tags anyone allowed to tag an instance controls.
//!
//! The rules: names are DNS-like (`[A-Za-z0-9._-]`, 1 to 253 bytes, dot-separated
//! labels of 1 to 63, not starting with `-` or `.`); an address is an IP address or a
//! host name by the same rule without `_`; nothing holds a control character.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a name or an address was refused. `value` is shown escaped, so a newline in it
/// prints as `\n` instead of breaking the message in two.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{value}` {problem}")]
pub struct NameError {
    pub what: &'static str,
    pub value: String,
    pub problem: String,
}

impl NameError {
    pub fn new(what: &'static str, value: &str, problem: impl Into<String>) -> Self {
        NameError {
            what,
            value: value.escape_debug().to_string(),
            problem: problem.into(),
        }
    }
}

/// Refuses control characters (newline, tab, escape, DEL, ...), which no name or path
/// needs and which let a value forge lines in known_hosts, logs or scripts.
pub fn check_no_control(what: &'static str, value: &str) -> Result<(), NameError> {
    match value.chars().find(|c| c.is_control()) {
        Some(c) => Err(NameError::new(
            what,
            value,
            format!("holds a control character (`{}`)", c.escape_debug()),
        )),
        None => Ok(()),
    }
}

/// The DNS-like rule of node, role and datacenter names; `underscore` allows `_`.
fn check_dns_like(what: &'static str, value: &str, underscore: bool) -> Result<(), NameError> {
    check_no_control(what, value)?;
    let problem = |p: &str| Err(NameError::new(what, value, p));
    if value.is_empty() {
        return problem("is empty");
    }
    if value.len() > 253 {
        return problem("is longer than 253 bytes");
    }
    if value.starts_with(['-', '.']) {
        return problem("starts with `-` or `.`");
    }
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.' || (underscore && c == '_');
    if let Some(c) = value.chars().find(|c| !allowed(*c)) {
        let set = if underscore {
            "[A-Za-z0-9._-]"
        } else {
            "[A-Za-z0-9.-]"
        };
        return problem(&format!("holds `{c}`; only {set} are allowed"));
    }
    if value
        .split('.')
        .any(|label| label.is_empty() || label.len() > 63)
    {
        return problem("has an empty label or one longer than 63 bytes");
    }
    Ok(())
}

/// An address SSH may connect to: an IP address, or a host name (letters, digits, `-`
/// and `.`, labels of 1 to 63, never starting with `-`, so never read as an option).
pub fn check_address(value: &str) -> Result<(), NameError> {
    if value.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    check_dns_like("address", value, false)
}

/// A user or group name as POSIX tools portably accept it: `[a-z_][a-z0-9_-]*`, an
/// optional final `$` (Samba machine accounts), at most 32 bytes. `what` names the
/// field in the error (`owner`, `user name`).
pub fn check_account(what: &'static str, value: &str) -> Result<(), NameError> {
    check_no_control(what, value)?;
    let problem = |p: &str| Err(NameError::new(what, value, p));
    if value.is_empty() {
        return problem("is empty");
    }
    if value.len() > 32 {
        return problem("is longer than 32 bytes");
    }
    let body = value.strip_suffix('$').unwrap_or(value);
    let mut chars = body.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !first_ok || !rest_ok {
        return problem("is not a portable user or group name (`[a-z_][a-z0-9_-]*`)");
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            /// The name, when it follows the rules of this module.
            pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
                let name = name.into();
                check_dns_like($what, &name, true)?;
                Ok(Self(name))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(name: String) -> Result<Self, NameError> {
                Self::new(name)
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(name: &str) -> Result<Self, NameError> {
                Self::new(name)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
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
    NodeName,
    "node name"
);
name_type!(
    /// A datacenter's name as `site.toml` declares it (`azure-westus`).
    DatacenterName,
    "datacenter name"
);
name_type!(
    /// A role's name, the stem of its file in `manifests/roles/` (`frontend`).
    RoleName,
    "role name"
);

impl NodeName {
    /// The name of the compile-only stand-in `check` uses for a role that has no node
    /// yet in a datacenter: `frontend@west (no nodes yet)`. It is deliberately outside
    /// the rules, so it can never be mistaken for (or collide with) a real node, and it
    /// has no address, so it never reaches a host.
    pub fn stand_in(role: &RoleName, datacenter: &DatacenterName) -> Self {
        NodeName(format!("{role}@{datacenter} (no nodes yet)"))
    }
}

/// A machine tandem manages: where it is, what it is, and what discovery learned of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub name: NodeName,
    pub datacenter: DatacenterName,
    pub role: RoleName,
    /// Host name or IP address that SSH connects to; checked by [`check_address`]
    /// wherever a node is read (`nodes.toml`, discovery, cached listings).
    #[serde(deserialize_with = "address")]
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

fn address<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let address = String::deserialize(deserializer)?;
    check_address(&address).map_err(serde::de::Error::custom)?;
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_dns_like() {
        for good in ["fe-az-1", "i-0abc", "db_1", "a.b.c", "A9"] {
            assert!(NodeName::new(good).is_ok(), "{good}");
        }
        let long_label = "a".repeat(64);
        let too_long = ["a"; 128].join(".");
        for bad in [
            "",
            "-x",
            ".x",
            "a..b",
            "a.",
            "fe 1",
            "fe\n1",
            "fe\t1",
            "fe/1",
            "fe@1",
            "é",
            long_label.as_str(),
            too_long.as_str(),
        ] {
            assert!(NodeName::new(bad).is_err(), "{bad:?}");
        }
        let err = NodeName::new("evil\n10.0.0.1 ssh-ed25519 AAAA").unwrap_err();
        assert_eq!(
            err.to_string(),
            "node name `evil\\n10.0.0.1 ssh-ed25519 AAAA` holds a control character (`\\n`)"
        );
        assert!(RoleName::new("front\nend").is_err());
        assert!(DatacenterName::new("-dc").is_err());
    }

    #[test]
    fn addresses_are_ips_or_host_names() {
        for good in ["10.0.0.1", "::1", "fe80::1", "host.example.com", "h-1"] {
            assert!(check_address(good).is_ok(), "{good}");
        }
        for bad in ["", "-oProxyCommand=x", "a b", "h\n", "h_1", "[::1]", "a..b"] {
            assert!(check_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn account_names_are_posix_portable() {
        for good in ["root", "www-data", "_apt", "mongodb", "m1$", "a_b-c"] {
            assert!(check_account("user", good).is_ok(), "{good}");
        }
        let long = "a".repeat(33);
        for bad in [
            "",
            "Root",
            "1abc",
            "-x",
            "a b",
            "a\nb",
            "a$b",
            "a:b",
            "é",
            long.as_str(),
        ] {
            assert!(check_account("user", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deserializing_checks_names_and_addresses() {
        let good = r#"{"name":"n","datacenter":"d","role":"r","address":"10.0.0.1","port":22}"#;
        assert!(serde_json::from_str::<Node>(good).is_ok());
        let bad_name = good.replace(r#""n""#, r#""n\nx""#);
        assert!(serde_json::from_str::<Node>(&bad_name).is_err());
        let bad_address = good.replace("10.0.0.1", "-x");
        assert!(serde_json::from_str::<Node>(&bad_address).is_err());
    }
}
