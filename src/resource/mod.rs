//! Resources: what a node should have (`spec`, produced by the catalog compiler) and how
//! to get there from what was read. One module per resource type holds its facts (what
//! it adds to the probe), its planning (facts -> change) and its operations (change ->
//! shell). `operations` is the one place that maps a spec to its type's implementation.

pub mod change;
pub mod diff;
pub mod directory;
pub mod exec;
pub mod file;
pub mod group;
pub mod package;
pub mod service;
pub mod spec;
pub mod symlink;
pub mod user;

pub use spec::*;

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
#[derive(Debug, Default)]
pub struct StepOut {
    /// Commands, one per line, run under `set -e` in a subshell with stdin closed.
    pub shell: String,
    /// Data the step reads: blob `n` is in the file `"$W/b<n>"` on the node.
    pub blobs: Vec<Vec<u8>>,
    /// Numbering offset of this step's blobs (set by the executor).
    pub blob_base: usize,
    /// The step changes a systemd unit file: `systemctl daemon-reload` is due.
    pub unit_file: bool,
    /// The step manages a systemd service: a due daemon-reload runs before it.
    pub systemd_service: bool,
}

impl StepOut {
    pub fn line(&mut self, line: impl AsRef<str>) {
        self.shell.push_str(line.as_ref());
        self.shell.push('\n');
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

/// The implementation for a spec's type.
pub fn operations(spec: &Spec) -> &dyn Operations {
    match spec {
        Spec::File(s) => s,
        Spec::Directory(s) => s,
        Spec::Symlink(s) => s,
        Spec::Package(s) => s,
        Spec::Service(s) => s,
        Spec::User(s) => s,
        Spec::Group(s) => s,
        Spec::Exec(s) => s,
    }
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

/// `chown`/`chmod` lines for `target` (a shell word), only for what the spec manages.
pub(crate) fn metadata_shell(
    out: &mut StepOut,
    target: &str,
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
        out.line(format!("chown -h -- {} {target}", quote_str(&spec)));
    }
    if let Some(mode) = mode {
        out.line(format!(
            "chmod -- {} {target}",
            quote_str(&mode.to_string())
        ));
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
