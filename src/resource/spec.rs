//! The desired state of one resource, as the catalog compiler hands it to planning:
//! what every type's spec shares (ids, content, mode, presence, where it was declared,
//! the name checks) and the catalog entry `Resource`; each type's own spec struct lives
//! in its module. Plain data: values are already rendered, paths already validated,
//! relations already resolved to resource ids that exist in the same catalog.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use super::{ResourceKind, Spec};
use crate::node::{check_account, check_no_control, NameError};
use crate::secret::Fingerprint;

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ResourceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ResourceKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown resource type `{s}`"))
    }
}

/// `file:/etc/nginx/nginx.conf`, `service:nginx`: unique within a node's catalog.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceId {
    pub kind: ResourceKind,
    pub name: String,
}

impl ResourceId {
    pub fn new(kind: ResourceKind, name: impl Into<String>) -> Self {
        ResourceId {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

impl FromStr for ResourceId {
    type Err = String;
    /// Parses `kind:name`; the name may itself contain colons.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, name) = s
            .split_once(':')
            .ok_or_else(|| format!("resource reference `{s}` is not of the form `type:name`"))?;
        if name.is_empty() {
            return Err(format!("resource reference `{s}` has an empty name"));
        }
        Ok(ResourceId::new(kind.parse()?, name))
    }
}

impl Serialize for ResourceId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ResourceId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a resource was declared, for error messages that name both places.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One entry of a node's catalog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resource {
    pub id: ResourceId,
    pub spec: Spec,
    #[serde(skip)]
    pub origin: Origin,
    /// Every resource that must be in sync before this one is applied: declaration
    /// order, module `requires`, `require`, and the inverse of `before`/`notify`.
    pub after: Vec<ResourceId>,
    /// Resources to refresh (reload a service, run a refresh-only exec) when this one
    /// changes: `notify`, and the inverse of `subscribe`.
    pub notify: Vec<ResourceId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    Present,
    Absent,
}

/// A permission mode, parsed from an octal string (`"0644"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match u32::from_str_radix(s, 8) {
            Ok(bits) if bits <= 0o7777 && !s.is_empty() => Ok(Mode(bits)),
            _ => Err(format!("mode `{s}` is not an octal permission like `0644`")),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Rendered file content. When `secrets` is not empty the content is sensitive: it is
/// written to the node but never printed, and serializes as its keyed digest and
/// fingerprints, never as a plain hash (which would confirm a guessed secret offline).
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub bytes: Vec<u8>,
    pub secrets: Vec<Fingerprint>,
    /// For sensitive content: its digest keyed with the site's key
    /// (`SecretStore::content_digest`), what plans and catalogs show instead of SHA-256.
    pub keyed_digest: Option<String>,
}

impl Content {
    pub fn is_sensitive(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// SHA-256 of the bytes, hex: what the probe compares against.
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(&self.bytes))
    }
}

impl Serialize for Content {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Content", 3)?;
        if self.is_sensitive() {
            s.serialize_field("digest", &self.keyed_digest)?;
            s.serialize_field("secrets", &self.secrets)?;
        } else {
            s.serialize_field("sha256", &self.sha256())?;
            s.serialize_field("text", &String::from_utf8_lossy(&self.bytes))?;
        }
        s.end()
    }
}

/// A value of a spec that the node would refuse (or, worse, misread), found at compile
/// time so that `check` reports it with the file, line and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameProblem {
    pub key: &'static str,
    pub error: NameError,
}

/// `key`'s failed name check as a [`NameProblem`]. The names a node will be handed are
/// checked by each type's [`super::ResourceType::check_names`]: users, groups and owners
/// are portable POSIX names (an owner or group may also be a numeric id), units are
/// systemd unit names, packages and versions are single words, and nothing holds a
/// control character.
pub(crate) fn at(key: &'static str) -> impl Fn(NameError) -> NameProblem {
    move |error| NameProblem { key, error }
}

/// An owner or group attribute: a portable name or a numeric id.
pub(crate) fn check_owner(key: &'static str, value: &Option<String>) -> Result<(), NameProblem> {
    match value {
        Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        Some(v) => check_account(key, v).map_err(at(key)),
        None => Ok(()),
    }
}

/// The suffixes systemd knows; a name without one means `NAME.service`.
const UNIT_SUFFIXES: [&str; 11] = [
    ".service",
    ".socket",
    ".target",
    ".device",
    ".mount",
    ".automount",
    ".swap",
    ".timer",
    ".path",
    ".slice",
    ".scope",
];

/// A systemd unit name, by systemd's rules: `[A-Za-z0-9:_.\\@-]`, at most 255 bytes
/// with its suffix (`.service` is added when it has none of the known ones), at most
/// one `@`, a non-empty prefix; and never starting with `-`, which `systemctl` would
/// read as an option.
pub fn check_unit(name: &str) -> Result<(), NameError> {
    const WHAT: &str = "unit name";
    check_no_control(WHAT, name)?;
    let problem = |p: &str| Err(NameError::new(WHAT, name, p));
    let allowed = |c: char| c.is_ascii_alphanumeric() || ":_.\\@-".contains(c);
    if let Some(c) = name.chars().find(|c| !allowed(*c)) {
        return problem(&format!("holds `{c}`; only [A-Za-z0-9:_.\\@-] are allowed"));
    }
    if name.starts_with('-') {
        return problem("starts with `-`");
    }
    let suffix = UNIT_SUFFIXES.iter().find(|s| name.ends_with(*s));
    let prefix = suffix.map_or(name, |s| &name[..name.len() - s.len()]);
    let full_len = name.len()
        + if suffix.is_some() {
            0
        } else {
            ".service".len()
        };
    if prefix.is_empty() || prefix.starts_with('@') {
        return problem("has an empty name before its suffix or `@`");
    }
    if full_len > 255 {
        return problem("is longer than 255 bytes with its suffix");
    }
    if name.matches('@').count() > 1 {
        return problem("holds more than one `@`");
    }
    Ok(())
}

/// A package name or version: one word for the package manager, `[A-Za-z0-9+._~:-]`,
/// starting with a letter or digit (so never an option), at most 255 bytes.
pub fn check_word(what: &'static str, value: &str) -> Result<(), NameError> {
    check_no_control(what, value)?;
    let problem = |p: &str| Err(NameError::new(what, value, p));
    if value.is_empty() || value.len() > 255 {
        return problem("is empty or longer than 255 bytes");
    }
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return problem("does not start with a letter or digit");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+._~:-".contains(c);
    if let Some(c) = value.chars().find(|c| !allowed(*c)) {
        return problem(&format!("holds `{c}`; only [A-Za-z0-9+._~:-] are allowed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::RemotePath;
    use crate::resource::{DirectorySpec, PackageSpec, PackageState, UserSpec};

    #[test]
    fn unit_names_follow_systemd() {
        for good in [
            "nginx",
            "nginx.service",
            "getty@tty1.service",
            "app@.service",
            "dev-sda1.device",
            "sys-devices-x\\x2d1.device",
            "mongod.socket",
            "a:b_c.timer",
        ] {
            assert!(check_unit(good).is_ok(), "{good}");
        }
        let long = "a".repeat(248);
        for bad in [
            "",
            ".service",
            "-nginx",
            "nginx service",
            "nginx\n",
            "ng;inx",
            "a@b@c.service",
            "@x.service",
            "$(reboot)",
            long.as_str(),
        ] {
            assert!(check_unit(bad).is_err(), "{bad:?}");
        }
        assert!(check_unit(&"a".repeat(247)).is_ok());
    }

    #[test]
    fn spec_names_are_checked_by_key() {
        let user = Spec::User(UserSpec {
            name: "Web Admin".into(),
            ensure: Presence::Present,
            uid: None,
            group: Some("1000".into()),
            groups: vec!["adm".into()],
            home: None,
            shell: None,
            system: false,
        });
        let problem = user.check_names().unwrap_err();
        assert_eq!(problem.key, "name");
        assert!(problem
            .error
            .to_string()
            .starts_with("user name `Web Admin`"));
        let file = Spec::Directory(DirectorySpec {
            path: RemotePath::parse("/srv").unwrap(),
            ensure: Presence::Present,
            owner: Some("0".into()),
            group: Some("www\ndata".into()),
            mode: None,
        });
        assert_eq!(file.check_names().unwrap_err().key, "group");
        let package = Spec::Package(PackageSpec {
            name: "nginx".into(),
            state: PackageState::Version("-1.0".into()),
        });
        assert_eq!(package.check_names().unwrap_err().key, "version");
        assert!(check_word("package name", "libc6:amd64").is_ok());
        assert!(check_word("version", "1:1.22.1-9+deb12u1").is_ok());
        assert!(check_word("package name", "--force-yes").is_err());
    }

    #[test]
    fn resource_id_round_trips() {
        let id: ResourceId = "file:/etc/a:b".parse().unwrap();
        assert_eq!(id.kind, ResourceKind::File);
        assert_eq!(id.name, "/etc/a:b");
        assert_eq!(id.to_string(), "file:/etc/a:b");
        assert!("nginx".parse::<ResourceId>().is_err());
        assert!("widget:x".parse::<ResourceId>().is_err());
    }

    #[test]
    fn mode_parses_octal_only() {
        assert_eq!("0644".parse::<Mode>().unwrap(), Mode(0o644));
        assert_eq!(Mode(0o600).to_string(), "0600");
        assert!("0999".parse::<Mode>().is_err());
        assert!("".parse::<Mode>().is_err());
        assert!("17777".parse::<Mode>().is_err());
    }

    #[test]
    fn sensitive_content_serializes_without_its_text() {
        let content = Content {
            bytes: b"hunter2".to_vec(),
            secrets: vec![Fingerprint::of(b"hunter2")],
            keyed_digest: Some("k1".into()),
        };
        let json = serde_json::to_string(&content).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        assert!(json.contains(content.secrets[0].as_str()));
        // No plain SHA-256 of secret-bearing content: it would confirm a guess offline.
        assert!(!json.contains(&content.sha256()), "{json}");
        assert!(json.contains("\"digest\":\"k1\""), "{json}");
    }
}
