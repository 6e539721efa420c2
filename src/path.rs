//! Absolute, normalized paths on a remote node. Every path that reaches a node passes
//! through `RemotePath::parse`, which is where `..`, relative paths and control
//! characters (a newline would split a line of the node-side script) are refused.

use std::fmt;

use serde::{Serialize, Serializer};

/// An absolute path without `.`/`..` components, empty components, NUL bytes or other
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RemotePath(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path `{0}` is not absolute")]
    Relative(String),
    #[error("path `{0}` contains `..`")]
    ParentComponent(String),
    #[error("path `{0}` contains a NUL byte")]
    Nul(String),
    #[error("path `{0}` contains a control character")]
    Control(String),
    #[error("path is empty")]
    Empty,
}

impl RemotePath {
    /// Parses and normalizes: `//etc/./nginx/` becomes `/etc/nginx`. `..` is refused
    /// rather than resolved, because a manifest that needs it is almost always wrong.
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        if raw.is_empty() {
            return Err(PathError::Empty);
        }
        if raw.contains('\0') {
            return Err(PathError::Nul(raw.escape_debug().to_string()));
        }
        if raw.chars().any(char::is_control) {
            return Err(PathError::Control(raw.escape_debug().to_string()));
        }
        if !raw.starts_with('/') {
            return Err(PathError::Relative(raw.to_string()));
        }
        let mut normalized = String::with_capacity(raw.len());
        for component in raw.split('/') {
            match component {
                "" | "." => {}
                ".." => return Err(PathError::ParentComponent(raw.to_string())),
                part => {
                    normalized.push('/');
                    normalized.push_str(part);
                }
            }
        }
        if normalized.is_empty() {
            normalized.push('/');
        }
        Ok(Self(normalized))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The containing directory; the root is its own parent.
    pub fn parent(&self) -> RemotePath {
        match self.0.rfind('/') {
            Some(0) | None => RemotePath("/".to_string()),
            Some(i) => RemotePath(self.0[..i].to_string()),
        }
    }

    /// The last component (`nginx.conf`); empty for the root.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &RemotePath) -> bool {
        other.0 == "/"
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }
}

impl fmt::Display for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for RemotePath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_redundant_separators_and_dots() {
        assert_eq!(
            RemotePath::parse("//etc/./nginx/").unwrap().as_str(),
            "/etc/nginx"
        );
        assert_eq!(RemotePath::parse("/").unwrap().as_str(), "/");
    }

    #[test]
    fn refuses_relative_and_parent_paths() {
        assert_eq!(
            RemotePath::parse("etc/nginx"),
            Err(PathError::Relative("etc/nginx".into()))
        );
        assert!(matches!(
            RemotePath::parse("/etc/../shadow"),
            Err(PathError::ParentComponent(_))
        ));
        assert!(matches!(RemotePath::parse("/a\0b"), Err(PathError::Nul(_))));
        for hostile in ["/etc/a\nb", "/etc/a\rb", "/tmp/\u{1b}[2J", "/x\u{7f}"] {
            assert!(
                matches!(RemotePath::parse(hostile), Err(PathError::Control(_))),
                "{hostile:?}"
            );
        }
        assert_eq!(
            RemotePath::parse("/etc/a\nb").unwrap_err().to_string(),
            "path `/etc/a\\nb` contains a control character"
        );
    }

    #[test]
    fn parent_and_prefix() {
        let p = RemotePath::parse("/etc/nginx/nginx.conf").unwrap();
        assert_eq!(p.parent().as_str(), "/etc/nginx");
        assert_eq!(p.file_name(), "nginx.conf");
        assert!(p.starts_with(&RemotePath::parse("/etc/nginx").unwrap()));
        assert!(!p.starts_with(&RemotePath::parse("/etc/ngin").unwrap()));
        assert_eq!(RemotePath::parse("/etc").unwrap().parent().as_str(), "/");
    }
}
