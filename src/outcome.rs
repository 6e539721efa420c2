//! What happened to one node in a run. The executor produces these, the rollout driver
//! counts them against the failure threshold, the run history stores them and the exit
//! code is derived from them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::exit::Status;

/// A node's outcome in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every resource already read as in sync.
    Unchanged,
    /// Changes were applied and the node read as in sync afterwards.
    Changed,
    /// A resource failed, or the node did not read as in sync after applying.
    Failed,
    /// The node could not be reached (connection refused or timed out).
    Unreachable,
    /// Not applied because something it depends on failed.
    Skipped,
    /// The node's SSH host key is unknown or changed: it got no command.
    HostKey,
    /// The rollout halted before this node's batch.
    NotAttempted,
    /// A signal stopped the run while the node was in flight, and it had not finished
    /// within the grace period: the run stopped waiting, so its state is unknown.
    Interrupted,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Unchanged,
        Outcome::Changed,
        Outcome::Failed,
        Outcome::Unreachable,
        Outcome::Skipped,
        Outcome::HostKey,
        Outcome::NotAttempted,
        Outcome::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Unchanged => "unchanged",
            Outcome::Changed => "changed",
            Outcome::Failed => "failed",
            Outcome::Unreachable => "unreachable",
            Outcome::Skipped => "skipped",
            Outcome::HostKey => "host-key",
            Outcome::NotAttempted => "not-attempted",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// Whether the node counts against a rollout's `max_failed`: failed, unreachable,
    /// host-key and interrupted nodes do (none of them is known to be converged); skipped
    /// and not-attempted nodes do not (nothing was tried on them).
    pub fn counts_as_failure(self) -> bool {
        matches!(
            self,
            Outcome::Failed | Outcome::Unreachable | Outcome::HostKey | Outcome::Interrupted
        )
    }

    /// Whether the node ended converged, so a health check on it means something.
    pub fn is_converged(self) -> bool {
        matches!(self, Outcome::Unchanged | Outcome::Changed)
    }

    /// The exit status this outcome alone calls for (specification section 4): failed
    /// beats unreachable when a run has both, see [`Outcome::exit_status`].
    fn status(self) -> Status {
        match self {
            Outcome::Unchanged | Outcome::Changed | Outcome::Skipped => Status::Ok,
            Outcome::Failed | Outcome::HostKey | Outcome::NotAttempted | Outcome::Interrupted => {
                Status::Failed
            }
            Outcome::Unreachable => Status::Unreachable,
        }
    }

    /// The exit status of a run with these outcomes: 3 when any node failed (or was left
    /// not attempted by a halt), else 4 when any was unreachable, else 0.
    pub fn exit_status(outcomes: impl IntoIterator<Item = Outcome>) -> Status {
        let mut status = Status::Ok;
        for outcome in outcomes {
            status = match (status, outcome.status()) {
                (Status::Failed, _) | (_, Status::Failed) => Status::Failed,
                (Status::Unreachable, _) | (_, Status::Unreachable) => Status::Unreachable,
                _ => Status::Ok,
            };
        }
        status
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| format!("unknown node outcome `{s}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for outcome in Outcome::ALL {
            assert_eq!(outcome.as_str().parse::<Outcome>(), Ok(outcome));
            let json = serde_json::to_string(&outcome).unwrap();
            assert_eq!(json, format!("\"{}\"", outcome.as_str()));
        }
        assert!("exploded".parse::<Outcome>().is_err());
    }

    #[test]
    fn failed_beats_unreachable_beats_ok() {
        use Outcome::*;
        assert_eq!(Outcome::exit_status([Unchanged, Changed]), Status::Ok);
        assert_eq!(
            Outcome::exit_status([Changed, Unreachable]),
            Status::Unreachable
        );
        assert_eq!(
            Outcome::exit_status([Unreachable, Failed, Changed]),
            Status::Failed
        );
        assert_eq!(Outcome::exit_status([HostKey]), Status::Failed);
        assert_eq!(Outcome::exit_status([]), Status::Ok);
    }
}
