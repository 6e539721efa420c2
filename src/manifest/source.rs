//! Where a site's content came from: the digest of exactly the files that are compiled
//! (`manifests/`, `templates/`, `modules/`), the git commit the site's repository is at,
//! and whether those folders differ from that commit. Runs and saved plans record all
//! three, so the history never credits a clean commit with an uncommitted edit.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The site folders whose files the site digest covers (and whose edits make a tree
/// dirty).
pub const DIGESTED: [&str; 3] = ["manifests", "templates", "modules"];

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot digest the site file `{path}`: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// The identity of the site content a run compiles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteSource {
    /// The commit checked out (`HEAD`), when the site is in a git repository.
    pub commit: Option<String>,
    /// The compiled folders differ from `commit` (edited, added or deleted files, staged
    /// or not); always false outside a repository.
    pub dirty: bool,
    /// See [`site_digest`].
    pub digest: String,
}

impl SiteSource {
    /// Reads the digest and, through libgit2 (no `git` process), the commit and status.
    pub fn read(site_root: &Path) -> Result<SiteSource, SourceError> {
        let digest = site_digest(site_root)?;
        let (commit, dirty) = match git_state(site_root) {
            Some((commit, dirty)) => (Some(commit), dirty),
            None => (None, false),
        };
        Ok(SiteSource {
            commit,
            dirty,
            digest,
        })
    }

    /// `358a932` or `358a932 (dirty)`, or `no commit` outside a repository.
    pub fn describe(&self) -> String {
        match &self.commit {
            Some(c) if self.dirty => format!("{} (dirty)", short(c)),
            Some(c) => short(c).to_string(),
            None => "no commit".into(),
        }
    }
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// `HEAD` of the repository holding `site_root`, and whether any digested folder of the
/// site has changes against it. `None` outside a repository or on an unborn branch.
fn git_state(site_root: &Path) -> Option<(String, bool)> {
    let repo = git2::Repository::discover(site_root).ok()?;
    let commit = repo.head().ok()?.peel_to_commit().ok()?.id().to_string();
    // The site may be a folder inside the repository: pathspecs are relative to the
    // work tree.
    let workdir = repo.workdir()?.canonicalize().ok()?;
    let root = site_root.canonicalize().ok()?;
    let prefix = root.strip_prefix(&workdir).ok()?;
    let mut options = git2::StatusOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false);
    for top in DIGESTED {
        options.pathspec(prefix.join(top));
    }
    // A status that cannot be read counts as dirty: claiming a clean tree is the lie.
    let dirty = repo
        .statuses(Some(&mut options))
        .map_or(true, |statuses| !statuses.is_empty());
    Some((commit, dirty))
}

/// SHA-256 over every file below the site's `manifests/`, `templates/` and `modules/`:
/// relative path, length and content, in path order. Missing folders count as empty.
pub fn site_digest(site_root: &Path) -> Result<String, SourceError> {
    let mut files = Vec::new();
    for top in DIGESTED {
        collect(&site_root.join(top), &mut files)?;
    }
    files.sort();
    let mut hash = Sha256::new();
    for path in files {
        let bytes = std::fs::read(&path).map_err(|error| SourceError::Read {
            path: path.clone(),
            error,
        })?;
        let rel = path.strip_prefix(site_root).unwrap_or(&path);
        hash.update(rel.to_string_lossy().as_bytes());
        hash.update([0]);
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
    }
    Ok(hex::encode(hash.finalize()))
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), SourceError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(SourceError::Read {
                path: dir.to_path_buf(),
                error,
            })
        }
    };
    for entry in entries {
        let entry = entry.map_err(|error| SourceError::Read {
            path: dir.to_path_buf(),
            error,
        })?;
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let status = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }

    #[test]
    fn a_repository_reports_its_commit_and_a_dirty_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("manifests")).unwrap();
        std::fs::write(root.join("manifests/site.toml"), "a\n").unwrap();
        assert_eq!(SiteSource::read(root).unwrap().commit, None);
        git(root, &["init", "-q"]);
        git(root, &["add", "."]);
        git(root, &["commit", "-q", "-m", "one"]);
        let clean = SiteSource::read(root).unwrap();
        assert_eq!(clean.commit.as_deref().map(str::len), Some(40));
        assert!(!clean.dirty);
        // Files outside the compiled folders do not make the site dirty.
        std::fs::write(root.join("README.md"), "notes\n").unwrap();
        assert!(!SiteSource::read(root).unwrap().dirty);
        std::fs::write(root.join("manifests/site.toml"), "b\n").unwrap();
        let edited = SiteSource::read(root).unwrap();
        assert!(edited.dirty);
        assert_eq!(edited.commit, clean.commit);
        assert_ne!(edited.digest, clean.digest);
        assert!(
            edited.describe().ends_with(" (dirty)"),
            "{}",
            edited.describe()
        );
        // An untracked template is an edit too.
        git(root, &["checkout", "-q", "--", "manifests/site.toml"]);
        std::fs::create_dir_all(root.join("templates")).unwrap();
        std::fs::write(root.join("templates/new.hbs"), "x\n").unwrap();
        assert!(SiteSource::read(root).unwrap().dirty);
    }
}
