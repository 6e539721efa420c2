//! Resources: what a node should have (`spec`, produced by the catalog compiler) and how
//! to get there from what was read. One module per resource type holds its facts (what
//! it adds to the probe), its planning (facts -> change), its operations (change ->
//! shell) and its manifest side (keys, building its spec, its name).
//!
//! Adding a type: its own module (its spec struct, and [`Operations`] and
//! [`ResourceType`] for it) and one line in the `resource_types!` list below, which
//! declares the module and generates `ResourceKind`, `Spec` and every dispatch over
//! them. A manifest key no type had before also needs its field in `manifest/raw.rs`
//! and its lookup in `catalog/build.rs`.

pub mod change;
pub mod diff;
mod registry;
pub mod spec;

pub use registry::{Attributes, ResourceType};
pub use spec::*;

// The resource types: one line each (see `registry`).
registry::resource_types! {
    file::FileSpec as File = "file",
    directory::DirectorySpec as Directory = "directory",
    symlink::SymlinkSpec as Symlink = "symlink",
    package::PackageSpec as Package = "package",
    service::ServiceSpec as Service = "service",
    user::UserSpec as User = "user",
    group::GroupSpec as Group = "group",
    exec::ExecSpec as Exec = "exec",
}

use crate::fact::{FactError, NodeFacts, PathStat, ProbeBuilder};
use crate::path::RemotePath;
use crate::secret::SecretStore;
use crate::transport::quote::quote_str;
use change::{Assessment, Change, Detail};

/// What a resource's planning sees.
pub struct Context<'a> {
    /// Position in the catalog: names the resource's probe sections.
    pub index: usize,
    pub id: &'a ResourceId,
    pub facts: &'a NodeFacts,
    /// Resources with a pending change that notify this one.
    pub notified_by: &'a [ResourceId],
    pub secrets: &'a SecretStore,
}

/// Shell for one resource's change, and what the executor must know about it.
///
/// POSIX shells ignore `set -e` inside `if`, `&&`/`||` lists and `!`, so nothing relies
/// on it: every command is added with [`StepOut::run`], which tests its status and ends
/// the step with a message when it fails. The step runs in a subshell with stdin closed;
/// `fail WHAT` (from `protocol::preamble`) ends it.
#[derive(Debug, Default)]
pub struct StepOut {
    /// Shell lines, each one checked command (or a `fail`/`trap` line).
    pub shell: String,
    /// Data the step reads: blob `n` is in the file `"$W/b<n>"` on the node.
    pub blobs: Vec<Vec<u8>>,
    /// Numbering offset of this step's blobs (set by the executor).
    pub blob_base: usize,
    /// The step changes a systemd unit file: `systemctl daemon-reload` is due.
    pub unit_file: bool,
    /// The step manages a systemd service: a due daemon-reload runs before it.
    pub systemd_service: bool,
    /// The step is `systemctl daemon-reload` itself: once it succeeds none is due.
    pub reloads_units: bool,
    /// Directories (shell words) whose entries the step renamed or removed: fsynced
    /// after the last step, each once, for the steps that succeeded (`apply::script`).
    pub synced_dirs: Vec<String>,
}

impl StepOut {
    /// `command` (one command, a pipeline or a compound command whose status is that of
    /// all of it); when it exits non-zero the step fails with `what` and the status.
    pub fn run(&mut self, command: impl AsRef<str>, what: impl AsRef<str>) {
        let command = command.as_ref();
        if command.contains('\n') {
            self.run_redirected(command, "", what);
        } else {
            let what = quote_str(what.as_ref());
            self.shell.push_str(&format!("{command} || fail {what}\n"));
        }
    }

    /// As `run`, with `redirect` (`>&2`, `>/dev/null 2>&1`) applied to all of `command`,
    /// which may be several lines of manifest shell.
    pub fn run_redirected(&mut self, command: &str, redirect: &str, what: impl AsRef<str>) {
        let what = quote_str(what.as_ref());
        self.shell
            .push_str(&format!("{{ {command}\n}}{redirect} || fail {what}\n"));
    }

    /// `dir` (a shell word) had an entry renamed or removed: its fsync is due, once,
    /// after every step (one `sync` for all of them), so that the change survives a
    /// crash. The content a rename puts in place was fsynced before the rename.
    pub fn sync_dir(&mut self, dir: String) {
        if !self.synced_dirs.contains(&dir) {
            self.synced_dirs.push(dir);
        }
    }

    /// Ends the step as failed with `message`, running nothing.
    pub fn fail(&mut self, message: impl AsRef<str>) {
        self.shell
            .push_str(&format!("fail {}\n", quote_str(message.as_ref())));
    }

    /// A `trap` (or another line that cannot fail): the one unchecked kind of line.
    pub fn trap(&mut self, action: &str) {
        self.shell
            .push_str(&format!("trap {} EXIT\n", quote_str(action)));
    }

    /// Registers data for the step; returns the shell word naming its file on the node.
    pub fn blob(&mut self, bytes: &[u8]) -> String {
        self.blobs.push(bytes.to_vec());
        format!("\"$W/b{}\"", self.blob_base + self.blobs.len() - 1)
    }
}

/// A resource type: its facts, its planning, its operations.
pub trait Operations {
    fn probe(&self, index: usize, probe: &mut ProbeBuilder);
    fn assess(&self, ctx: &Context<'_>) -> Result<Assessment, FactError>;
    fn apply(&self, change: &Change, facts: &NodeFacts, out: &mut StepOut);
}

/// The `type` difference when an existing path is not the kind `wanted` (`file`,
/// `directory`), or nothing when it is.
pub(crate) fn kind_detail(stat: &PathStat, wanted: crate::fact::EntryKind) -> Option<Detail> {
    (stat.kind != wanted).then(|| {
        Detail::new(
            "type",
            Some(format!("{:?}", stat.kind).to_lowercase()),
            Some(format!("{wanted:?}").to_lowercase()),
        )
    })
}

/// Mode, owner and group differences of an existing path.
pub(crate) fn metadata_details(
    stat: &PathStat,
    mode: Option<Mode>,
    owner: Option<&String>,
    group: Option<&String>,
) -> Vec<Detail> {
    let mut details = Vec::new();
    if let Some(mode) = mode {
        if stat.mode != mode.0 {
            details.push(Detail::new(
                "mode",
                Some(Mode(stat.mode).to_string()),
                Some(mode.to_string()),
            ));
        }
    }
    if let Some(owner) = owner {
        if &stat.owner != owner {
            details.push(Detail::new(
                "owner",
                Some(stat.owner.clone()),
                Some(owner.clone()),
            ));
        }
    }
    if let Some(group) = group {
        if &stat.group != group {
            details.push(Detail::new(
                "group",
                Some(stat.group.clone()),
                Some(group.clone()),
            ));
        }
    }
    details
}

/// `chown`/`chmod` lines for `target` (a shell word; `what` names it in errors), only
/// for what the spec manages.
pub(crate) fn metadata_shell(
    out: &mut StepOut,
    target: &str,
    what: &str,
    mode: Option<Mode>,
    owner: Option<&String>,
    group: Option<&String>,
) {
    let spec = match (owner, group) {
        (Some(o), Some(g)) => Some(format!("{o}:{g}")),
        (Some(o), None) => Some(o.clone()),
        (None, Some(g)) => Some(format!(":{g}")),
        (None, None) => None,
    };
    if let Some(spec) = spec {
        out.run(
            format!("chown -h -- {} {target}", quote_str(&spec)),
            format!("cannot set owner `{spec}` on {what}"),
        );
    }
    if let Some(mode) = mode {
        out.run(
            format!("chmod -- {} {target}", quote_str(&mode.to_string())),
            format!("cannot set mode `{mode}` on {what}"),
        );
    }
}

/// `stat` as a short canonical text for digests.
pub(crate) fn observed_stat(stat: Option<&PathStat>) -> String {
    match stat {
        None => "absent".into(),
        Some(s) => format!(
            "{:?} {:o} {}:{} {}",
            s.kind, s.mode, s.owner, s.group, s.size
        ),
    }
}

/// Wraps a manifest command for running as `user` in `cwd`. The command is shell code
/// by design (the manifest author wrote it); user and directory are quoted values.
pub(crate) fn wrap_command(
    command: &str,
    user: Option<&String>,
    cwd: Option<&RemotePath>,
) -> String {
    let inner = match cwd {
        Some(dir) => format!("cd {} && {command}", quote_str(dir.as_str())),
        None => command.to_string(),
    };
    match user {
        Some(user) => format!(
            "runuser -u {} -- /bin/sh -c {}",
            quote_str(user),
            quote_str(&inner)
        ),
        None => format!("( {inner}\n)"),
    }
}
