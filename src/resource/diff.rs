//! File content diffs for plans. Plain content gets a unified diff (the `similar` crate);
//! secret-bearing content gets only the numbers of the lines that change and the
//! fingerprints of the secrets it holds, computed without the old content ever leaving
//! the node. A node's copy that held secret-bearing content when tandem last rendered it
//! gets the same treatment even once the new content holds no secret (its line numbers
//! are computed here, the text is never shown). Any known secret value that still shows
//! up in a plain diff is replaced by its marker.

use serde::Serialize;
use similar::TextDiff;

use crate::secret::{Fingerprint, SecretStore};

/// How a file's content change is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Diff {
    /// A unified diff, secrets already redacted.
    Text { unified: String },
    /// Secret-bearing content: changed line numbers (old side, new side) and fingerprints.
    Redacted {
        removed_lines: Vec<usize>,
        added_lines: Vec<usize>,
        secrets: Vec<Fingerprint>,
    },
    /// No diff can be shown (binary, too large, unreadable); `reason` says why.
    Unavailable { reason: String },
}

/// A unified diff of `old` to `new` for `path`; `old` is `None` for a new file.
pub fn text(path: &str, old: Option<&[u8]>, new: &[u8], secrets: &SecretStore) -> Diff {
    let old_bytes = old.unwrap_or(b"");
    let (Ok(old_text), Ok(new_text)) = (std::str::from_utf8(old_bytes), std::str::from_utf8(new))
    else {
        return Diff::Unavailable {
            reason: "binary content".into(),
        };
    };
    let diff = TextDiff::from_lines(old_text, new_text);
    let old_name = if old.is_some() { path } else { "/dev/null" };
    let unified = diff
        .unified_diff()
        .context_radius(3)
        .header(old_name, path)
        .to_string();
    Diff::Text {
        unified: secrets.redact(&unified),
    }
}

/// A redacted diff from the node's `-N`/`+N` line list (section `l<index>`).
pub fn redacted(lines: &[u8], secrets: &[Fingerprint]) -> Diff {
    let mut removed_lines = Vec::new();
    let mut added_lines = Vec::new();
    for line in String::from_utf8_lossy(lines).lines() {
        if let Some(n) = line.strip_prefix('-').and_then(|n| n.parse().ok()) {
            removed_lines.push(n);
        } else if let Some(n) = line.strip_prefix('+').and_then(|n| n.parse().ok()) {
            added_lines.push(n);
        }
    }
    Diff::Redacted {
        removed_lines,
        added_lines,
        secrets: secrets.to_vec(),
    }
}

/// A redacted diff computed here from both sides: for a node's copy that held a secret
/// while the new content holds none (the old text must not be shown either).
pub fn redacted_between(old: &[u8], new: &[u8], secrets: &[Fingerprint]) -> Diff {
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    let mut removed_lines = Vec::new();
    let mut added_lines = Vec::new();
    for op in TextDiff::from_lines(old.as_ref(), new.as_ref()).ops() {
        use similar::DiffTag;
        if matches!(op.tag(), DiffTag::Delete | DiffTag::Replace) {
            removed_lines.extend(op.old_range().map(|n| n + 1));
        }
        if matches!(op.tag(), DiffTag::Insert | DiffTag::Replace) {
            added_lines.extend(op.new_range().map(|n| n + 1));
        }
    }
    Diff::Redacted {
        removed_lines,
        added_lines,
        secrets: secrets.to_vec(),
    }
}

/// Redacted diff of a file that does not exist yet: every line is new.
pub fn redacted_new(new: &[u8], secrets: &[Fingerprint]) -> Diff {
    let count = new.split(|&b| b == b'\n').count() - usize::from(new.ends_with(b"\n"));
    Diff::Redacted {
        removed_lines: Vec::new(),
        added_lines: (1..=count).collect(),
        secrets: secrets.to_vec(),
    }
}

/// `1-3,7`: compact line ranges for text output.
pub fn ranges(lines: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = lines[i];
        let mut end = start;
        while i + 1 < lines.len() && lines[i + 1] == end + 1 {
            i += 1;
            end = lines[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn unified_diff_redacts_known_secrets() {
        let mut store = SecretStore::default();
        store.insert(Secret::new("db", "hunter2"));
        let d = text(
            "/etc/app.conf",
            Some(b"a\npw=hunter2\n"),
            b"a\npw=x\n",
            &store,
        );
        let Diff::Text { unified } = d else { panic!() };
        assert!(unified.contains("--- /etc/app.conf"));
        assert!(unified.contains("+pw=x"));
        assert!(!unified.contains("hunter2"), "{unified}");
        assert!(unified.contains("[secret "));
    }

    #[test]
    fn redacted_lines_and_ranges() {
        let fp = Fingerprint::of(b"s");
        let Diff::Redacted {
            removed_lines,
            added_lines,
            ..
        } = redacted(b"-2\n-3\n+2\n+3\n+4\n", std::slice::from_ref(&fp))
        else {
            panic!()
        };
        assert_eq!(removed_lines, [2, 3]);
        assert_eq!(ranges(&added_lines), "2-4");
        assert_eq!(ranges(&[1, 3, 4, 9]), "1,3-4,9");
        let Diff::Redacted { added_lines, .. } = redacted_new(b"a\nb\n", &[fp]) else {
            panic!()
        };
        assert_eq!(added_lines, [1, 2]);
        assert!(matches!(
            text("/x", None, b"\xff", &SecretStore::default()),
            Diff::Unavailable { .. }
        ));
        let Diff::Redacted {
            removed_lines,
            added_lines,
            secrets,
        } = redacted_between(b"a\npw=old-secret\nc\n", b"a\nc\nd\n", &[])
        else {
            panic!()
        };
        assert_eq!((removed_lines, added_lines), (vec![2], vec![3]));
        assert!(secrets.is_empty());
    }
}
