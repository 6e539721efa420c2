//! Reaching nodes: a small async trait with SSH and local implementations. Every remote
//! command is built with `quote`, which lives beside the transports for that reason.

pub mod known_hosts;
pub mod local;
pub mod pool;
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
    /// The connection was already unusable before the command was handed to the node
    /// (no channel could be opened on it): certainly nothing ran, so the command may be
    /// sent again on a fresh connection ([`pool::SessionPool`] does, once).
    #[error("{node}: connection lost before the command was sent: {reason}")]
    NotSent { node: NodeName, reason: String },
}

/// Commands longer than this travel on stdin, ahead of the command's own input, behind a
/// fixed bootstrap ([`ship_command`]): an SSH server and libssh2 refuse exec requests
/// past about 32 KiB (libssh2: "Unable to send channel request"), and a catalog's
/// apply script outgrows that with a few dozen resources.
pub const INLINE_COMMAND_MAX: usize = 16 * 1024;

/// The command to send and the stdin to feed it: `command` and `stdin` as they are when
/// the command is short; otherwise a bootstrap that reads exactly the command's bytes
/// from stdin (`head -c`, which reads no further) and evaluates them, so the command
/// then reads the rest of stdin as it would have read all of it. Still one round trip.
pub fn ship_command<'a>(
    command: &'a str,
    stdin: &'a [u8],
) -> (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, [u8]>) {
    use std::borrow::Cow;
    if command.len() <= INLINE_COMMAND_MAX {
        return (Cow::Borrowed(command), Cow::Borrowed(stdin));
    }
    // `$(…)` drops trailing newlines only, which a shell program never needs; the
    // trailing `x` guards nothing here but keeps a command that ends in a quoted
    // newline whole.
    let bootstrap = format!(
        "tandem_command=$(head -c {} && echo x) || exit 125; eval \"${{tandem_command%x}}\"",
        command.len()
    );
    let mut shipped = Vec::with_capacity(command.len() + stdin.len());
    shipped.extend_from_slice(command.as_bytes());
    shipped.extend_from_slice(stdin);
    (Cow::Owned(bootstrap), Cow::Owned(shipped))
}

/// What [`Session::resume`] answers when no command is held: a caller's bug, reported
/// as a lost connection so that nothing more is sent.
pub fn not_held(node: &NodeName) -> TransportError {
    TransportError::Lost {
        node: node.clone(),
        reason: "no command is held on this session to resume".into(),
    }
}

/// Opens sessions; one per node for a whole run.
#[async_trait]
pub trait Connector: Send + Sync {
    async fn connect(&self, node: &Node) -> Result<Box<dyn Session>, TransportError>;

    /// What besides the node itself decides where `connect` lands and as whom (the
    /// default login user, the bastion): part of a [`pool::SessionPool`]'s key, so a
    /// session is never handed out for a different route.
    fn route(&self) -> String {
        String::new()
    }
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

    /// Starts `command` and holds it open: feeds it `stdin` without closing its input,
    /// and returns what it printed by the time stdout held `until` (included), within
    /// `timeout`. The command then waits on the node for [`Session::resume`]; `whole`
    /// bounds it there, from now, as `timeout` bounds an [`Session::exec`]. When the
    /// command exits before printing `until`, its whole output is returned and nothing
    /// is held ([`Session::holding`] says which). One round trip with its resumption.
    ///
    /// `Ok(None)`: this transport does not hold commands, and nothing was run; the
    /// caller runs its two halves as two commands.
    async fn hold(
        &mut self,
        _command: &str,
        _stdin: &[u8],
        _until: &[u8],
        _timeout: Duration,
        _whole: Duration,
    ) -> Result<Option<Output>, TransportError> {
        Ok(None)
    }

    /// The held command's second half: feeds it `stdin`, closes its input and returns
    /// the rest of its output (what followed `until`) and its exit status, within
    /// `timeout` from now (and within the held command's `whole`). An empty `stdin` lets a
    /// held command end having done nothing more.
    /// Transports that do not hold commands answer [`not_held`].
    async fn resume(&mut self, stdin: &[u8], timeout: Duration) -> Result<Output, TransportError>;

    /// A command started by [`Session::hold`] waits for its resumption.
    fn holding(&self) -> bool {
        false
    }

    /// Commands run on this session so far: one per round trip (a held command and its
    /// resumption are one).
    fn round_trips(&self) -> u32;

    /// The host key the node presented and tandem verified (`ssh-ed25519 SHA256:…`);
    /// `None` for transports that have none.
    fn host_key(&self) -> Option<String> {
        None
    }

    /// `false` once the connection is known to be unusable (lost, or given up after a
    /// hard timeout): a pool then drops it instead of keeping it.
    fn is_open(&self) -> bool {
        true
    }

    /// Whether the keys verified when this session connected (the node's, and a
    /// bastion's) are still trusted by `known_hosts`, as on a fresh connect.
    fn still_trusted(&self, _known_hosts: &known_hosts::KnownHosts) -> bool {
        true
    }

    /// Keeps an idle connection alive (an SSH keepalive) and checks that its peer is
    /// still there; an error means the connection is dead and was closed.
    async fn keepalive(&mut self) -> Result<(), TransportError> {
        Ok(())
    }
}
