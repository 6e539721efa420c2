//! The records of the run history: a run, each node's outcome in it, each resource
//! change. Plain data with serde, so `tandem runs --format json` and the daemon's status
//! pages print them as they are.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::exit::Status;
use crate::node::{DatacenterName, NodeName};
use crate::outcome::Outcome;
use crate::resource::change::Action;
use crate::resource::spec::ResourceId;

/// A run's number in the history, as `tandem runs show ID` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub i64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for RunId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .trim_start_matches('#')
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .map(RunId)
            .ok_or_else(|| format!("run id `{s}` is not a positive number"))
    }
}

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(concat!("unknown ", stringify!($name), " `{}`"), s)),
                }
            }
        }
    };
}

text_enum!(
    /// What a recorded change was: a resource's [`Action`], or a saved plan's resource
    /// refused because its state moved.
    ChangeAction {
        Create = "create",
        Modify = "modify",
        Remove = "remove",
        Run = "run",
        Reload = "reload",
        Refused = "refused",
    }
);

impl From<Action> for ChangeAction {
    fn from(action: Action) -> Self {
        match action {
            Action::Create => ChangeAction::Create,
            Action::Modify => ChangeAction::Modify,
            Action::Remove => ChangeAction::Remove,
            Action::Run => ChangeAction::Run,
            Action::Reload => ChangeAction::Reload,
        }
    }
}

text_enum!(
    /// What a run did.
    RunKind {
        Plan = "plan",
        Apply = "apply",
    }
);

text_enum!(
    /// Where a run ended, or `running` while it goes on.
    RunStatus {
        Running = "running",
        /// Everything in sync (plan) or converged (apply).
        Succeeded = "succeeded",
        /// `plan` found changes to make.
        Pending = "pending",
        /// Some nodes failed (exit 3).
        Failed = "failed",
        /// Some nodes were unreachable (exit 4).
        Unreachable = "unreachable",
        /// The rollout stopped at its failure threshold or a health check.
        Halted = "halted",
        /// An error before any host was touched (exit 1).
        Error = "error",
        /// The process ended without finishing the run (crash, kill, power loss).
        Interrupted = "interrupted",
    }
);

impl RunStatus {
    /// The status that matches a command's exit status.
    pub fn from_exit(status: Status) -> RunStatus {
        match status {
            Status::Ok => RunStatus::Succeeded,
            Status::Error => RunStatus::Error,
            Status::Pending => RunStatus::Pending,
            Status::Failed => RunStatus::Failed,
            Status::Unreachable => RunStatus::Unreachable,
        }
    }
}

/// A run about to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    pub kind: RunKind,
    /// `user@host`, or `webhook` for the daemon.
    pub started_by: String,
    /// The command line, as typed (secrets are redacted before it is stored).
    pub command: String,
    /// The site repository's commit, when known.
    pub commit: Option<String>,
    /// The compiled site folders differed from `commit`.
    pub dirty: bool,
    /// The digest of the compiled site files (`crate::manifest::source::site_digest`).
    pub site_digest: Option<String>,
}

impl NewRun {
    /// A run started from a terminal by the current user on this host.
    pub fn by_current_user(
        kind: RunKind,
        command: impl Into<String>,
        commit: Option<String>,
    ) -> NewRun {
        NewRun {
            kind,
            started_by: format!(
                "{}@{}",
                crate::lock::current_user(),
                crate::lock::current_host()
            ),
            command: command.into(),
            commit,
            dirty: false,
            site_digest: None,
        }
    }

    /// The run of exactly this site content: commit, dirtiness and digest.
    pub fn with_source(mut self, source: &crate::manifest::source::SiteSource) -> NewRun {
        self.commit = source.commit.clone();
        self.dirty = source.dirty;
        self.site_digest = Some(source.digest.clone());
        self
    }
}

/// A run as the history holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    pub id: RunId,
    pub kind: RunKind,
    pub status: RunStatus,
    pub started_by: String,
    pub command: String,
    pub commit: Option<String>,
    /// Where the run's process ran, to tell a crashed run from a live one.
    pub host: String,
    pub pid: u32,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    /// Why the run ended badly, when it did.
    pub error: Option<String>,
    /// The compiled site folders differed from `commit`.
    pub dirty: bool,
    pub site_digest: Option<String>,
}

/// One node's part in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRun {
    pub node: NodeName,
    pub datacenter: Option<DatacenterName>,
    pub outcome: Outcome,
    /// RFC 3339, UTC; set from [`NodeRun::new`]'s clock when recording.
    pub started_at: String,
    pub duration_ms: i64,
    /// The error a failed or unreachable node ended with (secrets redacted on write).
    pub error: Option<String>,
}

impl NodeRun {
    /// A node's record from when it started and how long it took.
    pub fn new(
        node: NodeName,
        datacenter: Option<DatacenterName>,
        outcome: Outcome,
        started: SystemTime,
        took: Duration,
    ) -> NodeRun {
        NodeRun {
            node,
            datacenter,
            outcome,
            started_at: rfc3339(millis(started)),
            duration_ms: i64::try_from(took.as_millis()).unwrap_or(i64::MAX),
            error: None,
        }
    }

    pub fn with_error(mut self, error: impl Into<String>) -> NodeRun {
        self.error = Some(error.into());
        self
    }
}

/// One resource change made (apply) or proposed (plan) on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceChange {
    pub node: NodeName,
    pub resource: ResourceId,
    pub action: ChangeAction,
    /// One line for people, as the plan prints it: never a secret value (redacted on
    /// write as a second guard).
    pub summary: String,
}

/// A run with everything recorded under it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: Run,
    pub nodes: Vec<NodeRun>,
    pub changes: Vec<ResourceChange>,
}

pub(crate) fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn now_millis() -> i64 {
    millis(SystemTime::now())
}

/// Milliseconds since the epoch as RFC 3339 UTC, to the second.
pub(crate) fn rfc3339(ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(time).to_string()
}

/// RFC 3339 back to milliseconds; `None` when it is not one.
pub(crate) fn parse_rfc3339(text: &str) -> Option<i64> {
    humantime::parse_rfc3339(text).ok().map(millis)
}

/// A run's or node's duration as the history shows it, in the CLI and on the daemon's
/// pages alike: `850ms`, `1.2s`, `3m 05s`; `-` while unknown.
pub fn duration_text(ms: Option<i64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 1_000 => format!("{ms}ms"),
        Some(ms) if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        Some(ms) => format!("{}m {:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}
