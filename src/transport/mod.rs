//! Reaching nodes: a small async trait with SSH and local implementations. Every remote
//! command is built with `quote`, which lives beside the transports for that reason.

pub mod known_hosts;
pub mod local;
pub mod quote;
pub mod ssh;

use std::time::Duration;

use async_trait::async_trait;

use crate::node::{Node, NodeName};

/// The result of one remote command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit status; `None` when the command died of a signal.
    pub status: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// Why a node could not be reached or a command not completed. Each variant names the
/// node, because these errors travel far from where they happened.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    #[error("{node}: unreachable: {reason}")]
    Unreachable { node: NodeName, reason: String },
    #[error("{node}: host key not trusted: {reason}")]
    HostKey { node: NodeName, reason: String },
    #[error("{node}: authentication failed: {reason}")]
    Auth { node: NodeName, reason: String },
    #[error("{node}: `{what}` timed out after {after:?}")]
    Timeout {
        node: NodeName,
        what: String,
        after: Duration,
    },
    #[error("{node}: connection lost: {reason}")]
    Lost { node: NodeName, reason: String },
}

/// Opens sessions; one per node for a whole run.
#[async_trait]
pub trait Connector: Send + Sync {
    async fn connect(&self, node: &Node) -> Result<Box<dyn Session>, TransportError>;
}

/// An open connection to one node.
#[async_trait]
pub trait Session: Send {
    /// Runs `command` with the login shell (`sh -c` semantics), feeding `stdin` to it.
    /// Secrets travel only in `stdin`, never in `command`. A command that outlives
    /// `timeout` is killed and reported as `TransportError::Timeout`.
    async fn exec(
        &mut self,
        command: &str,
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<Output, TransportError>;

    /// Commands run on this session so far: one per round trip.
    fn round_trips(&self) -> u32;

    /// The host key the node presented and tandem verified (`ssh-ed25519 SHA256:…`);
    /// `None` for transports that have none.
    fn host_key(&self) -> Option<String> {
        None
    }
}
