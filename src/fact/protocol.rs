//! The wire protocol between tandem and the scripts it runs on a node (the probe and the
//! apply script). A script's stdout is a sequence of sections, each introduced by a line
//! `<token> <name>`; the token is random per run, so bytes a node prints (a file being
//! diffed, a failed command's output) cannot forge a section. [`Section`] is every name
//! there is: [`Section::emit`] writes the shell that starts one, [`split`] parses them
//! back, and nothing else in the crate spells a section name.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::transport::quote::quote_str;

/// The per-run section delimiter. Unpredictable, so content a node prints (a file being
/// diffed) cannot contain a section header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A fresh random token: SHA-256 of the time, the process id and a counter. No
    /// secret depends on it; it only has to be unguessable to file authors.
    pub fn random() -> Token {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let seed = format!("{nanos}/{}/{n}/{:p}", std::process::id(), &n);
        Token(format!("T{}", &hex::encode(Sha256::digest(seed))[..24]))
    }

    /// A given token, for recorded fixtures.
    pub fn fixed(token: &str) -> Token {
        Token(token.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The line that ends the apply script's stdin: proves nothing was cut off.
    pub fn trailer(&self) -> String {
        format!("END{}", self.0)
    }
}

/// How one resource's step ended on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mark {
    Ok,
    Fail,
    /// Not run: a resource it depends on failed or was skipped.
    Skip,
}

impl Mark {
    fn as_str(self) -> &'static str {
        match self {
            Mark::Ok => "ok",
            Mark::Fail => "fail",
            Mark::Skip => "skip",
        }
    }
}

/// Every section a node-side script prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    /// Probe: `systemd=1`, `pkg=apt|dnf`.
    Os,
    /// Probe: the one `stat` over every managed path.
    Stat,
    /// Probe: the one `sha256sum` over every managed file.
    Sha,
    /// Probe: the one package query.
    Pkg,
    /// Probe: resource section names, then the one `systemctl show` for all units.
    Units,
    /// Probe: the one `getent passwd` for every user of the catalog.
    Passwd,
    /// Probe: the one keyed `getent group` for every group the catalog names and its
    /// users' primary gids.
    Group,
    /// Probe: staged files and work directories earlier runs left behind.
    Leftovers,
    /// Probe: the node state file the last apply left (see `fact::applied`).
    State,
    /// Probe (drift): OS release and kernel release (see `fact::system`).
    System,
    /// Probe: the last section; without it the output was cut off.
    End,
    /// Probe: what resource `i` asked for (`r<i>`).
    Resource(usize),
    /// Probe: the current content of file resource `i`, when it differs (`c<i>`).
    Content(usize),
    /// Probe: changed line numbers of secret-bearing file `i` (`l<i>`).
    Lines(usize),
    /// Apply: the node lock is held by another apply; the body names the holder.
    Locked,
    /// Apply: the script could not start; the body says why. Nothing was changed.
    Fatal,
    /// Apply: stdin was cut short. Nothing was changed.
    Frame,
    /// Apply: every step ran; the body is the verifying probe's output.
    Applied,
    /// Apply: how resource `i`'s step ended; for `fail`, the body is its error.
    Step(usize, Mark),
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Section::Os => f.write_str("os"),
            Section::Stat => f.write_str("stat"),
            Section::Sha => f.write_str("sha"),
            Section::Pkg => f.write_str("pkg"),
            Section::Units => f.write_str("units"),
            Section::Passwd => f.write_str("passwd"),
            Section::Group => f.write_str("group"),
            Section::Leftovers => f.write_str("leftovers"),
            Section::State => f.write_str("state"),
            Section::System => f.write_str("system"),
            Section::End => f.write_str("end"),
            Section::Resource(i) => write!(f, "r{i}"),
            Section::Content(i) => write!(f, "c{i}"),
            Section::Lines(i) => write!(f, "l{i}"),
            Section::Locked => f.write_str("locked"),
            Section::Fatal => f.write_str("fatal"),
            Section::Frame => f.write_str("frame"),
            Section::Applied => f.write_str("applied"),
            Section::Step(i, mark) => write!(f, "r{i} {}", mark.as_str()),
        }
    }
}

impl Section {
    /// The section named `name`, as `Display` writes it; `None` for anything else.
    pub fn parse(name: &str) -> Option<Section> {
        let fixed = match name {
            "os" => Some(Section::Os),
            "stat" => Some(Section::Stat),
            "sha" => Some(Section::Sha),
            "pkg" => Some(Section::Pkg),
            "units" => Some(Section::Units),
            "passwd" => Some(Section::Passwd),
            "group" => Some(Section::Group),
            "leftovers" => Some(Section::Leftovers),
            "state" => Some(Section::State),
            "system" => Some(Section::System),
            "end" => Some(Section::End),
            "locked" => Some(Section::Locked),
            "fatal" => Some(Section::Fatal),
            "frame" => Some(Section::Frame),
            "applied" => Some(Section::Applied),
            _ => None,
        };
        if fixed.is_some() {
            return fixed;
        }
        let index = |digits: &str| -> Option<usize> {
            // Only canonical numbers, so parsing and `Display` are inverses.
            let ok = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'));
            ok.then(|| digits.parse().ok()).flatten()
        };
        let (kind, rest) = (name.get(..1)?, name.get(1..)?);
        match (kind, rest.split_once(' ')) {
            ("r", None) => index(rest).map(Section::Resource),
            ("c", None) => index(rest).map(Section::Content),
            ("l", None) => index(rest).map(Section::Lines),
            ("r", Some((i, mark))) => {
                let mark = match mark {
                    "ok" => Mark::Ok,
                    "fail" => Mark::Fail,
                    "skip" => Mark::Skip,
                    _ => return None,
                };
                index(i).map(|i| Section::Step(i, mark))
            }
            _ => None,
        }
    }

    /// Shell that starts this section (the `m` function of [`preamble`]).
    pub fn emit(&self) -> String {
        format!("m {}", quote_str(&self.to_string()))
    }
}

/// Shell every node-side script starts with: the token, `m NAME` to start a section, and
/// `fail WHAT`, which ends a step's subshell with `WHAT` and the failed command's status
/// on stderr (`cmd || fail ...`: the status is still `$?` when the message is built).
pub fn preamble(token: &Token) -> String {
    format!(
        "T={}\nm(){{ printf '\\n%s %s\\n' \"$T\" \"$1\"; }}\n\
         fail(){{ printf '%s (exit status %s)\\n' \"$1\" \"$?\" >&2; exit 1; }}\n",
        quote_str(token.as_str())
    )
}

/// Splits output into `(section, body)` pairs. A section starts at `\n<token> ` and its
/// name runs to the end of that line; its body is every byte up to the next section
/// start. A header whose name is not a [`Section`] is kept out and ends the body before it.
pub fn split<'a>(output: &'a [u8], token: &Token) -> Vec<(Section, &'a [u8])> {
    let marker = format!("\n{} ", token.as_str());
    let marker = marker.as_bytes();
    let mut starts = Vec::new();
    let mut i = 0;
    while let Some(pos) = find(&output[i..], marker) {
        starts.push(i + pos);
        i += pos + marker.len();
    }
    let mut out = Vec::with_capacity(starts.len());
    for (n, &start) in starts.iter().enumerate() {
        let header_start = start + marker.len();
        let end = starts.get(n + 1).copied().unwrap_or(output.len());
        let rest = &output[header_start..end];
        let (name, body) = match rest.iter().position(|&b| b == b'\n') {
            Some(nl) => (&rest[..nl], &rest[nl + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        if let Some(section) = std::str::from_utf8(name).ok().and_then(Section::parse) {
            out.push((section, body));
        }
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_section() -> Vec<Section> {
        let mut all = vec![
            Section::Os,
            Section::Stat,
            Section::Sha,
            Section::Pkg,
            Section::Units,
            Section::Passwd,
            Section::Group,
            Section::Leftovers,
            Section::State,
            Section::System,
            Section::End,
            Section::Locked,
            Section::Fatal,
            Section::Frame,
            Section::Applied,
        ];
        for i in [0, 7, 12345] {
            all.extend([Section::Resource(i), Section::Content(i), Section::Lines(i)]);
            for mark in [Mark::Ok, Mark::Fail, Mark::Skip] {
                all.push(Section::Step(i, mark));
            }
        }
        all
    }

    #[test]
    fn names_round_trip() {
        for section in every_section() {
            assert_eq!(Section::parse(&section.to_string()), Some(section));
        }
        for bad in [
            "", "r", "r01", "r-1", "rx", "r1 maybe", "c1 ok", "x1", "END", "r1  ok",
        ] {
            assert_eq!(Section::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn emitted_sections_parse_back_through_a_real_shell() {
        let token = Token::random();
        let mut script = preamble(&token);
        for (n, section) in every_section().iter().enumerate() {
            script.push_str(&section.emit());
            script.push_str(&format!("\necho body{n}\n"));
        }
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let parsed = split(&out.stdout, &token);
        let sections: Vec<Section> = parsed.iter().map(|(s, _)| *s).collect();
        assert_eq!(sections, every_section());
        for (n, (_, body)) in parsed.iter().enumerate() {
            assert_eq!(*body, format!("body{n}\n").as_bytes());
        }
    }

    #[test]
    fn sections_cannot_be_forged_without_the_token() {
        let token = Token::fixed("TOK");
        let out = b"\nTOK os\nsystemd=1\n\nTOK c1\nfake\nOTHER end\n\nTOK end\n";
        let s = split(out, &token);
        let names: Vec<_> = s.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, [Section::Os, Section::Content(1), Section::End]);
        assert_eq!(s[1].1, b"fake\nOTHER end\n");
    }

    #[test]
    fn fail_reports_the_failed_commands_status() {
        let script = format!(
            "{}( sh -c 'exit 7' || fail 'the thing' ; echo not reached )\necho after=$?",
            preamble(&Token::fixed("TOK"))
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "after=1\n");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "the thing (exit status 7)\n"
        );
    }
}
