//! Who is primary lives in git: after a promote, `manifests/site.toml` is rewritten to
//! name the new primary and the new epoch (with `toml_edit`, so every comment and the
//! layout stay as the operator wrote them), committed in the site repository through
//! libgit2 (a commit that changes exactly that file, whatever else the index holds), and
//! optionally pushed to the deploy branch, so that the next push to it deploys the new
//! state rather than the old one.

use std::path::{Path, PathBuf};

use toml_edit::{value, DocumentMut, Item, Table};

#[derive(Debug, thiserror::Error)]
pub enum SiteFileError {
    #[error("cannot read `{path}`: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("`{path}` is not valid TOML: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("`{path}` has no table `[datacenters.{name}]`")]
    NoDatacenter { path: PathBuf, name: String },
    #[error("cannot write `{path}`: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot commit `{path}` in the site repository: {reason}")]
    Commit { path: PathBuf, reason: String },
    #[error("cannot push to `{remote}` branch `{branch}`: {reason}")]
    Push {
        remote: String,
        branch: String,
        reason: String,
    },
}

/// `text` (a `site.toml`) with `primary = true` on `primary` only and `[failover] epoch`
/// set to `epoch`; everything else byte for byte as it was.
pub fn rewrite(
    path: &Path,
    text: &str,
    primary: &str,
    epoch: u64,
) -> Result<String, SiteFileError> {
    let mut doc: DocumentMut =
        text.parse()
            .map_err(|err: toml_edit::TomlError| SiteFileError::Parse {
                path: path.to_path_buf(),
                reason: err.message().to_string(),
            })?;
    let no_dc = || SiteFileError::NoDatacenter {
        path: path.to_path_buf(),
        name: primary.to_string(),
    };
    let datacenters = doc
        .get_mut("datacenters")
        .and_then(Item::as_table_like_mut)
        .ok_or_else(no_dc)?;
    if datacenters.get(primary).is_none() {
        return Err(no_dc());
    }
    for (name, dc) in datacenters.iter_mut() {
        let Some(dc) = dc.as_table_like_mut() else {
            continue;
        };
        if name.get() == primary {
            dc.insert("primary", value(true));
        } else {
            dc.remove("primary");
        }
    }
    let epoch = value(i64::try_from(epoch).unwrap_or(i64::MAX));
    match doc.get_mut("failover").and_then(Item::as_table_like_mut) {
        Some(failover) => {
            failover.insert("epoch", epoch);
        }
        None => {
            let mut table = Table::new();
            table.insert("epoch", epoch);
            doc.insert("failover", Item::Table(table));
        }
    }
    Ok(doc.to_string())
}

/// Writes `text` to `path` atomically (a temporary file in the same directory, synced,
/// renamed over it).
pub fn write_atomic(path: &Path, text: &str) -> Result<(), SiteFileError> {
    use std::io::Write as _;
    let error = |error| SiteFileError::Write {
        path: path.to_path_buf(),
        error,
    };
    let tmp = path.with_extension("toml.tandem-tmp");
    let mut file = std::fs::File::create(&tmp).map_err(error)?;
    file.write_all(text.as_bytes()).map_err(error)?;
    file.sync_all().map_err(error)?;
    std::fs::rename(&tmp, path).map_err(error)
}

/// Commits `path` (already written) on the current branch of the repository holding it,
/// as a commit that changes only that file. Returns the new commit id, or `None` when
/// the site is not in a git repository.
pub fn commit(path: &Path, message: &str) -> Result<Option<String>, SiteFileError> {
    let fail = |reason: String| SiteFileError::Commit {
        path: path.to_path_buf(),
        reason,
    };
    let Ok(repo) = git2::Repository::discover(path.parent().unwrap_or(path)) else {
        return Ok(None);
    };
    let workdir = repo
        .workdir()
        .ok_or_else(|| fail("the repository is bare".into()))?
        .canonicalize()
        .map_err(|e| fail(e.to_string()))?;
    let full = path.canonicalize().map_err(|e| fail(e.to_string()))?;
    let rel = full
        .strip_prefix(&workdir)
        .map_err(|_| fail("the file is outside the repository's work tree".into()))?
        .to_path_buf();
    let git = |e: git2::Error| fail(e.message().to_string());
    let head = repo.head().and_then(|h| h.peel_to_commit()).map_err(git)?;
    let bytes = std::fs::read(&full).map_err(|e| fail(e.to_string()))?;
    let blob = repo.blob(&bytes).map_err(git)?;
    let mut update = git2::build::TreeUpdateBuilder::new();
    update.upsert(&rel, blob, git2::FileMode::Blob);
    let tree_id = update
        .create_updated(&repo, &head.tree().map_err(git)?)
        .map_err(git)?;
    let tree = repo.find_tree(tree_id).map_err(git)?;
    let signature = repo
        .signature()
        .or_else(|_| git2::Signature::now("tandem", "tandem@localhost"))
        .map_err(git)?;
    let id = repo
        .commit(
            Some("HEAD"),
            &signature,
            &signature,
            message,
            &tree,
            &[&head],
        )
        .map_err(git)?;
    // The index follows for that one path, so the work tree reads clean again.
    let mut index = repo.index().map_err(git)?;
    index.add_path(&rel).map_err(git)?;
    index.write().map_err(git)?;
    Ok(Some(id.to_string()))
}

/// Pushes `HEAD` of the repository holding `site` to `branch` of `remote`. This build's
/// libgit2 has no SSH or HTTPS transport: remotes on a local path or `file://` only.
pub fn push(site: &Path, remote: &str, branch: &str) -> Result<(), SiteFileError> {
    let fail = |reason: String| SiteFileError::Push {
        remote: remote.to_string(),
        branch: branch.to_string(),
        reason,
    };
    let repo = git2::Repository::discover(site).map_err(|e| fail(e.message().to_string()))?;
    let mut origin = repo
        .find_remote(remote)
        .map_err(|e| fail(e.message().to_string()))?;
    let rejected = std::cell::RefCell::new(None::<String>);
    let mut callbacks = git2::RemoteCallbacks::new();
    callbacks.push_update_reference(|_, status| {
        if let Some(status) = status {
            *rejected.borrow_mut() = Some(status.to_string());
        }
        Ok(())
    });
    let mut options = git2::PushOptions::new();
    options.remote_callbacks(callbacks);
    origin
        .push(&[format!("HEAD:refs/heads/{branch}")], Some(&mut options))
        .map_err(|e| fail(e.message().to_string()))?;
    drop(options);
    match rejected.into_inner() {
        Some(reason) => Err(fail(format!("rejected: {reason}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = "# the site\n[site]\nname = \"x\"\n\n# primary: azure\n[datacenters.azure-westus]\nprimary = true # was first\nprovider = \"static\"\n\n# standby\n[datacenters.aws-useast1]\nprovider = \"static\"\n";

    #[test]
    fn the_primary_moves_the_epoch_is_set_and_comments_stay() {
        let path = Path::new("manifests/site.toml");
        let out = rewrite(path, SITE, "aws-useast1", 4).unwrap();
        let parsed: toml::Table = out.parse().unwrap();
        let dcs = parsed["datacenters"].as_table().unwrap();
        assert_eq!(dcs["aws-useast1"]["primary"].as_bool(), Some(true));
        assert!(dcs["azure-westus"].get("primary").is_none());
        assert_eq!(parsed["failover"]["epoch"].as_integer(), Some(4));
        for comment in ["# the site", "# primary: azure", "# standby"] {
            assert!(out.contains(comment), "{out}");
        }
        // An existing [failover] table is updated in place.
        let again = rewrite(path, &out, "azure-westus", 5).unwrap();
        assert_eq!(again.matches("[failover]").count(), 1, "{again}");
        assert!(again.contains("epoch = 5"), "{again}");
        assert!(matches!(
            rewrite(path, SITE, "gcp", 1),
            Err(SiteFileError::NoDatacenter { .. })
        ));
    }
}
