//! The validated site model that catalogs compile from: variable layers with the place
//! every value was set, roles with their module order resolved, modules with their
//! resource declarations checked against their type, and overlays with the keys they
//! declare they may change.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::raw::{RawResource, RawVars};
use super::ManifestError;
use crate::node::RoleName;
use crate::resource::{ResourceId, ResourceKind};

/// One variable as one layer sets it, and where.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VarSetting {
    pub value: serde_json::Value,
    pub file: PathBuf,
    pub line: usize,
}

/// The variables one layer (a module's defaults, the site, a role...) sets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VarLayer(pub BTreeMap<String, VarSetting>);

impl VarLayer {
    pub fn from_raw(raw: RawVars, file: &Path, text: &str) -> VarLayer {
        VarLayer(
            raw.into_iter()
                .map(|(name, value)| {
                    let line = line_of(text, value.span().start);
                    let value = toml_to_json(value.into_inner());
                    (
                        name,
                        VarSetting {
                            value,
                            file: file.to_path_buf(),
                            line,
                        },
                    )
                })
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&VarSetting> {
        self.0.get(name)
    }
}

/// A TOML value as the JSON value templates see. Datetimes become their TOML text.
pub fn toml_to_json(value: toml::Value) -> serde_json::Value {
    match value {
        toml::Value::String(s) => serde_json::Value::String(s),
        toml::Value::Integer(i) => serde_json::Value::from(i),
        toml::Value::Float(f) => serde_json::Value::from(f),
        toml::Value::Boolean(b) => serde_json::Value::Bool(b),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(items) => items.into_iter().map(toml_to_json).collect(),
        toml::Value::Table(table) => serde_json::Value::Object(
            table
                .into_iter()
                .map(|(k, v)| (k, toml_to_json(v)))
                .collect(),
        ),
    }
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// A role: the modules a node runs, in apply order (each module after the modules it
/// requires), and the role's variables.
#[derive(Debug, Clone)]
pub struct Role {
    pub name: RoleName,
    pub file: PathBuf,
    pub description: Option<String>,
    pub modules: Vec<String>,
    pub vars: VarLayer,
}

/// `each = "app_services"`: one instance of the module per list element, bound to
/// the variable `bind` (`as = "app"`).
#[derive(Debug, Clone)]
pub struct Each {
    pub var: String,
    pub bind: String,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct Module {
    pub name: String,
    pub dir: PathBuf,
    pub file: PathBuf,
    pub description: Option<String>,
    pub requires: Vec<String>,
    /// The line of each entry of `requires`.
    pub requires_lines: Vec<usize>,
    pub each: Option<Each>,
    pub vars: VarLayer,
    pub resources: Vec<ResourceDecl>,
}

/// A `[[resource]]` as declared: attributes may still hold templates, which are
/// rendered per node.
#[derive(Debug, Clone)]
pub struct ResourceDecl {
    pub kind: ResourceKind,
    pub raw: RawResource,
    pub file: PathBuf,
    pub line: usize,
    /// The line of each attribute, for errors about one key.
    pub key_lines: BTreeMap<&'static str, usize>,
}

impl ResourceDecl {
    /// The line of `key`, or the resource's own line.
    pub fn line_of(&self, key: &str) -> usize {
        self.key_lines.get(key).copied().unwrap_or(self.line)
    }

    /// Checks the declaration against its type: keys that do not apply are refused
    /// by name, required keys must be present.
    pub fn new(
        raw: RawResource,
        file: &Path,
        text: &str,
        start: usize,
    ) -> Result<ResourceDecl, ManifestError> {
        let line = line_of(text, start);
        let invalid = |line: usize, message: String| ManifestError::Invalid {
            path: file.to_path_buf(),
            line,
            message,
        };
        let kind: ResourceKind = raw.kind.parse().map_err(|err: String| invalid(line, err))?;
        let keys = raw.set_keys();
        let key_lines: BTreeMap<&'static str, usize> = keys
            .iter()
            .map(|key| (*key, key_line(text, line, key).unwrap_or(line)))
            .collect();
        let allowed = kind.keys();
        for key in &keys {
            if !allowed.contains(key) && !RELATIONS.contains(key) {
                return Err(invalid(
                    key_lines[key],
                    format!("key `{key}` does not apply to a `{kind}` resource"),
                ));
            }
        }
        for key in kind.required_keys() {
            if !keys.contains(key) {
                return Err(invalid(
                    line,
                    format!("`{kind}` resource is missing the required key `{key}`"),
                ));
            }
        }
        if keys.contains(&"validate_tree") && !keys.contains(&"validate") {
            return Err(invalid(
                key_lines["validate_tree"],
                "`validate_tree` needs a `validate` command".to_string(),
            ));
        }
        let sources = ["content", "template", "source"];
        let given: Vec<&str> = sources
            .iter()
            .copied()
            .filter(|k| keys.contains(k))
            .collect();
        if given.len() > 1 {
            return Err(invalid(
                line,
                format!(
                    "a file takes one of `content`, `template` or `source`, not `{}` and `{}`",
                    given[0], given[1]
                ),
            ));
        }
        Ok(ResourceDecl {
            kind,
            raw,
            file: file.to_path_buf(),
            line,
            key_lines,
        })
    }
}

const RELATIONS: [&str; 4] = ["require", "before", "notify", "subscribe"];

/// The first line at or after `from` that assigns `key` (`key = ...`).
fn key_line(text: &str, from: usize, key: &str) -> Option<usize> {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, line)| {
            line.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|(i, _)| i + 1)
}

/// The attributes parity compares and an overlay may declare: the spec fields of
/// every resource type as catalogs serialize them, the relations, and `presence`.
pub const ATTRIBUTES: [&str; 31] = [
    "path",
    "ensure",
    "content",
    "owner",
    "group",
    "mode",
    "validate",
    "backup",
    "target",
    "name",
    "state",
    "running",
    "enabled",
    "reload",
    "commands",
    "uid",
    "groups",
    "home",
    "shell",
    "system",
    "gid",
    "command",
    "creates",
    "unless",
    "onlyif",
    "refresh_only",
    "user",
    "cwd",
    "after",
    "notify",
    "presence",
];

/// What a datacenter's state changes (`standby.toml`, `primary.toml`).
#[derive(Debug, Clone)]
pub struct Overlay {
    pub file: PathBuf,
    pub description: Option<String>,
    pub vars: VarLayer,
    /// Variables the overlay declares it may set.
    pub may_change_vars: BTreeSet<String>,
    /// Resource attributes that may differ between datacenters because of it.
    pub may_change: BTreeMap<ResourceId, BTreeSet<String>>,
    /// Where each resource of `may_change` is declared.
    pub may_change_lines: BTreeMap<ResourceId, usize>,
}

impl Overlay {
    pub fn allows(&self, id: &ResourceId, attribute: &str) -> bool {
        self.may_change
            .get(id)
            .is_some_and(|attrs| attrs.contains(attribute))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(text: &str) -> Result<ResourceDecl, ManifestError> {
        let raw: RawResource = toml::from_str(text).unwrap();
        ResourceDecl::new(raw, Path::new("m.toml"), text, 0)
    }

    #[test]
    fn refuses_keys_that_do_not_apply_to_the_type_by_line() {
        let err = decl("type = \"package\"\nname = \"x\"\nmode = \"0644\"\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "m.toml:3: key `mode` does not apply to a `package` resource"
        );
    }

    #[test]
    fn requires_the_identifying_key_and_one_content_source() {
        let err = decl("type = \"file\"\nmode = \"0644\"\n").unwrap_err();
        assert!(err.to_string().contains("missing the required key `path`"));
        let err = decl("type = \"file\"\npath = \"/a\"\ncontent = \"x\"\ntemplate = \"t\"\n")
            .unwrap_err();
        assert!(err.to_string().contains("not `content` and `template`"));
        let ok = decl("type = \"file\"\n# c\npath = \"/a\"\nnotify = [\"service:x\"]\n").unwrap();
        assert_eq!(ok.line_of("path"), 3);
        assert_eq!(ok.line_of("notify"), 4);
    }

    #[test]
    fn lines_count_from_one() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }
}
