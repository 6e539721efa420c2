//! The SSH transport, on libssh2 (`ssh2`, blocking) driven from tokio: connecting and
//! each command run on a blocking thread, so the runtime never waits on a socket. One
//! TCP connection per node for the whole run; each command is a channel on it.
//!
//! Order of a connection: TCP with a timeout and TCP_NODELAY, key exchange preferring
//! curve25519, the host key checked against tandem's known_hosts, and only then
//! authentication. An unknown or changed key fails with `TransportError::HostKey` and
//! the node never sees a command, nor even our user name.

mod exec;

use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::known_hosts::{host_name, HostKey, KnownHosts, KnownHostsError, Verdict, KEY_TYPES};
use super::{Connector, Output, Session, TransportError};
use crate::cli::Global;
use crate::node::{Node, NodeName};

/// Key exchanges in preference order; curve25519 is the fast one.
const KEX: &str = "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,\
                   ecdh-sha2-nistp384,diffie-hellman-group14-sha256";

/// How tandem reaches nodes over SSH.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// Login user when the node names none (`Node.user` wins).
    pub user: String,
    /// Private key file; `None` authenticates through ssh-agent (`SSH_AUTH_SOCK`).
    pub identity: Option<PathBuf>,
    /// tandem's own known_hosts file (never `~/.ssh/known_hosts`).
    pub known_hosts: PathBuf,
    /// Bound on TCP connect, key exchange and authentication together.
    pub connect_timeout: Duration,
    /// The command timeout callers use when they have no better one.
    pub command_timeout: Duration,
    /// A bastion to go through. Not supported yet: connecting fails with a clear error.
    pub jump: Option<JumpHost>,
}

/// A bastion host; nodes are then reached through a `direct-tcpip` channel on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpHost {
    pub address: String,
    pub port: u16,
    pub user: String,
}

impl SshConfig {
    /// The configuration the command line asks for: `--known-hosts` (default
    /// `.tandem/known_hosts` in the site), `--identity`, `--user`.
    pub fn from_global(global: &Global, site_root: &Path) -> Self {
        let mut config = SshConfig::new(known_hosts_path(global, site_root));
        config.identity = global.identity.clone();
        if let Some(user) = &global.user {
            config.user = user.clone();
        }
        config
    }

    /// Defaults: user `root`, ssh-agent, 10 s to connect, 5 min per command.
    pub fn new(known_hosts: PathBuf) -> Self {
        SshConfig {
            user: "root".to_string(),
            identity: None,
            known_hosts,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(300),
            jump: None,
        }
    }
}

/// tandem's known_hosts: `--known-hosts`/`TANDEM_KNOWN_HOSTS`, else
/// `.tandem/known_hosts` in the site.
pub fn known_hosts_path(global: &Global, site_root: &Path) -> PathBuf {
    global
        .known_hosts
        .clone()
        .unwrap_or_else(|| site_root.join(".tandem/known_hosts"))
}

/// Opens SSH sessions; holds the known_hosts file read once at construction.
#[derive(Debug, Clone)]
pub struct SshConnector {
    config: Arc<SshConfig>,
    known_hosts: Arc<KnownHosts>,
}

impl SshConnector {
    pub fn new(config: SshConfig) -> Result<Self, KnownHostsError> {
        let known_hosts = KnownHosts::load(&config.known_hosts)?;
        Ok(SshConnector {
            config: Arc::new(config),
            known_hosts: Arc::new(known_hosts),
        })
    }

    pub fn config(&self) -> &SshConfig {
        &self.config
    }

    /// Connects without authenticating and returns the host key the node presents
    /// (what `tandem trust` shows and pins). Nothing is checked and nothing is sent.
    pub async fn scan(&self, node: &Node) -> Result<HostKey, TransportError> {
        let (config, known_hosts, node) =
            (self.config.clone(), self.known_hosts.clone(), node.clone());
        let name = node.name.clone();
        tokio::task::spawn_blocking(move || {
            handshake(&node, &config, &known_hosts).map(|(_, key)| key)
        })
        .await
        .map_err(|err| lost(&name, format!("connection thread failed: {err}")))?
    }
}

#[async_trait]
impl Connector for SshConnector {
    async fn connect(&self, node: &Node) -> Result<Box<dyn Session>, TransportError> {
        let (config, known_hosts, node) =
            (self.config.clone(), self.known_hosts.clone(), node.clone());
        let name = node.name.clone();
        let connection = tokio::task::spawn_blocking(move || open(&node, &config, &known_hosts))
            .await
            .map_err(|err| lost(&name, format!("connection thread failed: {err}")))??;
        Ok(Box::new(SshSession {
            node: name,
            connection: Some(connection),
            round_trips: 0,
        }))
    }
}

/// An authenticated libssh2 session and the socket under it (for `poll`).
struct Connection {
    session: ssh2::Session,
    fd: RawFd,
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
    /// `None` once the connection was lost: later commands fail fast.
    connection: Option<Connection>,
    round_trips: u32,
}

#[async_trait]
impl Session for SshSession {
    async fn exec(
        &mut self,
        command: &str,
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<Output, TransportError> {
        let connection = self.connection.take().ok_or_else(|| {
            lost(
                &self.node,
                "the connection was lost earlier in this run".into(),
            )
        })?;
        self.round_trips += 1;
        let (node, command, stdin) = (self.node.clone(), command.to_string(), stdin.to_vec());
        let (connection, result) = tokio::task::spawn_blocking(move || {
            let result = exec::run(&connection, &node, &command, &stdin, timeout);
            (connection, result)
        })
        .await
        .map_err(|err| lost(&self.node, format!("command thread failed: {err}")))?;
        if !matches!(result, Err(TransportError::Lost { .. })) {
            self.connection = Some(connection);
        }
        result
    }

    fn round_trips(&self) -> u32 {
        self.round_trips
    }
}

fn lost(node: &NodeName, reason: String) -> TransportError {
    TransportError::Lost {
        node: node.clone(),
        reason,
    }
}

fn unreachable(node: &Node, reason: String) -> TransportError {
    TransportError::Unreachable {
        node: node.name.clone(),
        reason: format!("{}: {reason}", host_name(&node.address, node.port)),
    }
}

/// TCP, key exchange and the host key the node presented; no authentication.
fn handshake(
    node: &Node,
    config: &SshConfig,
    known_hosts: &KnownHosts,
) -> Result<(Connection, HostKey), TransportError> {
    if config.jump.is_some() {
        return Err(unreachable(node, "jump hosts are not supported yet".into()));
    }
    let addrs = (node.address.as_str(), node.port)
        .to_socket_addrs()
        .map_err(|err| unreachable(node, format!("cannot resolve `{}`: {err}", node.address)))?;
    let mut last_error = format!("`{}` resolves to no address", node.address);
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, config.connect_timeout) {
            Ok(connected) => {
                stream = Some(connected);
                break;
            }
            Err(err) => last_error = format!("{addr}: {err}"),
        }
    }
    let stream = stream.ok_or_else(|| unreachable(node, last_error))?;
    stream
        .set_nodelay(true)
        .map_err(|err| unreachable(node, format!("cannot set TCP_NODELAY: {err}")))?;
    let fd = stream.as_raw_fd();

    let ssh_error = |what: &str, err: ssh2::Error| unreachable(node, format!("{what}: {err}"));
    let mut session = ssh2::Session::new().map_err(|err| ssh_error("cannot start ssh", err))?;
    // libssh2 takes milliseconds as u32; ten hours is beyond any sane setting.
    session.set_timeout(config.connect_timeout.as_millis().min(36_000_000) as u32);
    session
        .method_pref(ssh2::MethodType::Kex, KEX)
        .map_err(|err| ssh_error("no usable key exchange", err))?;
    session
        .method_pref(
            ssh2::MethodType::HostKey,
            &host_key_preference(&known_hosts.pinned_types(&node.address, node.port)),
        )
        .map_err(|err| ssh_error("no usable host key type", err))?;
    session.set_tcp_stream(stream);
    session
        .handshake()
        .map_err(|err| ssh_error("ssh handshake failed", err))?;
    let key = session
        .host_key()
        .and_then(|(blob, _)| {
            let kind = key_type(blob)?;
            Some(HostKey {
                kind,
                blob: blob.to_vec(),
            })
        })
        .ok_or_else(|| unreachable(node, "the server presented no usable host key".into()))?;
    Ok((Connection { session, fd }, key))
}

/// Host key algorithms: the types pinned for this host first (so the server presents a
/// key we can check), then the rest in tandem's order.
fn host_key_preference(pinned: &[&str]) -> String {
    let expand = |kind: &str| match kind {
        "ssh-rsa" => "rsa-sha2-512,rsa-sha2-256,ssh-rsa".to_string(),
        other => other.to_string(),
    };
    let mut order: Vec<&str> = pinned.to_vec();
    order.extend(KEY_TYPES.iter().filter(|kind| !pinned.contains(kind)));
    order.into_iter().map(expand).collect::<Vec<_>>().join(",")
}

/// The type name a key blob starts with.
fn key_type(blob: &[u8]) -> Option<String> {
    let (len, rest) = blob.split_first_chunk::<4>()?;
    let name = rest.get(..u32::from_be_bytes(*len) as usize)?;
    String::from_utf8(name.to_vec()).ok()
}

/// A verified, authenticated connection.
fn open(
    node: &Node,
    config: &SshConfig,
    known_hosts: &KnownHosts,
) -> Result<Connection, TransportError> {
    let (connection, key) = handshake(node, config, known_hosts)?;
    let host = host_name(&node.address, node.port);
    let refuse = |reason: String| TransportError::HostKey {
        node: node.name.clone(),
        reason,
    };
    let seen = format!("{} {}", key.kind, key.fingerprint());
    let file = known_hosts.path().display();
    match known_hosts.check(&node.address, node.port, &key) {
        Verdict::Trusted => {}
        Verdict::Unknown => {
            return Err(refuse(format!(
                "`{host}` presented {seen}, which is not in `{file}`; check it and pin it \
                 with `tandem trust {}`",
                node.name
            )))
        }
        Verdict::Changed { pinned } => {
            return Err(refuse(format!(
                "HOST KEY CHANGED: `{host}` presented {seen} but `{file}` pins {}; someone \
                 may be intercepting the connection, or the node was rebuilt",
                pinned.join(", ")
            )))
        }
        Verdict::Revoked => {
            return Err(refuse(format!(
                "`{host}` presented {seen}, which `{file}` marks revoked"
            )))
        }
    }

    let user = node.user.as_deref().unwrap_or(&config.user);
    let session = &connection.session;
    let auth = match &config.identity {
        Some(identity) => session
            .userauth_pubkey_file(user, None, identity, None)
            .map_err(|err| format!("key `{}` for user `{user}`: {err}", identity.display())),
        None => session
            .userauth_agent(user)
            .map_err(|err| format!("ssh-agent keys for user `{user}`: {err}")),
    };
    let auth_error = |reason: String| TransportError::Auth {
        node: node.name.clone(),
        reason,
    };
    auth.map_err(auth_error)?;
    if !session.authenticated() {
        return Err(auth_error(format!("user `{user}` was not accepted")));
    }
    Ok(connection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_types_come_first() {
        assert_eq!(
            host_key_preference(&["ssh-rsa"]),
            "rsa-sha2-512,rsa-sha2-256,ssh-rsa,ssh-ed25519,ecdsa-sha2-nistp256,\
             ecdsa-sha2-nistp384,ecdsa-sha2-nistp521"
        );
        assert!(host_key_preference(&[]).starts_with("ssh-ed25519,"));
    }

    #[test]
    fn key_type_reads_the_blob_prefix() {
        assert_eq!(
            key_type(b"\0\0\0\x0bssh-ed25519xyz").as_deref(),
            Some("ssh-ed25519")
        );
        assert_eq!(key_type(b"\0\0\0\x0bssh"), None);
    }
}
