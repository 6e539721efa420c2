//! The site repository as the daemon sees it: a bare mirror under the state directory,
//! fetched with libgit2 on every accepted delivery, the deploy branch's head resolved
//! from what was fetched (never from a payload), the rewind check (does the head contain
//! the deployed commit), the commits a new head supersedes, and a clean checkout of
//! exactly one commit per run.
//!
//! A checkout is its own small repository at `checkouts/COMMIT` whose objects come from
//! the mirror (an `alternates` file, as `git clone --shared` does), its HEAD detached at
//! the commit and its files checked out with force, so the run's site source reads that
//! commit, clean. Its `.tandem` is a link to the site's own `.tandem`: the run takes the
//! same site lock, writes the same history and trusts the same known_hosts as an
//! operator's `tandem apply`.

use std::path::{Path, PathBuf};

use git2::{
    build::CheckoutBuilder, CertificateCheckStatus, Cred, FetchOptions, Oid, RemoteCallbacks,
    Repository,
};

use super::config::SshRemote;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("repository mirror `{path}`: cannot {action}: {error}")]
    Git {
        path: PathBuf,
        action: String,
        error: git2::Error,
    },
    #[error("cannot fetch `{url}`: {error}")]
    Fetch { url: String, error: git2::Error },
    #[error("the fetched repository has no branch `{branch}`")]
    NoBranch { branch: String },
    #[error("checkout `{path}`: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// A commit's signature and the content it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub signature: Vec<u8>,
    pub data: Vec<u8>,
}

/// The bare mirror of the site repository.
#[derive(Debug, Clone)]
pub struct Mirror {
    pub path: PathBuf,
    pub url: String,
    /// For `ssh://`: the deploy key and the pinned host key.
    pub ssh: Option<SshRemote>,
}

fn git(path: &Path, action: impl Into<String>) -> impl FnOnce(git2::Error) -> RepoError {
    let path = path.to_path_buf();
    let action = action.into();
    move |error| RepoError::Git {
        path,
        action,
        error,
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RepoError {
    let path = path.to_path_buf();
    move |error| RepoError::Io { path, error }
}

impl Mirror {
    pub fn new(state_dir: &Path, url: &str, ssh: Option<SshRemote>) -> Mirror {
        Mirror {
            path: state_dir.join("mirror.git"),
            url: url.to_string(),
            ssh,
        }
    }

    /// Over ssh: authenticate with the deploy key (once: a refused key is not offered
    /// again and again) and accept only the pinned host key.
    fn callbacks(&self) -> RemoteCallbacks<'_> {
        let mut callbacks = RemoteCallbacks::new();
        let Some(ssh) = &self.ssh else {
            return callbacks;
        };
        let mut offered = false;
        callbacks.credentials(move |_url, user, _allowed| {
            if std::mem::replace(&mut offered, true) {
                return Err(git2::Error::from_str("the deploy key was refused"));
            }
            Cred::ssh_key(user.unwrap_or("git"), None, &ssh.deploy_key, None)
        });
        callbacks.certificate_check(move |cert, host| {
            match cert.as_hostkey().and_then(|k| k.hostkey()) {
                Some(blob) if blob == ssh.host_key.as_slice() => {
                    Ok(CertificateCheckStatus::CertificateOk)
                }
                _ => Err(git2::Error::from_str(&format!(
                    "the host key of `{host}` is not the pinned `host_key`"
                ))),
            }
        });
        callbacks
    }

    fn open(&self) -> Result<Repository, RepoError> {
        if self.path.join("HEAD").exists() {
            Repository::open_bare(&self.path).map_err(git(&self.path, "open it"))
        } else {
            crate::state_dir::create(&self.path).map_err(io(&self.path))?;
            Repository::init_bare(&self.path).map_err(git(&self.path, "create it"))
        }
    }

    /// Whether the remote answers: connects and lists its refs (no objects are
    /// fetched), with the same deploy key and pinned host key as a fetch. `/readyz`.
    pub fn reachable(&self) -> Result<(), RepoError> {
        let repo = self.open()?;
        let mut remote = repo
            .remote_anonymous(&self.url)
            .map_err(git(&self.path, "set up the remote"))?;
        let fetch_error = |error| RepoError::Fetch {
            url: self.url.clone(),
            error,
        };
        let connection = remote
            .connect_auth(git2::Direction::Fetch, Some(self.callbacks()), None)
            .map_err(fetch_error)?;
        connection.list().map_err(fetch_error)?;
        Ok(())
    }

    /// Fetches the deploy branch (forced, so a rewind shows as one) and returns the
    /// commit it points at.
    pub fn fetch(&self, branch: &str) -> Result<String, RepoError> {
        let repo = self.open()?;
        let mut remote = repo
            .remote_anonymous(&self.url)
            .map_err(git(&self.path, "set up the remote"))?;
        let refspec = format!("+refs/heads/{branch}:refs/heads/{branch}");
        let mut options = FetchOptions::new();
        options
            .download_tags(git2::AutotagOption::None)
            .remote_callbacks(self.callbacks());
        remote
            .fetch(&[refspec.as_str()], Some(&mut options), None)
            .map_err(|error| RepoError::Fetch {
                url: self.url.clone(),
                error,
            })?;
        let reference = repo
            .find_reference(&format!("refs/heads/{branch}"))
            .map_err(|_| RepoError::NoBranch {
                branch: branch.to_string(),
            })?;
        let commit = reference
            .peel_to_commit()
            .map_err(git(&self.path, format!("read the head of `{branch}`")))?;
        Ok(commit.id().to_string())
    }

    /// Whether `head` is `base` or contains it; `false` when `base` is not in the
    /// mirror at all (the deployed commit was never on this branch).
    pub fn contains(&self, head: &str, base: &str) -> Result<bool, RepoError> {
        if head == base {
            return Ok(true);
        }
        let repo = self.open()?;
        let (Ok(head), Ok(base)) = (Oid::from_str(head), Oid::from_str(base)) else {
            return Ok(false);
        };
        if repo.find_commit(base).is_err() {
            return Ok(false);
        }
        repo.graph_descendant_of(head, base)
            .map_err(git(&self.path, "compare commits"))
    }

    /// The commits after `base` up to `head`, `head` excluded, newest first, at most
    /// `cap`: what a run of `head` supersedes.
    pub fn between(&self, head: &str, base: &str, cap: usize) -> Result<Vec<String>, RepoError> {
        let repo = self.open()?;
        let mut walk = repo.revwalk().map_err(git(&self.path, "walk history"))?;
        let push = |walk: &mut git2::Revwalk<'_>, hide: bool, id: &str| -> Result<(), RepoError> {
            let oid = Oid::from_str(id).map_err(git(&self.path, "parse a commit id"))?;
            let result = if hide { walk.hide(oid) } else { walk.push(oid) };
            result.map_err(git(&self.path, "walk history"))
        };
        push(&mut walk, false, head)?;
        push(&mut walk, true, base)?;
        Ok(walk
            .filter_map(Result::ok)
            .map(|oid| oid.to_string())
            .filter(|id| id != head)
            .take(cap)
            .collect())
    }

    /// The SSH signature and the signed content of `commit`, if it carries one.
    pub fn signature(&self, commit: &str) -> Result<Option<Signed>, RepoError> {
        let repo = self.open()?;
        let oid = Oid::from_str(commit).map_err(git(&self.path, "parse a commit id"))?;
        match repo.extract_signature(&oid, None) {
            Ok((sig, data)) => Ok(Some(Signed {
                signature: sig.to_vec(),
                data: data.to_vec(),
            })),
            Err(err) if err.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(error) => Err(git(&self.path, "read a commit signature")(error)),
        }
    }

    /// A clean checkout of exactly `commit` at `dir/COMMIT`, whose `.tandem` links to
    /// `state`. An existing checkout of the commit is forced clean again.
    pub fn checkout(&self, commit: &str, dir: &Path, state: &Path) -> Result<PathBuf, RepoError> {
        let oid = Oid::from_str(commit).map_err(git(&self.path, "parse a commit id"))?;
        let target = dir.join(commit);
        crate::state_dir::create(&target).map_err(io(&target))?;
        let repo = if target.join(".git").exists() {
            Repository::open(&target).map_err(git(&target, "open the checkout"))?
        } else {
            Repository::init(&target).map_err(git(&target, "create the checkout"))?
        };
        let objects = std::fs::canonicalize(self.path.join("objects")).map_err(io(&self.path))?;
        let info = target.join(".git/objects/info");
        std::fs::create_dir_all(&info).map_err(io(&info))?;
        std::fs::write(info.join("alternates"), format!("{}\n", objects.display()))
            .map_err(io(&info))?;
        let exclude = target.join(".git/info");
        std::fs::create_dir_all(&exclude).map_err(io(&exclude))?;
        std::fs::write(exclude.join("exclude"), "/.tandem\n").map_err(io(&exclude))?;
        // Reopen: the alternates are read when the object database is opened.
        drop(repo);
        let repo = Repository::open(&target).map_err(git(&target, "open the checkout"))?;
        repo.set_head_detached(oid)
            .map_err(git(&target, format!("detach HEAD at `{commit}`")))?;
        let mut builder = CheckoutBuilder::new();
        builder.force().remove_untracked(true);
        repo.checkout_head(Some(&mut builder))
            .map_err(git(&target, format!("check out `{commit}`")))?;
        let link = target.join(".tandem");
        match std::fs::read_link(&link) {
            Ok(existing) if existing == state => {}
            _ => {
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(state, &link).map_err(io(&link))?;
            }
        }
        Ok(target)
    }
}

/// Removes all but the `keep` newest checkouts below `dir` (never `current`). Only the
/// daemon writes there; a saved plan does not need its checkout (`tandem apply FILE`
/// checks the site digest, which any checkout of the commit has).
pub fn prune(dir: &Path, keep: usize, current: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != current)
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    found.sort();
    let excess = found.len().saturating_sub(keep.saturating_sub(1));
    for (_, path) in found.into_iter().take(excess) {
        if let Err(err) = std::fs::remove_dir_all(&path) {
            eprintln!(
                "serve: cannot remove the old checkout `{}`: {err}",
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, script: &str) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    #[test]
    fn fetch_checkout_contains_and_rewind_from_a_local_path() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir_all(work.join("manifests")).unwrap();
        sh(
            &work,
            "git init -q -b master && echo one > manifests/a && git add . && git commit -qm one",
        );
        let one = sh(&work, "git rev-parse HEAD");
        sh(&work, "echo two > manifests/a && git commit -qam two && echo x > manifests/b && git add . && git commit -qm three");
        let three = sh(&work, "git rev-parse HEAD");
        let mirror = Mirror::new(&dir.path().join("state"), work.to_str().unwrap(), None);
        assert_eq!(mirror.fetch("master").unwrap(), three);
        assert!(mirror.contains(&three, &one).unwrap());
        assert_eq!(mirror.between(&three, &one, 10).unwrap().len(), 1);
        let state = dir.path().join("site-state");
        std::fs::create_dir_all(&state).unwrap();
        let out = mirror
            .checkout(&one, &dir.path().join("checkouts"), &state)
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("manifests/a")).unwrap(),
            "one\n"
        );
        assert!(!out.join("manifests/b").exists());
        let source = crate::manifest::source::SiteSource::read(&out).unwrap();
        assert_eq!(source.commit.as_deref(), Some(one.as_str()));
        assert!(!source.dirty);
        // A rewind: the new head does not contain the fetched one.
        sh(
            &work,
            "git reset -q --hard HEAD~2 && echo other > manifests/a && git commit -qam other",
        );
        let other = mirror.fetch("master").unwrap();
        assert!(!mirror.contains(&other, &three).unwrap());
        assert!(matches!(
            mirror.fetch("nope"),
            Err(RepoError::Fetch { .. } | RepoError::NoBranch { .. })
        ));
        assert_eq!(mirror.signature(&other).unwrap(), None);
    }
}
