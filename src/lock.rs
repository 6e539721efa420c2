//! The site-wide run lock: `.tandem/run.lock` in the site, held with `flock(2)` for the
//! whole run, so two applies never interleave. The kernel drops a `flock` when its
//! holder exits, however it exits, so a crashed run never leaves the site stuck. The
//! holder writes who it is into the file (user, host, pid, command, since) so that a
//! second run can name it: ``site is locked by `alice@build-1` (pid 4242, `tandem
//! apply`) since 2026-11-28T14:02:11Z``.
//!
//! Recovery. On one machine there is nothing to recover: a dead holder holds nothing.
//! When `.tandem/` is on a shared (network) file system, the lock lives on the file
//! server; if the holder's machine died, the server releases it when the client's lease
//! expires (NFSv4: about 90 seconds), so waiting (`Wait::For`) is the first answer. If
//! the message still names a holder whose pid is gone on its host (check there with
//! `ps -p PID`), the file server lost track of the client: remove `.tandem/run.lock`
//! and the next run locks a fresh file. Never remove it while the holder may be
//! alive: two runs would then apply at once. The file's content is only a label; the
//! lock is the `flock` alone, and the file descriptor is close-on-exec so that commands
//! a run spawns (ssh, validators) never inherit it.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

/// The lock file, relative to the site root.
pub const LOCK_FILE: &str = ".tandem/run.lock";

/// How often a waiting run retries the lock.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open the run lock `{path}`: {error}")]
    Open { path: PathBuf, error: io::Error },
    #[error("cannot lock `{path}`: {error}")]
    Flock { path: PathBuf, error: io::Error },
    #[error("site is locked by {}", holder_text(.holder.as_deref(), .path))]
    Held {
        path: PathBuf,
        holder: Option<Box<Holder>>,
    },
    #[error("site is still locked after waiting {}s, by {}", .waited.as_secs(), holder_text(.holder.as_deref(), .path))]
    Timeout {
        path: PathBuf,
        waited: Duration,
        holder: Option<Box<Holder>>,
    },
}

fn holder_text(holder: Option<&Holder>, path: &Path) -> String {
    match holder {
        Some(holder) => holder.to_string(),
        None => format!(
            "a run that has not written its name into `{}` yet",
            path.display()
        ),
    }
}

/// Who holds the lock, as written into the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub command: String,
    /// RFC 3339, UTC, seconds.
    pub since: String,
}

impl Holder {
    /// This process, running `command`.
    pub fn current(command: &str) -> Holder {
        Holder {
            user: current_user(),
            host: current_host(),
            pid: std::process::id(),
            command: command.to_string(),
            since: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        }
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}@{}` (pid {}, `{}`) since {}",
            self.user, self.host, self.pid, self.command, self.since
        )
    }
}

/// What to do when another run holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Fail at once, naming the holder.
    FailFast,
    /// Retry until this much time has passed, then fail naming the holder.
    For(Duration),
}

/// A held run lock; dropping it releases the lock.
#[derive(Debug)]
pub struct SiteLock {
    file: File,
    path: PathBuf,
    holder: Holder,
}

impl SiteLock {
    /// Takes the lock of the site at `site_root` for `command` (shown to others).
    /// Blocks while waiting: from async code use [`SiteLock::acquire_async`].
    pub fn acquire(site_root: &Path, command: &str, wait: Wait) -> Result<SiteLock, LockError> {
        SiteLock::acquire_file(&site_root.join(LOCK_FILE), command, wait)
    }

    /// [`SiteLock::acquire`] on a blocking thread.
    pub async fn acquire_async(
        site_root: PathBuf,
        command: String,
        wait: Wait,
    ) -> Result<SiteLock, LockError> {
        let path = site_root.join(LOCK_FILE);
        let blocking_path = path.clone();
        tokio::task::spawn_blocking(move || SiteLock::acquire_file(&blocking_path, &command, wait))
            .await
            .unwrap_or_else(|err| {
                Err(LockError::Flock {
                    path,
                    error: io::Error::other(err.to_string()),
                })
            })
    }

    /// Takes the lock on the file at `path` (its directory is created).
    pub fn acquire_file(path: &Path, command: &str, wait: Wait) -> Result<SiteLock, LockError> {
        let open_error = |error| LockError::Open {
            path: path.to_path_buf(),
            error,
        };
        if let Some(dir) = path.parent() {
            crate::state_dir::create(dir).map_err(open_error)?;
        }
        // Not truncated on open: the content names the current holder until we own it.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(open_error)?;
        let started = Instant::now();
        loop {
            if try_flock(&file).map_err(|error| LockError::Flock {
                path: path.to_path_buf(),
                error,
            })? {
                break;
            }
            let holder = read_holder(&mut file).map(Box::new);
            match wait {
                Wait::FailFast => {
                    return Err(LockError::Held {
                        path: path.to_path_buf(),
                        holder,
                    })
                }
                Wait::For(limit) if started.elapsed() >= limit => {
                    return Err(LockError::Timeout {
                        path: path.to_path_buf(),
                        waited: limit,
                        holder,
                    })
                }
                Wait::For(_) => std::thread::sleep(POLL),
            }
        }
        let holder = Holder::current(command);
        write_holder(&mut file, &holder).map_err(open_error)?;
        Ok(SiteLock {
            file,
            path: path.to_path_buf(),
            holder,
        })
    }

    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Who holds the lock at `path` now, if anyone wrote their name; for status pages.
    /// The name may be stale when nobody holds the lock (a crashed holder's label).
    pub fn peek(path: &Path) -> Option<Holder> {
        let mut file = File::open(path).ok()?;
        read_holder(&mut file)
    }
}

impl Drop for SiteLock {
    fn drop(&mut self) {
        // Clear the label while still holding the lock; closing the file releases it.
        let _ = self.file.set_len(0);
    }
}

/// `Ok(true)` when the lock was taken, `Ok(false)` when another holds it.
fn try_flock(file: &File) -> io::Result<bool> {
    loop {
        // SAFETY: flock on a file descriptor this `File` owns and keeps open.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.take(64 * 1024).read_to_string(&mut text).ok()?;
    serde_json::from_str(text.trim()).ok()
}

fn write_holder(file: &mut File, holder: &Holder) -> io::Result<()> {
    let text = serde_json::to_string(holder).map_err(io::Error::other)?;
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_data()
}

/// The person behind this run: `$SUDO_USER` when run through sudo (the human, not
/// `root`), else the account of the real uid, else `$USER`, else `uidN`.
pub(crate) fn current_user() -> String {
    if let Some(user) = std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty()) {
        return user;
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    account_name(uid)
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| format!("uid{uid}"))
}

fn account_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value to be overwritten (pointers null).
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; on success `found` points at `entry`,
    // whose strings live in `buf`, which outlives their use below.
    let rc = unsafe { libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() || entry.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_name is a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
    Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty())
}

/// The machine's host name, `unknown-host` if the kernel will not say.
pub(crate) fn current_host() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success
    // when the name fits, and we stop at the first NUL or the buffer's end.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown-host".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
#[path = "lock_tests.rs"]
pub(crate) mod tests;
