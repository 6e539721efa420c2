//! Facts: what is read from a node. All facts of a node come from ONE generated shell
//! script (see `script`), whose output is a sequence of sections (see `protocol`: each is
//! introduced by a line `<token> <name>` where the token is random per run, so file
//! content printed by the probe cannot forge a section). Parsing is pure:
//! `NodeFacts::parse` turns recorded output into typed facts that resource modules read.

pub mod accounts;
pub mod applied;
mod parse;
pub mod protocol;
pub mod script;
pub mod system;

use std::collections::HashMap;

use serde::Serialize;

use parse::{parse_packages, parse_stat, parse_sums, parse_units};

pub use protocol::{Mark, Section, Token};
pub use script::ProbeBuilder;

/// The size above which a differing file's current content is not fetched for a diff.
pub const CONTENT_CAP: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactError {
    #[error("probe output is incomplete (no end marker): the script died or was cut off")]
    Incomplete,
    #[error("probe output has a malformed `{section}` section: {reason}")]
    Malformed { section: String, reason: String },
}

/// The type of a filesystem entry, from `stat`'s `%F`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Directory,
    Symlink,
    Other,
}

/// What `stat` (not following symlinks) reported for one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathStat {
    pub kind: EntryKind,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub size: u64,
    /// A symlink's target, verbatim (from `stat`'s `%N`: no `readlink` per link).
    pub target: Option<String>,
}

/// The node's package manager, detected by the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Packager {
    Apt,
    Dnf,
}

/// Everything one probe read from a node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeFacts {
    /// `/run/systemd/system` exists: systemd is PID 1.
    pub systemd: bool,
    pub packager: Option<Packager>,
    /// By path, for the paths that exist.
    pub stats: HashMap<String, PathStat>,
    /// SHA-256 (hex) by path, for the managed files that exist and are readable.
    pub sums: HashMap<String, String>,
    /// Installed version by package name.
    pub packages: HashMap<String, String>,
    /// The users and groups the catalog names, from one `passwd` and one `group` read.
    pub accounts: accounts::Accounts,
    /// Per-resource sections (`r<index>`, `c<index>`, `l<index>`): raw bytes for the
    /// resource's parser.
    pub sections: HashMap<Section, Vec<u8>>,
    /// Staged files and work directories that a killed earlier run left on the node.
    pub leftovers: Vec<String>,
    /// The node state file the last apply left (`None`: none, or not asked for).
    pub applied: Option<applied::AppliedState>,
    /// Why the node state file could not be read, when it is there but malformed.
    pub applied_error: Option<String>,
    /// OS and kernel release (only `tandem drift` asks for them).
    pub system: system::SystemFacts,
}

impl NodeFacts {
    /// Parses a probe's stdout produced with `token`.
    pub fn parse(output: &[u8], token: &Token) -> Result<NodeFacts, FactError> {
        let sections = protocol::split(output, token);
        if !sections.iter().any(|(name, _)| *name == Section::End) {
            return Err(FactError::Incomplete);
        }
        let mut facts = NodeFacts::default();
        for (section, body) in sections {
            match section {
                Section::Os => parse_os(body, &mut facts),
                Section::Stat => parse_stat(body, &mut facts.stats)?,
                Section::Sha => parse_sums(body, &mut facts.sums),
                Section::Pkg => parse_packages(body, &mut facts.packages),
                Section::Units => parse_units(body, &mut facts.sections)?,
                Section::Passwd => facts.accounts.parse_passwd(body)?,
                Section::Group => facts.accounts.parse_group(body)?,
                Section::Leftovers => {
                    facts.leftovers.extend(
                        String::from_utf8_lossy(body)
                            .lines()
                            .filter(|l| !l.is_empty())
                            .map(str::to_string),
                    );
                }
                Section::State => {
                    let text = String::from_utf8_lossy(body);
                    if !text.trim().is_empty() {
                        match applied::AppliedState::parse(&text) {
                            Ok(state) => facts.applied = Some(state),
                            Err(err) => facts.applied_error = Some(err.to_string()),
                        }
                    }
                }
                Section::System => facts.system = system::parse(body),
                Section::Resource(_) | Section::Content(_) | Section::Lines(_) => {
                    facts.sections.insert(section, body.to_vec());
                }
                // The end, and the apply script's own sections (not in a probe's output).
                _ => {}
            }
        }
        Ok(facts)
    }

    pub fn section(&self, section: Section) -> Option<&[u8]> {
        self.sections.get(&section).map(Vec::as_slice)
    }

    /// A section as `key=value` lines (resource sections use this shape).
    pub fn keyed(&self, section: Section) -> HashMap<String, String> {
        let mut map = HashMap::new();
        if let Some(body) = self.section(section) {
            for line in String::from_utf8_lossy(body).lines() {
                if let Some((k, v)) = line.split_once('=') {
                    map.insert(k.to_string(), v.to_string());
                }
            }
        }
        map
    }
}

fn parse_os(body: &[u8], facts: &mut NodeFacts) {
    for line in String::from_utf8_lossy(body).lines() {
        match line {
            "systemd=1" => facts.systemd = true,
            "pkg=apt" => facts.packager = Some(Packager::Apt),
            "pkg=dnf" => facts.packager = Some(Packager::Dnf),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_without_its_end_is_incomplete() {
        let token = Token::fixed("TOK");
        let out = b"\nTOK os\nsystemd=1\n\nTOK c1\nfake\nOTHER end\n\nTOK end\n";
        let facts = NodeFacts::parse(out, &token).unwrap();
        assert!(facts.systemd);
        assert_eq!(
            facts.section(Section::Content(1)),
            Some(&b"fake\nOTHER end\n"[..])
        );
        assert_eq!(
            NodeFacts::parse(b"\nTOK os\n", &token),
            Err(FactError::Incomplete)
        );
    }

    #[test]
    fn stat_records_and_symlink_targets() {
        let mut stats = HashMap::new();
        let body = b"\n/a b\x01644\x01root\x01adm\x0112\x01regular file\x01/a b\0/d\x01755\x01root\x01root\x014096\x01directory\x01/d\0/l\x01777\x01root\x01root\x015\x01symbolic link\x01/l -> x\x01 -> \ny\0";
        parse_stat(body, &mut stats).unwrap();
        assert_eq!(stats["/a b"].mode, 0o644);
        assert_eq!(stats["/a b"].group, "adm");
        assert_eq!(stats["/a b"].target, None);
        assert_eq!(stats["/d"].kind, EntryKind::Directory);
        // The target is everything after the path and ` -> `, control bytes and all.
        assert_eq!(stats["/l"].target.as_deref(), Some("x\x01 -> \ny"));
        assert!(parse_stat(b"/x\x01zz\0", &mut stats).is_err());
        assert!(parse_stat(
            b"/l\x01777\x01root\x01root\x015\x01symbolic link\x01/other -> x\0",
            &mut stats
        )
        .is_err());
    }

    #[test]
    fn sums_and_packages() {
        let mut sums = HashMap::new();
        let h = "a".repeat(64);
        parse_sums(
            format!("{h}  /etc/x\n\\{h}  /etc/a\\nb\n").as_bytes(),
            &mut sums,
        );
        assert_eq!(sums["/etc/x"], h);
        assert_eq!(sums["/etc/a\nb"], h);
        let mut pk = HashMap::new();
        parse_packages(
            b"nginx\tii \t1.22.1-9\ncurl\trc \t7.1\nhtop\t3.2.2-1.el9\npackage vim is not installed\nheld\thi \t1.0-1\nhalf\tiU \t2.0\n",
            &mut pk,
        );
        assert_eq!(pk.get("nginx").map(String::as_str), Some("1.22.1-9"));
        assert_eq!(pk.get("htop").map(String::as_str), Some("3.2.2-1.el9"));
        assert_eq!(pk.get("held").map(String::as_str), Some("1.0-1"));
        assert!(!pk.contains_key("curl"));
        assert!(!pk.contains_key("half"));
        assert_eq!(pk.len(), 3);
    }

    #[test]
    fn one_systemctl_show_becomes_each_services_section() {
        let token = Token::fixed("TOK");
        // What `systemctl show --property=Id,ActiveState,UnitFileState` prints: a unit
        // that does not exist has no UnitFileState.
        let out = b"\nTOK units\nr2 r5\nId=nginx.service\nActiveState=active\nUnitFileState=enabled\n\nActiveState=inactive\nId=gone.service\n\nTOK end\n";
        let facts = NodeFacts::parse(out, &token).unwrap();
        let nginx = facts.keyed(Section::Resource(2));
        assert_eq!(nginx.get("active").map(String::as_str), Some("active"));
        assert_eq!(nginx.get("enabled").map(String::as_str), Some("enabled"));
        let gone = facts.keyed(Section::Resource(5));
        assert_eq!(gone.get("active").map(String::as_str), Some("inactive"));
        assert_eq!(gone.get("enabled").map(String::as_str), Some(""));
        // No systemd: the section is empty and no service section appears.
        let facts = NodeFacts::parse(b"\nTOK units\n\nTOK end\n", &token).unwrap();
        assert!(facts.section(Section::Resource(2)).is_none());
        // A block missing is an error, not a service silently read as stopped.
        let short = b"\nTOK units\nr2 r5\nId=nginx.service\nActiveState=active\n\nTOK end\n";
        assert!(matches!(
            NodeFacts::parse(short, &token),
            Err(FactError::Malformed { section, .. }) if section == Section::Units.to_string()
        ));
    }
}
