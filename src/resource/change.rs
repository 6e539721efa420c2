//! What a resource needs to get from what a node holds to what its catalog says: the
//! [`Change`] (an [`Action`] and the attributes that move), and the [`Assessment`] a
//! resource makes from the facts read. Plans collect these per node.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::diff::Diff;
use super::ResourceId;

/// What happens to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Modify,
    Remove,
    Run,
    Reload,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Modify => "modify",
            Action::Remove => "remove",
            Action::Run => "run",
            Action::Reload => "reload",
        }
    }
}

/// One attribute that changes: `mode 0600 -> 0644`. `from`/`to` are `None` when absent
/// or not shown (content is described by the diff instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detail {
    /// A resource type's own attribute name; read back from a saved plan as text.
    pub attr: Cow<'static, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

impl Detail {
    pub fn new(attr: &'static str, from: Option<String>, to: Option<String>) -> Self {
        Detail {
            attr: Cow::Borrowed(attr),
            from,
            to,
        }
    }
}

/// A pending change of one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub id: ResourceId,
    pub action: Action,
    pub details: Vec<Detail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<Diff>,
}

impl Change {
    pub fn new(id: &ResourceId, action: Action) -> Self {
        Change {
            id: id.clone(),
            action,
            details: Vec::new(),
            diff: None,
        }
    }

    pub fn touches(&self, attr: &str) -> bool {
        self.details.iter().any(|d| d.attr == attr)
    }
}

/// What one resource reads as, and what it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// A canonical text of the facts read (digested into `ReadState`).
    pub observed: String,
    pub change: Option<Change>,
}
