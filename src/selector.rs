//! Node selectors: `fe-*,@store,dc:aws-useast1`. A node is selected when any of the
//! comma-separated terms matches it: a glob on its name, `@role`, or `dc:datacenter`.

use glob::Pattern;

use crate::node::Node;

#[derive(Debug, Clone)]
enum Term {
    Name(Pattern),
    Role(String),
    Datacenter(String),
}

/// A parsed `--on` value.
#[derive(Debug, Clone)]
pub struct Selector {
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("empty term in selector `{0}`")]
    Empty(String),
    #[error("invalid glob `{term}` in selector: {reason}")]
    Glob { term: String, reason: String },
}

impl Selector {
    pub fn parse(raw: &str) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        for term in raw.split(',').map(str::trim) {
            if term.is_empty() || term == "@" || term == "dc:" {
                return Err(SelectorError::Empty(raw.to_string()));
            }
            terms.push(if let Some(role) = term.strip_prefix('@') {
                Term::Role(role.to_string())
            } else if let Some(dc) = term.strip_prefix("dc:") {
                Term::Datacenter(dc.to_string())
            } else {
                Term::Name(Pattern::new(term).map_err(|err| SelectorError::Glob {
                    term: term.to_string(),
                    reason: err.msg.to_string(),
                })?)
            });
        }
        Ok(Selector { terms })
    }

    pub fn matches(&self, node: &Node) -> bool {
        self.terms.iter().any(|term| match term {
            Term::Name(pattern) => pattern.matches(node.name.as_str()),
            Term::Role(role) => node.role.as_str() == role,
            Term::Datacenter(dc) => node.datacenter.as_str() == dc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{DatacenterName, NodeName, RoleName};

    fn node(name: &str, dc: &str, role: &str) -> Node {
        Node {
            name: NodeName::new(name).unwrap(),
            datacenter: DatacenterName::new(dc).unwrap(),
            role: RoleName::new(role).unwrap(),
            address: "127.0.0.1".into(),
            port: 22,
            user: None,
            facts: Default::default(),
            vars: Default::default(),
        }
    }

    #[test]
    fn any_term_selects() {
        let s = Selector::parse("fe-*, @store,dc:aws-useast1").unwrap();
        assert!(s.matches(&node("fe-az-1", "azure-westus", "frontend")));
        assert!(s.matches(&node("db-az-1", "azure-westus", "store")));
        assert!(s.matches(&node("x", "aws-useast1", "frontend")));
        assert!(!s.matches(&node("x", "azure-westus", "frontend")));
    }

    #[test]
    fn empty_terms_are_refused() {
        assert!(Selector::parse("fe-*,,x").is_err());
        assert!(Selector::parse("@").is_err());
        assert!(Selector::parse("[").is_err());
    }
}
