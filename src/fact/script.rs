//! The probe script: one POSIX sh program that prints every fact a node's catalog needs.
//! Resources add what they need through `ProbeBuilder`; shared work is batched so the
//! node runs one `stat` over all paths, one `sha256sum` over all managed files, one
//! package query, one `systemctl show` for all units, one `getent passwd` for all users
//! and one `getent group` for all groups, whatever the number of resources: on a loaded
//! node every process spawned costs milliseconds.

use std::collections::BTreeSet;

use crate::fact::protocol::{preamble, Section, Token};
use crate::fact::CONTENT_CAP;
use crate::path::RemotePath;
use crate::transport::quote::quote_str;

/// `(section, path, wanted sha256, sensitive length)` of a file whose content is read
/// when its sum differs.
type Wanted = (Section, RemotePath, String, Option<usize>);

/// The package cache's file in the node's state directory (see [`PackageCache`]).
pub const PACKAGE_CACHE: &str = "packages";

/// Whether the probe answers its package query from the node's package cache: a copy of
/// the last `dpkg-query` answer in the state directory, keyed by the identity of dpkg's
/// database (device, inode, size and change time, with nanoseconds, of
/// `/var/lib/dpkg/status` and of its `updates` journal directory) and by the names asked
/// for. dpkg replaces `status` by a rename and journals every change in `updates/`
/// first, so any change to the database changes the key; a change time cannot be set
/// back by `touch`. On a hit the probe prints the cached lines (shell builtins, no
/// process) instead of running `dpkg-query`, which parses the whole database: on a
/// Debian host with about 1,800 packages it is the probe's most expensive program (about
/// 12 ms of CPU, half of a no-op probe's). A cache that is missing, truncated (no `.end`
/// line), or for other names is a miss. rpm nodes always query.
#[derive(Debug, Clone)]
pub enum PackageCache {
    /// Always query (the fixtures, tests).
    Off,
    /// Read the cache in this state directory, never write it: `plan` and `drift`
    /// change nothing on a node.
    Read(RemotePath),
    /// Read it, and refresh it after a miss when the state directory exists and is
    /// writable: an apply's probes (the settling probe, and the verifying probe after the
    /// steps). The file is written to a temporary name and renamed, so a reader sees a
    /// whole cache or none.
    Write(RemotePath),
}

/// Collects what resources want read and produces the script.
#[derive(Debug, Clone)]
pub struct ProbeBuilder {
    token: Token,
    stat_paths: BTreeSet<String>,
    sum_paths: BTreeSet<String>,
    packages: BTreeSet<String>,
    users: BTreeSet<String>,
    groups: BTreeSet<String>,
    /// `(section, unit)`: the resource section that gets the unit's state.
    units: Vec<(Section, String)>,
    /// `(section, path, wanted sha256, sensitive length)`: print the file (or, for
    /// secret-bearing content, only changed line numbers) when its sum differs.
    contents: Vec<Wanted>,
    /// Shell globs (quoted directory, unquoted pattern) of what killed runs leave.
    leftovers: BTreeSet<String>,
    sections: String,
    stdin: Vec<u8>,
    package_cache: PackageCache,
}

impl ProbeBuilder {
    pub fn new(token: Token) -> Self {
        ProbeBuilder {
            token,
            stat_paths: BTreeSet::new(),
            sum_paths: BTreeSet::new(),
            packages: BTreeSet::new(),
            users: BTreeSet::new(),
            groups: BTreeSet::new(),
            units: Vec::new(),
            contents: Vec::new(),
            leftovers: BTreeSet::new(),
            sections: String::new(),
            stdin: Vec::new(),
            package_cache: PackageCache::Off,
        }
    }

    /// How the package query uses the node's package cache ([`PackageCache`]).
    pub fn package_cache(&mut self, cache: PackageCache) {
        self.package_cache = cache;
    }

    pub fn token(&self) -> &Token {
        &self.token
    }

    /// `path` goes into the one `stat` call.
    pub fn stat(&mut self, path: &RemotePath) {
        self.stat_paths.insert(path.as_str().to_string());
    }

    /// `path` goes into the one `sha256sum` call.
    pub fn sum(&mut self, path: &RemotePath) {
        self.sum_paths.insert(path.as_str().to_string());
    }

    /// The package goes into the one package query.
    pub fn package(&mut self, name: &str) {
        self.packages.insert(name.to_string());
    }

    /// The user goes into the one `getent passwd` (read back with
    /// `NodeFacts::accounts`); its primary group, by gid, into the one group query.
    pub fn user(&mut self, name: &str) {
        self.users.insert(name.to_string());
    }

    /// The group goes into the one keyed `getent group`: name every group whose entry or
    /// member list a resource reads.
    pub fn group(&mut self, name: &str) {
        self.groups.insert(name.to_string());
    }

    /// Section `r<index>` holds the systemd unit's `active=` and `enabled=` state (as
    /// `systemctl is-active` and `is-enabled` name them), read by the one `systemctl show`
    /// for all units; on a node without systemd the section is absent.
    pub fn unit(&mut self, index: usize, name: &str) {
        self.units
            .push((Section::Resource(index), name.to_string()));
    }

    /// Section `c<index>` holds the file's current content (at most `CONTENT_CAP` + 1
    /// bytes) when its sum is not `want`, so a plan with diffs is still one round trip.
    pub fn content_if_differs(&mut self, index: usize, path: &RemotePath, want: &str) {
        self.sum(path);
        self.contents.push((
            Section::Content(index),
            path.clone(),
            want.to_string(),
            None,
        ));
    }

    /// For secret-bearing content: section `l<index>` lists changed line numbers only
    /// (`-N` old, `+N` new), computed on the node by `diff` against the desired bytes,
    /// which travel on stdin. Nothing of the current content is printed.
    pub fn lines_if_differs(&mut self, index: usize, path: &RemotePath, want: &[u8], sum: &str) {
        self.sum(path);
        self.stdin.extend_from_slice(want);
        self.contents.push((
            Section::Lines(index),
            path.clone(),
            sum.to_string(),
            Some(want.len()),
        ));
    }

    /// Section `r<index>` holds what `shell` prints. `shell` must quote every value.
    pub fn section(&mut self, index: usize, shell: &str) {
        self.sections.push_str(&Section::Resource(index).emit());
        self.sections.push('\n');
        self.sections.push_str(shell);
        self.sections.push('\n');
    }

    /// The `leftovers` section lists what an apply killed mid-way left staged for `path`
    /// (see [`staged_glob`]): globbed by the shell itself, no process per path.
    pub fn leftovers_of(&mut self, path: &RemotePath) {
        self.leftovers.insert(staged_glob(path));
    }

    /// The script and the bytes to feed it on stdin.
    pub fn finish(self) -> (String, Vec<u8>) {
        let mut s = preamble(&self.token);
        s.push_str(&Section::Os.emit());
        s.push_str(
            "\n[ -d /run/systemd/system ] && echo systemd=1\n\
             if command -v dpkg-query >/dev/null 2>&1; then echo pkg=apt; P=apt\n\
             elif command -v rpm >/dev/null 2>&1; then echo pkg=dnf; P=dnf; fi\n",
        );
        if !self.stat_paths.is_empty() {
            s.push_str(&Section::Stat.emit());
            // `%N` in the literal style: a symlink's raw target, so no `readlink` per link.
            s.push_str(
                "\nQUOTING_STYLE=literal stat --printf '%n\\001%a\\001%U\\001%G\\001%s\\001%F\\001%N\\000' --",
            );
            for p in &self.stat_paths {
                s.push(' ');
                s.push_str(&quote_str(p));
            }
            s.push_str(" 2>/dev/null\n");
        }
        if !self.sum_paths.is_empty() {
            s.push_str("S=$(sha256sum --");
            for p in &self.sum_paths {
                s.push(' ');
                s.push_str(&quote_str(p));
            }
            s.push_str(&format!(
                " 2>/dev/null)\n{}\nprintf '%s\\n' \"$S\"\n",
                Section::Sha.emit()
            ));
        }
        contents(&mut s, &self.contents);
        if !self.packages.is_empty() {
            let names: Vec<String> = self.packages.iter().map(|p| quote_str(p)).collect();
            let names = names.join(" ");
            let dpkg = format!(
                "dpkg-query -W -f='${{Package}}\\t${{db:Status-Abbrev}}\\t${{Version}}\\n' -- {names} 2>/dev/null"
            );
            let apt = match &self.package_cache {
                PackageCache::Off => dpkg,
                PackageCache::Read(dir) => cached_query(&dpkg, &self.packages, dir, false),
                PackageCache::Write(dir) => cached_query(&dpkg, &self.packages, dir, true),
            };
            s.push_str(&format!(
                "{}\ncase $P in\n\
                 apt) {apt};;\n\
                 dnf) rpm -q --qf '%{{NAME}}\\t%{{VERSION}}-%{{RELEASE}}\\n' -- {names} 2>/dev/null;;\n\
                 esac\n",
                Section::Pkg.emit()
            ));
        }
        if !self.units.is_empty() {
            // The section names first (one line), then one `show` block per unit, in
            // argument order: `fact::parse_units` pairs them up.
            let names: Vec<String> = self.units.iter().map(|(n, _)| n.to_string()).collect();
            s.push_str(&format!(
                "{}\nif [ -d /run/systemd/system ]; then echo {}\n\
                 systemctl show --property=Id,ActiveState,UnitFileState --",
                Section::Units.emit(),
                quote_str(&names.join(" "))
            ));
            for (_, unit) in &self.units {
                s.push(' ');
                s.push_str(&quote_str(unit));
            }
            s.push_str(" 2>/dev/null; fi\n");
        }
        accounts(&mut s, &self.users, &self.groups);
        if !self.leftovers.is_empty() {
            let globs: Vec<&str> = self.leftovers.iter().map(String::as_str).collect();
            s.push_str(&format!(
                "{}\nfor f in {}; do if [ -e \"$f\" ] || [ -L \"$f\" ]; then printf '%s\\n' \"$f\"; fi; done\n",
                Section::Leftovers.emit(),
                globs.join(" ")
            ));
        }
        s.push_str(&self.sections);
        s.push_str(&Section::End.emit());
        s.push('\n');
        (s, self.stdin)
    }
}

/// The `apt` branch of the package query with the node's package cache
/// ([`PackageCache`]): the key from one `stat`, the cache read by builtins, and
/// `dpkg-query` only on a miss (then, with `write`, its answer stored under the key taken
/// before it ran, so a database changed meanwhile reads as a miss next time).
fn cached_query(dpkg: &str, packages: &BTreeSet<String>, dir: &RemotePath, write: bool) -> String {
    let dir = dir.as_str().trim_end_matches('/');
    let file = quote_str(&format!("{dir}/{PACKAGE_CACHE}"));
    // The names asked for are part of the key: one quoted word, spaces between names.
    let asked = quote_str(&packages.iter().cloned().collect::<Vec<_>>().join(" "));
    let mut s = format!(
        "G=$(stat -L --printf '%d:%i:%s:%z;' -- /var/lib/dpkg/status /var/lib/dpkg/updates 2>/dev/null) || G=\n\
         K=\"$G \"{asked}; Z=1\n\
         if [ -n \"$G\" ] && [ -f {file} ] && [ -r {file} ]; then H=; V=; E=\n\
         {{ IFS= read -r H; if [ \"$H\" = \"$K\" ]; then while IFS= read -r l; do if [ \"$l\" = .end ]; then E=1; break; fi; V=\"$V$l\n\"; done; fi; }} < {file}\n\
         if [ -n \"$E\" ]; then printf '%s' \"$V\"; Z=; fi\n\
         fi\n"
    );
    if write {
        let temp = format!("{dir}/.{PACKAGE_CACHE}.");
        let temp = format!("{}$$", quote_str(&temp));
        s.push_str(&format!(
            "if [ -n \"$Z\" ]; then Q=$({dpkg}); [ -z \"$Q\" ] || printf '%s\\n' \"$Q\"\n\
             if [ -n \"$G\" ] && [ -d {d} ] && [ -w {d} ]; then {{ {{ printf '%s\\n' \"$K\"; [ -z \"$Q\" ] || printf '%s\\n' \"$Q\"; echo .end; }} > {temp} && mv -f -- {temp} {file} || rm -f -- {temp}; }} 2>/dev/null; fi\n\
             fi",
            d = quote_str(dir),
        ));
    } else {
        s.push_str(&format!("if [ -n \"$Z\" ]; then {dpkg}; fi"));
    }
    s
}

/// The content sections: a differing file's content (`c<i>`), or for secret-bearing
/// content its changed line numbers (`l<i>`), computed against the desired bytes on
/// stdin. Every sum is compared by the shell itself (`case`, no process); the desired
/// bytes are read from stdin (one `head` per secret file, in stdin order, to keep the
/// stream aligned) only when some secret-bearing file differs: a no-op probe leaves
/// them unread, which the transports accept.
fn contents(s: &mut String, contents: &[Wanted]) {
    // The pattern is a quoted literal: `<sum>  <path>` followed by a newline.
    let same = |path: &RemotePath, want: &str| quote_str(&format!("{want}  {}\n", path.as_str()));
    let mut secret = String::new();
    if contents
        .iter()
        .any(|(_, _, _, sensitive)| sensitive.is_some())
    {
        s.push_str("D=\n");
    }
    for (section, path, want, sensitive) in contents {
        let q = quote_str(path.as_str());
        let same = same(path, want);
        match sensitive {
            None => s.push_str(&format!(
                "case \"$S\n\" in *{same}*) ;; *) [ -f {q} ] && [ ! -L {q} ] && {{ {}; head -c {} -- {q}; }};; esac\n",
                section.emit(),
                CONTENT_CAP + 1
            )),
            Some(len) => {
                s.push_str(&format!("case \"$S\n\" in *{same}*) ;; *) D=1;; esac\n"));
                secret.push_str(&format!(
                    "case \"$S\n\" in *{same}*) head -c {len} >/dev/null;; *) if [ -f {q} ] && [ ! -L {q} ]; then {}; head -c {len} | diff --unchanged-line-format= --old-line-format='-%dn\n' --new-line-format='+%dn\n' -- {q} - 2>/dev/null; else head -c {len} >/dev/null; fi;; esac\n",
                    section.emit()
                ));
            }
        }
    }
    if !secret.is_empty() {
        s.push_str(&format!("if [ -n \"$D\" ]; then\n{secret}fi\n"));
    }
}

/// The `passwd` and `group` sections: one `getent` each for all accounts. `getent` prints
/// the entries that exist (and exits 2 when one does not), nothing for the others.
///
/// The group read is keyed, not a full `getent group` enumeration: on a node whose NSS
/// group database is large (LDAP, SSSD, AD) an enumeration is slow and big, and with
/// SSSD's default `enumerate = false` it even leaves the directory's groups out, which
/// would read as the user not being in them. The keys are the groups the catalog names
/// (group resources and users' supplementary groups, whose member lists answer "is the
/// user in it") and the users' primary gids, taken from the passwd lines by the shell
/// itself (`read`, no process). Gids go first so that the first entry printed for a gid
/// is the one `getgrgid` gives, as `id` would name it. Names are never all digits
/// (`check_account`), so no name is taken for a gid.
fn accounts(s: &mut String, users: &BTreeSet<String>, groups: &BTreeSet<String>) {
    let names = |set: &BTreeSet<String>| -> String {
        set.iter().map(|n| format!(" {}", quote_str(n))).collect()
    };
    if !users.is_empty() {
        s.push_str(&Section::Passwd.emit());
        s.push_str(&format!(
            "\nU=$(getent passwd --{} 2>/dev/null); printf '%s\\n' \"$U\"\n",
            names(users)
        ));
        // The numeric gid fields, read by the shell (no process).
        s.push_str(
            "K=; while IFS=: read -r n p u g r; do case $g in ''|*[!0-9]*) ;; *) K=\"$K $g\";; esac; done <<EOF\n$U\nEOF\n",
        );
    }
    s.push_str(&if !groups.is_empty() {
        let gids = if users.is_empty() { "" } else { " $K" };
        format!(
            "{}\ngetent group --{gids}{} 2>/dev/null\n",
            Section::Group.emit(),
            names(groups)
        )
    } else if !users.is_empty() {
        // Without a key `getent group` would enumerate the whole database.
        format!(
            "{}\n[ -z \"$K\" ] || getent group -- $K 2>/dev/null\n",
            Section::Group.emit()
        )
    } else {
        String::new()
    });
}

/// Probe shell that lists the work directories killed applies left in the node's state
/// directory, in the `leftovers` section (globbed by the shell: no process).
pub fn state_leftovers(state_dir: &RemotePath) -> String {
    format!(
        "{}\nfor f in {}/run.??????; do if [ -e \"$f\" ]; then printf '%s\\n' \"$f\"; fi; done\n",
        Section::Leftovers.emit(),
        quote_str(state_dir.as_str())
    )
}

/// A shell glob matching what an apply stages next to `path` (`.NAME.tandem-XXXXXX`, the
/// `mktemp` names, and `.NAME.tandem-link`): the directory quoted, the pattern not.
pub(crate) fn staged_glob(path: &RemotePath) -> String {
    format!(
        "{}/{}*",
        quote_str(path.parent().as_str().trim_end_matches('/')),
        quote_str(&format!(".{}.tandem-", path.file_name()))
    )
}

#[cfg(test)]
#[path = "script_tests.rs"]
mod tests;
