//! What the cloud providers have in common once an API answered: a machine with an id,
//! tags, a state and addresses becomes a `Node`, or is skipped with a reason. Keeping
//! this here means AWS and Azure name, role and address nodes by the same rules.
//! Tags are untrusted (anyone allowed to tag an instance writes them): a machine whose
//! name, role or address breaks the rules of `crate::node`, or whose tags hold a
//! control character, is skipped with the reason, and the others still become nodes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::InventoryError;
use crate::node::{check_address, check_no_control, DatacenterName, Node, NodeName, RoleName};

/// Which address SSH connects to: `private` (default), `public`, or `tag:NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressSource {
    Private,
    Public,
    Tag(String),
}

impl AddressSource {
    pub fn parse(datacenter: &DatacenterName, raw: &str) -> Result<Self, InventoryError> {
        match raw {
            "private" => Ok(AddressSource::Private),
            "public" => Ok(AddressSource::Public),
            _ => match raw.strip_prefix("tag:") {
                Some(tag) if !tag.is_empty() => Ok(AddressSource::Tag(tag.to_string())),
                _ => Err(InventoryError::Settings {
                    datacenter: datacenter.clone(),
                    message: format!(
                        "address `{raw}` is not one of `private`, `public`, `tag:NAME`"
                    ),
                }),
            },
        }
    }
}

/// How a provider's settings turn machines into nodes.
#[derive(Debug, Clone)]
pub struct Naming {
    pub role_tag: String,
    pub name_tag: String,
    pub address: AddressSource,
}

/// A machine as a cloud API described it, before it is judged as a node.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    /// The provider's id (`i-0abc…`, or the VM's name), the fallback node name.
    pub id: String,
    pub tags: BTreeMap<String, String>,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    /// Provider facts: provider, region, instance id, state, …
    pub facts: BTreeMap<String, String>,
}

/// A machine the provider listed that is not a node, and why. `inventory` shows these
/// so that a missing tag is found at once instead of as a silently smaller fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub datacenter: DatacenterName,
    pub id: String,
    pub reason: String,
}

impl Machine {
    pub fn into_node(self, datacenter: &DatacenterName, naming: &Naming) -> Result<Node, Skipped> {
        let skip = |reason: String| Skipped {
            datacenter: datacenter.clone(),
            // Shown by `inventory`: a provider id is never trusted to be one clean line.
            id: self.id.escape_debug().to_string(),
            reason,
        };
        for (key, value) in &self.tags {
            check_no_control("tag name", key)
                .and_then(|()| check_no_control("tag value", value))
                .map_err(|err| skip(format!("tag `{}`: {err}", key.escape_debug())))?;
        }
        let Some(role) = self.tags.get(&naming.role_tag).filter(|r| !r.is_empty()) else {
            return Err(skip(format!("no `{}` tag", naming.role_tag)));
        };
        let role = RoleName::new(role.clone())
            .map_err(|err| skip(format!("`{}` tag: {err}", naming.role_tag)))?;
        let address = match &naming.address {
            AddressSource::Private => self.private_ip.clone(),
            AddressSource::Public => self.public_ip.clone(),
            AddressSource::Tag(tag) => self.tags.get(tag).cloned(),
        };
        let Some(address) = address.filter(|a| !a.is_empty()) else {
            let wanted = match &naming.address {
                AddressSource::Private => "private IP".to_string(),
                AddressSource::Public => "public IP".to_string(),
                AddressSource::Tag(tag) => format!("`{tag}` tag"),
            };
            return Err(skip(format!("no {wanted} to connect to")));
        };
        check_address(&address).map_err(|err| skip(err.to_string()))?;
        let name = match self.tags.get(&naming.name_tag).filter(|n| !n.is_empty()) {
            Some(tag) => NodeName::new(tag.clone())
                .map_err(|err| skip(format!("`{}` tag: {err}", naming.name_tag)))?,
            None => NodeName::new(self.id.clone()).map_err(|err| skip(err.to_string()))?,
        };
        let mut facts = self.facts;
        if let Some(ip) = self.private_ip {
            facts.insert("private_ip".to_string(), ip);
        }
        if let Some(ip) = self.public_ip {
            facts.insert("public_ip".to_string(), ip);
        }
        for (key, value) in &self.tags {
            facts.insert(format!("tag:{key}"), value.clone());
        }
        Ok(Node {
            name,
            datacenter: datacenter.clone(),
            role,
            address,
            port: 22,
            user: None,
            facts,
            vars: BTreeMap::new(),
        })
    }
}

/// Sorts machines into nodes and skipped ones.
pub fn judge(
    datacenter: &DatacenterName,
    naming: &Naming,
    machines: Vec<Machine>,
) -> (Vec<Node>, Vec<Skipped>) {
    let mut nodes = Vec::new();
    let mut skipped = Vec::new();
    for machine in machines {
        match machine.into_node(datacenter, naming) {
            Ok(node) => nodes.push(node),
            Err(skip) => skipped.push(skip),
        }
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    (nodes, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naming(address: AddressSource) -> Naming {
        Naming {
            role_tag: "tandem-role".into(),
            name_tag: "Name".into(),
            address,
        }
    }

    fn machine(tags: &[(&str, &str)]) -> Machine {
        Machine {
            id: "i-1".into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            private_ip: Some("10.0.0.5".into()),
            public_ip: None,
            facts: BTreeMap::new(),
        }
    }

    #[test]
    fn address_source_parses_the_three_forms_and_refuses_others() {
        let dc = DatacenterName::new("aws-x").unwrap();
        assert_eq!(
            AddressSource::parse(&dc, "public").unwrap(),
            AddressSource::Public
        );
        assert_eq!(
            AddressSource::parse(&dc, "tag:ssh").unwrap(),
            AddressSource::Tag("ssh".into())
        );
        let err = AddressSource::parse(&dc, "elastic")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`aws-x`") && err.contains("`elastic`"),
            "{err}"
        );
        assert!(AddressSource::parse(&dc, "tag:").is_err());
    }

    #[test]
    fn name_falls_back_to_the_id_and_tags_become_facts() {
        let dc = DatacenterName::new("aws-x").unwrap();
        let node = machine(&[("tandem-role", "frontend")])
            .into_node(&dc, &naming(AddressSource::Private))
            .unwrap();
        assert_eq!(node.name.as_str(), "i-1");
        assert_eq!(node.role.as_str(), "frontend");
        assert_eq!(node.address, "10.0.0.5");
        assert_eq!(node.facts["tag:tandem-role"], "frontend");
    }

    #[test]
    fn missing_role_or_address_skips_with_a_reason() {
        let dc = DatacenterName::new("aws-x").unwrap();
        let skip = machine(&[("Name", "fe-1")])
            .into_node(&dc, &naming(AddressSource::Private))
            .unwrap_err();
        assert_eq!(skip.reason, "no `tandem-role` tag");
        let skip = machine(&[("tandem-role", "fe")])
            .into_node(&dc, &naming(AddressSource::Public))
            .unwrap_err();
        assert_eq!(skip.reason, "no public IP to connect to");
        let node = machine(&[("tandem-role", "fe"), ("ssh", "192.0.2.1")])
            .into_node(&dc, &naming(AddressSource::Tag("ssh".into())))
            .unwrap();
        assert_eq!(node.address, "192.0.2.1");
    }

    #[test]
    fn hostile_tags_and_addresses_skip_with_the_reason() {
        let dc = DatacenterName::new("aws-x").unwrap();
        let private = naming(AddressSource::Private);
        let skip = machine(&[("tandem-role", "fe"), ("Name", "fe-1\n10.0.0.9")])
            .into_node(&dc, &private)
            .unwrap_err();
        assert_eq!(
            skip.reason,
            "tag `Name`: tag value `fe-1\\n10.0.0.9` holds a control character (`\\n`)"
        );
        let skip = machine(&[("tandem-role", "fe"), ("Name", "-fe")])
            .into_node(&dc, &private)
            .unwrap_err();
        assert!(
            skip.reason.starts_with("`Name` tag: node name `-fe`"),
            "{}",
            skip.reason
        );
        let skip = machine(&[("tandem-role", "f e")])
            .into_node(&dc, &private)
            .unwrap_err();
        assert!(
            skip.reason.starts_with("`tandem-role` tag: role name"),
            "{}",
            skip.reason
        );
        let skip = machine(&[("tandem-role", "fe"), ("ssh", "-oProxyCommand=x")])
            .into_node(&dc, &naming(AddressSource::Tag("ssh".into())))
            .unwrap_err();
        assert!(
            skip.reason.starts_with("address `-oProxyCommand=x`"),
            "{}",
            skip.reason
        );

        // One bad machine does not stop the others.
        let (nodes, skipped) = judge(
            &dc,
            &private,
            vec![
                machine(&[("tandem-role", "fe"), ("Name", "bad\nname")]),
                machine(&[("tandem-role", "fe"), ("Name", "good")]),
            ],
        );
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].name.as_str(), "good");
        assert_eq!(skipped.len(), 1);
    }
}
