//! The SSH transport, on libssh2 (`ssh2`, blocking) driven from tokio: connecting and
//! each command run on a blocking thread, so the runtime never waits on a socket. One
//! TCP connection per node for the whole run; each command is a channel on it.
//!
//! `connect` builds a verified, authenticated session (host key before any
//! authentication), `jump` tunnels it through a bastion, `exec` runs one command.

mod connect;
mod exec;
mod jump;

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::known_hosts::{HostKey, KnownHosts, KnownHostsError};
use super::{Connector, Output, Session, TransportError};
use crate::node::{Node, NodeName};

/// How tandem reaches nodes over SSH.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// Login user when the node names none (`Node.user` wins).
    pub user: String,
    /// Private key file; `None` authenticates through ssh-agent (`SSH_AUTH_SOCK`).
    pub identity: Option<PathBuf>,
    /// tandem's own known_hosts file (never `~/.ssh/known_hosts`).
    pub known_hosts: PathBuf,
    /// Bound on each step of connecting: TCP connect, key exchange, authentication.
    pub connect_timeout: Duration,
    /// The command timeout callers use when they have no better one.
    pub command_timeout: Duration,
    /// An SSH keepalive is sent after this long without traffic to the node, and TCP
    /// keepalive probes after this long idle.
    pub keepalive_interval: Duration,
    /// Keepalives without an answer before the connection counts as dead: a node heard
    /// nothing from for `keepalive_interval * keepalive_count` is lost (the meaning of
    /// OpenSSH's `ServerAliveInterval` and `ServerAliveCountMax`).
    pub keepalive_count: u32,
    /// A bastion to go through; its host key must be pinned too, as `[address]:port`.
    pub jump: Option<JumpHost>,
    /// Connections in their handshake (TCP connect, key exchange, authentication) at
    /// once, whatever the run's parallelism: a thousand handshakes started together
    /// starve the CPU they share and time out on `connect_timeout` (seen at 1,000
    /// hosts); queued connections wait for a turn, which `connect_timeout` does not
    /// count. Commands on open connections are not limited by it.
    pub max_connecting: usize,
}

/// Default for [`SshConfig::max_connecting`].
pub const MAX_CONNECTING: usize = 64;

/// A bastion host; nodes are then reached through a `direct-tcpip` channel on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpHost {
    pub address: String,
    pub port: u16,
    pub user: String,
}

impl SshConfig {
    /// Defaults: user `root`, ssh-agent, 10 s to connect, 5 min per command, a
    /// keepalive every 5 s and the connection dead after 3 unanswered (15 s of silence).
    pub fn new(known_hosts: PathBuf) -> Self {
        SshConfig {
            user: "root".to_string(),
            identity: None,
            known_hosts,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(300),
            keepalive_interval: Duration::from_secs(5),
            keepalive_count: 3,
            jump: None,
            max_connecting: MAX_CONNECTING,
        }
    }

    /// How long a node may stay silent before its connection counts as lost.
    pub fn dead_after(&self) -> Duration {
        self.keepalive_interval.max(Duration::from_secs(1)) * self.keepalive_count.max(1)
    }
}

/// tandem's known_hosts: the file given explicitly (`--known-hosts`,
/// `TANDEM_KNOWN_HOSTS`), else `.tandem/known_hosts` in the site.
pub fn known_hosts_path(explicit: Option<&Path>, site_root: &Path) -> PathBuf {
    explicit.map_or_else(|| site_root.join(".tandem/known_hosts"), Path::to_path_buf)
}

/// Opens SSH sessions; holds the known_hosts file read once at construction.
#[derive(Debug, Clone)]
pub struct SshConnector {
    config: Arc<SshConfig>,
    known_hosts: Arc<KnownHosts>,
    /// Turns to handshake (`SshConfig::max_connecting`), shared by clones.
    connecting: Arc<tokio::sync::Semaphore>,
}

impl SshConnector {
    pub fn new(config: SshConfig) -> Result<Self, KnownHostsError> {
        let known_hosts = KnownHosts::load(&config.known_hosts)?;
        let connecting = Arc::new(tokio::sync::Semaphore::new(config.max_connecting.max(1)));
        Ok(SshConnector {
            config: Arc::new(config),
            known_hosts: Arc::new(known_hosts),
            connecting,
        })
    }

    pub fn config(&self) -> &SshConfig {
        &self.config
    }

    /// The known_hosts this connector verifies against (read when it was built).
    pub fn known_hosts(&self) -> Arc<KnownHosts> {
        self.known_hosts.clone()
    }

    /// Connects without authenticating and returns the host key the node presents
    /// (what `tandem trust` shows and pins). Nothing is checked and nothing is sent.
    pub async fn scan(&self, node: &Node) -> Result<HostKey, TransportError> {
        let (config, known_hosts, node) =
            (self.config.clone(), self.known_hosts.clone(), node.clone());
        let name = node.name.clone();
        tokio::task::spawn_blocking(move || connect::scan(&node, &config, &known_hosts))
            .await
            .map_err(|err| lost(&name, format!("connection thread failed: {err}")))?
    }
}

#[async_trait]
impl Connector for SshConnector {
    fn route(&self) -> String {
        let jump = self.config.jump.as_ref().map_or(String::new(), |j| {
            format!(
                " via {}@{}",
                j.user,
                super::known_hosts::host_name(&j.address, j.port)
            )
        });
        format!("ssh as {}{jump}", self.config.user)
    }

    async fn connect(&self, node: &Node) -> Result<Box<dyn Session>, TransportError> {
        let (config, known_hosts, node) =
            (self.config.clone(), self.known_hosts.clone(), node.clone());
        let name = node.name.clone();
        // Never closed, so acquiring only waits; held until the session is set up.
        let _turn = self.connecting.acquire().await;
        let connection =
            tokio::task::spawn_blocking(move || connect::open(&node, &config, &known_hosts))
                .await
                .map_err(|err| lost(&name, format!("connection thread failed: {err}")))??;
        Ok(Box::new(SshSession {
            node: name,
            host_key: connection.host_key.clone(),
            verified: connection.verified.clone(),
            held: None,
            connection: Some(connection),
            dead_after: self.config.dead_after(),
            round_trips: 0,
        }))
    }
}

/// An authenticated libssh2 session and the socket under it (for `poll`). Fields drop
/// in order: the session before the tunnel it may run over.
struct Connection {
    session: ssh2::Session,
    fd: RawFd,
    /// The verified host key, `TYPE SHA256:…`.
    host_key: String,
    /// Every key verified on the way (the node's, then the bastion's), by host and port.
    verified: Vec<(String, u16, HostKey)>,
    _tunnel: Option<jump::Tunnel>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Best effort, without waiting: a polite goodbye so sshd logs a clean close.
        self.session.set_blocking(false);
        let _ = self
            .session
            .disconnect(Some(ssh2::DisconnectCode::ByApplication), "done", None);
    }
}

/// One node's open connection.
pub struct SshSession {
    node: NodeName,
    /// A command started by `hold`, waiting for `resume`.
    held: Option<exec::Running>,
    /// `None` once the connection was lost or its peer fell silent: later commands
    /// fail fast.
    connection: Option<Connection>,
    host_key: String,
    verified: Vec<(String, u16, HostKey)>,
    /// Silence after which the connection counts as lost (`SshConfig::dead_after`).
    dead_after: Duration,
    round_trips: u32,
}

/// Set when the `exec` future is dropped before its command ended (the run stopped
/// waiting for the node, after an interrupt's grace period): the blocking thread sees it
/// within one poll interval, gives up the channel and returns, so no thread outlives the
/// run waiting on a hung node.
impl Drop for SshSession {
    fn drop(&mut self) {
        // A held channel is freed without waiting for the peer (see `exec::start`).
        if let (Some(connection), Some(_)) = (&self.connection, &self.held) {
            connection.session.set_blocking(false);
        }
        self.held = None;
    }
}

impl SshSession {
    fn connection(&mut self) -> Result<Connection, TransportError> {
        self.connection.take().ok_or_else(|| {
            lost(
                &self.node,
                "the connection was lost earlier in this run".into(),
            )
        })
    }

    /// Runs `work` on the connection on a blocking thread, within `timeout`'s limits
    /// (abandoned when this future is dropped), and keeps the connection afterwards
    /// unless the result showed it broken.
    async fn blocking<T: Send + 'static>(
        &mut self,
        timeout: Duration,
        work: impl FnOnce(&Connection, &NodeName, &exec::Limits) -> Result<T, TransportError>
            + Send
            + 'static,
    ) -> Result<T, TransportError> {
        let connection = self.connection()?;
        let cancel = CancelOnDrop(Arc::new(AtomicBool::new(false)));
        let limits = exec::Limits {
            timeout,
            dead_after: self.dead_after,
            cancel: cancel.0.clone(),
        };
        let node = self.node.clone();
        let (connection, result) = tokio::task::spawn_blocking(move || {
            let result = work(&connection, &node, &limits);
            (connection, result)
        })
        .await
        .map_err(|err| lost(&self.node, format!("command thread failed: {err}")))?;
        drop(cancel);
        self.keep(connection, result.as_ref().map(|_| ()), timeout);
        result
    }

    /// Keeps the connection after a command unless its end showed it broken: a lost
    /// connection, or a node that did not even report the kill in time, is not used
    /// again, so later commands fail fast instead of waiting out their own timeouts on a
    /// silent peer.
    fn keep(
        &mut self,
        connection: Connection,
        result: Result<(), &TransportError>,
        timeout: Duration,
    ) {
        let broken = match result {
            Err(TransportError::Lost { .. } | TransportError::NotSent { .. }) => true,
            Err(TransportError::Timeout { after, .. }) => *after >= timeout + exec::GRACE,
            _ => false,
        };
        if !broken {
            self.connection = Some(connection);
        }
    }

    /// Lets a held command end having done nothing more, so the session can run another.
    async fn release(&mut self) -> Result<(), TransportError> {
        if self.held.is_some() {
            self.resume(b"", exec::GRACE).await?;
        }
        Ok(())
    }
}

struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl Session for SshSession {
    async fn exec(
        &mut self,
        command: &str,
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<Output, TransportError> {
        self.release().await?;
        self.round_trips += 1;
        let (command, stdin) = super::ship_command(command, stdin);
        let (command, stdin) = (command.into_owned(), stdin.into_owned());
        self.blocking(timeout, move |connection, node, limits| {
            exec::run(connection, node, &command, &stdin, limits)
        })
        .await
    }

    async fn hold(
        &mut self,
        command: &str,
        stdin: &[u8],
        until: &[u8],
        timeout: Duration,
        whole: Duration,
    ) -> Result<Option<Output>, TransportError> {
        self.release().await?;
        self.round_trips += 1;
        let (command, stdin) = super::ship_command(command, stdin);
        let (command, stdin, until) = (command.into_owned(), stdin.into_owned(), until.to_vec());
        let held = self
            .blocking(timeout, move |connection, node, limits| {
                exec::hold(connection, node, &command, &stdin, &until, whole, limits)
            })
            .await?;
        match held {
            exec::Held::Waiting(running, output) => {
                self.held = Some(running);
                Ok(Some(output))
            }
            exec::Held::Exited(output) => Ok(Some(output)),
        }
    }

    async fn resume(&mut self, stdin: &[u8], timeout: Duration) -> Result<Output, TransportError> {
        let running = self
            .held
            .take()
            .ok_or_else(|| super::not_held(&self.node))?;
        let stdin = stdin.to_vec();
        self.blocking(timeout, move |connection, node, limits| {
            exec::resume(connection, node, running, &stdin, limits)
        })
        .await
    }

    fn holding(&self) -> bool {
        self.held.is_some()
    }

    fn round_trips(&self) -> u32 {
        self.round_trips
    }

    fn host_key(&self) -> Option<String> {
        Some(self.host_key.clone())
    }

    /// A session whose command is held is not handed to anyone else: a pool drops it
    /// (closing the connection ends the held command on the node).
    fn is_open(&self) -> bool {
        self.connection.is_some() && self.held.is_none()
    }

    fn still_trusted(&self, known_hosts: &KnownHosts) -> bool {
        self.verified.iter().all(|(address, port, key)| {
            known_hosts.check(address, *port, key) == super::known_hosts::Verdict::Trusted
        })
    }

    async fn keepalive(&mut self) -> Result<(), TransportError> {
        let connection = self
            .connection
            .take()
            .ok_or_else(|| lost(&self.node, "the connection was lost earlier".into()))?;
        let dead_after = self.dead_after;
        let (connection, result) = tokio::task::spawn_blocking(move || {
            let result = exec::keepalive(&connection, dead_after);
            (connection, result)
        })
        .await
        .map_err(|err| lost(&self.node, format!("keepalive thread failed: {err}")))?;
        match result {
            Ok(()) => {
                self.connection = Some(connection);
                Ok(())
            }
            Err(reason) => Err(lost(&self.node, reason)),
        }
    }
}

fn lost(node: &NodeName, reason: String) -> TransportError {
    TransportError::Lost {
        node: node.clone(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_silent_for_three_keepalives_is_lost() {
        let mut config = SshConfig::new(PathBuf::from("/dev/null"));
        assert_eq!(config.connect_timeout, Duration::from_secs(10));
        assert_eq!(config.dead_after(), Duration::from_secs(15));
        config.keepalive_interval = Duration::from_secs(2);
        config.keepalive_count = 4;
        assert_eq!(config.dead_after(), Duration::from_secs(8));
        config.keepalive_interval = Duration::ZERO;
        config.keepalive_count = 0;
        assert_eq!(config.dead_after(), Duration::from_secs(1));
    }
}
