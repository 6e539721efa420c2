//! The secret-bearing ledger, `.tandem/secret-bearing` in the site (mode 0600): which
//! file paths the site has rendered secret-bearing content for, and keyed digests of
//! the SHA-256 of that content. After a secret is rotated and a template stops using
//! it, the node still holds the old content; the ledger is how a later plan knows not
//! to diff that content in clear (see `resource::file`).
//!
//! Why a ledger of what was compiled rather than the run history: the history records
//! outcomes, not content, and lives wherever `--history` points; the catalog compiler
//! sees every secret-bearing file before it can reach a node, on every path that plans
//! or applies. Recording what was compiled over-approximates what was applied, which
//! is the safe direction: a path once secret-bearing is never diffed in clear again
//! (only its changed line numbers show). A fresh checkout has an empty ledger: what
//! another checkout applied is not known there.
//!
//! Lines: `path <absolute path>` or `sum <keyed digest>` (see
//! [`super::DigestKey::sum_digest`]); no plain digest of secret content is written.
//! Recording is best effort: a site directory that cannot be written (a read-only
//! checkout) loses the record, never the run.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// The ledger file, relative to the site root.
pub const LEDGER_FILE: &str = ".tandem/secret-bearing";

/// The ledger of one site: what was read at load, plus what this process recorded.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// `None`: a ledger that is never written (a store built in memory).
    path: Option<PathBuf>,
    entries: Arc<Mutex<HashSet<String>>>,
}

impl Ledger {
    /// The ledger of the site at `site_root` (empty when the file does not exist or
    /// cannot be read).
    pub fn load(site_root: &Path) -> Ledger {
        let path = site_root.join(LEDGER_FILE);
        let entries = std::fs::read_to_string(&path)
            .map(|text| text.lines().map(str::to_string).collect())
            .unwrap_or_default();
        Ledger {
            path: Some(path),
            entries: Arc::new(Mutex::new(entries)),
        }
    }

    fn has(&self, entry: &str) -> bool {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(entry)
    }

    pub fn has_path(&self, path: &str) -> bool {
        self.has(&format!("path {path}"))
    }

    pub fn has_sum(&self, keyed_sum: &str) -> bool {
        self.has(&format!("sum {keyed_sum}"))
    }

    /// Adds `path` (and the keyed digest of its content's sum, when known) and appends
    /// what is new to the file. A path holding a control character is not recorded as
    /// a line (it could forge another entry); its sum still is.
    pub fn record(&self, path: &str, keyed_sum: Option<&str>) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let mut new = Vec::new();
        let candidates = [
            (!path.chars().any(char::is_control)).then(|| format!("path {path}")),
            keyed_sum.map(|sum| format!("sum {sum}")),
        ];
        for entry in candidates.into_iter().flatten() {
            if entries.insert(entry.clone()) {
                new.push(entry);
            }
        }
        if let (Some(file), false) = (&self.path, new.is_empty()) {
            // Best effort by design (see the module comment).
            let _ = append(file, &new);
        }
    }
}

fn append(file: &Path, lines: &[String]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = file.parent() {
        crate::state_dir::create(dir)?;
    }
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file)?;
    let mut text = lines.join("\n");
    text.push('\n');
    out.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn records_survive_a_reload_and_the_file_is_private() {
        let root = tempfile::tempdir().unwrap();
        let ledger = Ledger::load(root.path());
        assert!(!ledger.has_path("/etc/app.conf"));
        ledger.record("/etc/app.conf", Some("abc"));
        ledger.record("/etc/app.conf", Some("abc"));
        ledger.record("/etc/evil\npath /etc/passwd", None);
        let again = Ledger::load(root.path());
        assert!(again.has_path("/etc/app.conf") && again.has_sum("abc"));
        assert!(!again.has_path("/etc/passwd"));
        let text = std::fs::read_to_string(root.path().join(LEDGER_FILE)).unwrap();
        assert_eq!(text, "path /etc/app.conf\nsum abc\n");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root.path().join(LEDGER_FILE)), 0o600);
        assert_eq!(mode(&root.path().join(".tandem")), 0o700);
    }
}
