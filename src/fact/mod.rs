//! Facts: what is read from a node. All facts of a node come from ONE generated shell
//! script (see `script`), whose output is a sequence of sections (see `protocol`: each is
//! introduced by a line `<token> <name>` where the token is random per run, so file
//! content printed by the probe cannot forge a section). Parsing is pure:
//! `NodeFacts::parse` turns recorded output into typed facts that resource modules read.

pub mod accounts;
pub mod applied;
pub mod protocol;
pub mod script;
pub mod system;

use std::collections::HashMap;

use serde::Serialize;

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

/// Records of `%n\1%a\1%U\1%G\1%s\1%F\1%N\0`, `%N` printed with `QUOTING_STYLE=literal`:
/// the path, then ` -> ` and the raw target for a symlink. Split from the left: a path
/// cannot hold a control character (`RemotePath`), a link's target can.
fn parse_stat(body: &[u8], stats: &mut HashMap<String, PathStat>) -> Result<(), FactError> {
    let malformed = |reason: String| FactError::Malformed {
        section: Section::Stat.to_string(),
        reason,
    };
    for record in body.split(|&b| b == 0) {
        let record = record.strip_prefix(b"\n").unwrap_or(record);
        if record.is_empty() || record == b"\n" {
            continue;
        }
        let text = String::from_utf8_lossy(record);
        let fields: Vec<&str> = text.splitn(7, '\u{1}').collect();
        let [path, mode, owner, group, size, kind, quoted] = fields[..] else {
            return Err(malformed(format!(
                "record `{}` has too few fields",
                text.escape_debug()
            )));
        };
        let mode = u32::from_str_radix(mode, 8)
            .map_err(|_| malformed(format!("mode `{mode}` of `{path}` is not octal")))?;
        let size = size
            .parse()
            .map_err(|_| malformed(format!("size `{size}` of `{path}` is not a number")))?;
        let kind = match kind {
            "regular file" | "regular empty file" => EntryKind::File,
            "directory" => EntryKind::Directory,
            "symbolic link" => EntryKind::Symlink,
            _ => EntryKind::Other,
        };
        let target = match kind {
            EntryKind::Symlink => Some(
                quoted
                    .strip_prefix(path)
                    .and_then(|rest| rest.strip_prefix(" -> "))
                    .ok_or_else(|| {
                        malformed(format!(
                            "`%N` of the symlink `{path}` is `{}`",
                            quoted.escape_debug()
                        ))
                    })?
                    .to_string(),
            ),
            _ => None,
        };
        stats.insert(
            path.to_string(),
            PathStat {
                kind,
                mode,
                owner: owner.to_string(),
                group: group.to_string(),
                size,
                target,
            },
        );
    }
    Ok(())
}

/// The `units` section: a line of resource section names, then one `systemctl show`
/// block per unit in the same order. Each becomes that resource's section, in the
/// `active=`/`enabled=` shape `systemctl is-active`/`is-enabled` would print (an absent
/// `UnitFileState`, a unit that does not exist, reads as `enabled=`). An empty section
/// means no systemd; blocks that do not pair up with the names are an error, not a guess.
fn parse_units(body: &[u8], sections: &mut HashMap<Section, Vec<u8>>) -> Result<(), FactError> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim_start_matches('\n');
    let Some((names, blocks)) = text.split_once('\n') else {
        return Ok(());
    };
    let malformed = |reason: String| FactError::Malformed {
        section: Section::Units.to_string(),
        reason,
    };
    let names = names
        .split_whitespace()
        .map(|n| match Section::parse(n) {
            Some(s @ Section::Resource(_)) => Ok(s),
            _ => Err(malformed(format!(
                "`{}` is not a resource section",
                n.escape_debug()
            ))),
        })
        .collect::<Result<Vec<Section>, FactError>>()?;
    let blocks: Vec<&str> = blocks
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .collect();
    if names.len() != blocks.len() {
        return Err(malformed(format!(
            "`systemctl show` printed {} units for {} services",
            blocks.len(),
            names.len()
        )));
    }
    for (name, block) in names.iter().zip(blocks) {
        let mut active = "";
        let mut enabled = "";
        for line in block.lines() {
            match line.split_once('=') {
                Some(("ActiveState", v)) => active = v,
                Some(("UnitFileState", v)) => enabled = v,
                _ => {}
            }
        }
        sections.insert(
            *name,
            format!("active={active}\nenabled={enabled}\n").into_bytes(),
        );
    }
    Ok(())
}

/// `sha256sum` lines: `<hex>  <path>`; a leading `\` means the path is escaped.
fn parse_sums(body: &[u8], sums: &mut HashMap<String, String>) {
    for line in String::from_utf8_lossy(body).lines() {
        let (escaped, line) = match line.strip_prefix('\\') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let Some((hash, path)) = line.split_once("  ") else {
            continue;
        };
        if hash.len() != 64 {
            continue;
        }
        let path = if escaped {
            path.replace("\\n", "\n").replace("\\\\", "\\")
        } else {
            path.to_string()
        };
        sums.insert(path, hash.to_string());
    }
}

/// `name<TAB>version` lines of installed packages (both dpkg-query and rpm are asked for
/// that shape; other lines, like rpm's "is not installed", are ignored).
fn parse_packages(body: &[u8], packages: &mut HashMap<String, String>) {
    for line in String::from_utf8_lossy(body).lines() {
        let mut fields = line.split('\t');
        match (fields.next(), fields.next(), fields.next()) {
            // dpkg-query: name, status abbreviation, version. The abbreviation's second
            // letter is the current state, `i` for installed (`ii`, and `hi` when held).
            (Some(name), Some(status), Some(version))
                if status.as_bytes().get(1) == Some(&b'i') =>
            {
                packages.insert(name.to_string(), version.to_string());
            }
            (Some(name), Some(version), None) if !version.is_empty() => {
                packages.insert(name.to_string(), version.to_string());
            }
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
