//! The parsers of the probe's shared sections: the one `stat`, the one `sha256sum`, the
//! one package query and the one `systemctl show`, each over all of a catalog's paths,
//! packages or units.

use std::collections::HashMap;

use super::{EntryKind, FactError, PathStat, Section};

/// Records of `%n\1%a\1%U\1%G\1%s\1%F\1%N\0`, `%N` printed with `QUOTING_STYLE=literal`:
/// the path, then ` -> ` and the raw target for a symlink. Split from the left: a path
/// cannot hold a control character (`RemotePath`), a link's target can.
pub(super) fn parse_stat(
    body: &[u8],
    stats: &mut HashMap<String, PathStat>,
) -> Result<(), FactError> {
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
pub(super) fn parse_units(
    body: &[u8],
    sections: &mut HashMap<Section, Vec<u8>>,
) -> Result<(), FactError> {
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
pub(super) fn parse_sums(body: &[u8], sums: &mut HashMap<String, String>) {
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
pub(super) fn parse_packages(body: &[u8], packages: &mut HashMap<String, String>) {
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
