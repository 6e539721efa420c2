//! The probe script: one POSIX sh program that prints every fact a node's catalog needs.
//! Resources add what they need through `ProbeBuilder`; shared work is batched so the
//! node runs one `stat` over all paths, one `sha256sum` over all managed files, one
//! package query and one `systemctl show` for all units, whatever the number of
//! resources: on a loaded node every process spawned costs milliseconds.

use std::collections::BTreeSet;

use crate::fact::protocol::{preamble, Section, Token};
use crate::fact::CONTENT_CAP;
use crate::path::RemotePath;
use crate::transport::quote::quote_str;

/// Collects what resources want read and produces the script.
#[derive(Debug)]
pub struct ProbeBuilder {
    token: Token,
    stat_paths: BTreeSet<String>,
    sum_paths: BTreeSet<String>,
    packages: BTreeSet<String>,
    /// `(section, unit)`: the resource section that gets the unit's state.
    units: Vec<(Section, String)>,
    /// `(section, path, wanted sha256, sensitive length)`: print the file (or, for
    /// secret-bearing content, only changed line numbers) when its sum differs.
    contents: Vec<(Section, RemotePath, String, Option<usize>)>,
    /// Shell globs (quoted directory, unquoted pattern) of what killed runs leave.
    leftovers: BTreeSet<String>,
    sections: String,
    stdin: Vec<u8>,
}

impl ProbeBuilder {
    pub fn new(token: Token) -> Self {
        ProbeBuilder {
            token,
            stat_paths: BTreeSet::new(),
            sum_paths: BTreeSet::new(),
            packages: BTreeSet::new(),
            units: Vec::new(),
            contents: Vec::new(),
            leftovers: BTreeSet::new(),
            sections: String::new(),
            stdin: Vec::new(),
        }
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
            s.push_str("\nstat --printf '%n\\001%a\\001%U\\001%G\\001%s\\001%F\\000' --");
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
        for (section, path, want, sensitive) in &self.contents {
            let q = quote_str(path.as_str());
            // The pattern is a quoted literal: `<sum>  <path>` followed by a newline.
            let same = quote_str(&format!("{want}  {}\n", path.as_str()));
            match sensitive {
                None => s.push_str(&format!(
                    "case \"$S\n\" in *{same}*) ;; *) [ -f {q} ] && [ ! -L {q} ] && {{ {}; head -c {} -- {q}; }};; esac\n",
                    section.emit(),
                    CONTENT_CAP + 1
                )),
                // The desired bytes are always consumed from stdin, used or not.
                Some(len) => s.push_str(&format!(
                    "case \"$S\n\" in *{same}*) head -c {len} >/dev/null;; *) if [ -f {q} ] && [ ! -L {q} ]; then {}; head -c {len} | diff --unchanged-line-format= --old-line-format='-%dn\n' --new-line-format='+%dn\n' -- {q} - 2>/dev/null; else head -c {len} >/dev/null; fi;; esac\n",
                    section.emit()
                )),
            }
        }
        if !self.packages.is_empty() {
            let names: Vec<String> = self.packages.iter().map(|p| quote_str(p)).collect();
            let names = names.join(" ");
            s.push_str(&format!(
                "{}\ncase $P in\n\
                 apt) dpkg-query -W -f='${{Package}}\\t${{db:Status-Abbrev}}\\t${{Version}}\\n' -- {names} 2>/dev/null;;\n\
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
mod tests {
    use super::*;

    #[test]
    fn tokens_differ() {
        assert_ne!(Token::random(), Token::random());
        assert!(Token::random().as_str().len() > 20);
    }

    #[test]
    fn one_stat_and_one_sum_for_many_files() {
        let mut b = ProbeBuilder::new(Token::fixed("TOK"));
        for i in 0..20 {
            let p = RemotePath::parse(&format!("/etc/f{i}")).unwrap();
            b.stat(&p);
            b.content_if_differs(i, &p, "00");
        }
        let (script, stdin) = b.finish();
        assert!(stdin.is_empty());
        assert_eq!(script.matches("stat --printf").count(), 1);
        assert_eq!(script.matches("sha256sum").count(), 1);
        assert!(script.contains("'/etc/f19'"));
    }

    #[test]
    fn one_systemctl_for_many_units() {
        let mut b = ProbeBuilder::new(Token::fixed("TOK"));
        for (i, unit) in ["nginx", "dash board", "docs"].iter().enumerate() {
            b.unit(i, unit);
        }
        let (script, _) = b.finish();
        assert_eq!(script.matches("systemctl").count(), 1);
        assert!(script.contains("echo 'r0 r1 r2'"));
        assert!(script.contains("-- 'nginx' 'dash board' 'docs' 2>/dev/null"));
    }
}
