//! Building one verified, authenticated libssh2 session, in this order: TCP with a
//! timeout and TCP_NODELAY (or a tunnel through the bastion), key exchange preferring
//! curve25519, the host key checked against tandem's known_hosts, and only then
//! authentication. A node whose key is not pinned never sees our user name.

use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

use super::{jump, Connection, SshConfig};
use crate::node::Node;
use crate::transport::known_hosts::{host_name, HostKey, KnownHosts, Verdict, KEY_TYPES};
use crate::transport::TransportError;

/// Key exchanges in preference order; curve25519 is the fast one.
const KEX: &str = "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,\
                   ecdh-sha2-nistp384,diffie-hellman-group14-sha256";

/// What a session runs over: a TCP socket, or our end of a tunnel through a bastion.
pub(super) enum Stream {
    Tcp(TcpStream),
    Tunnel(UnixStream),
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(stream) => stream.as_raw_fd(),
            Stream::Tunnel(stream) => stream.as_raw_fd(),
        }
    }
}

/// A verified, authenticated connection to `node`, directly or through the bastion.
pub(super) fn open(
    node: &Node,
    config: &SshConfig,
    known_hosts: &KnownHosts,
) -> Result<Connection, TransportError> {
    let (stream, tunnel) = match &config.jump {
        None => (Stream::Tcp(tcp(node, config)?), None),
        Some(bastion) => {
            let (stream, tunnel) = jump::tunnel(bastion, node, config, known_hosts)?;
            (Stream::Tunnel(stream), Some(tunnel))
        }
    };
    let (session, fd, key) = handshake(stream, node, config, known_hosts)?;
    verify(node, &key, known_hosts)?;
    authenticate(&session, node, config)?;
    let mut verified = vec![(node.address.clone(), node.port, key.clone())];
    if let Some(tunnel) = &tunnel {
        verified.push(tunnel.bastion_key.clone());
    }
    Ok(Connection {
        session,
        fd,
        host_key: format!("{} {}", key.kind, key.fingerprint()),
        verified,
        _tunnel: tunnel,
    })
}

/// The host key `node` presents, nothing checked and nothing sent after the key
/// exchange (`tandem trust`). Through a bastion, the bastion itself is verified.
pub(super) fn scan(
    node: &Node,
    config: &SshConfig,
    known_hosts: &KnownHosts,
) -> Result<HostKey, TransportError> {
    let (stream, _tunnel) = match &config.jump {
        None => (Stream::Tcp(tcp(node, config)?), None),
        Some(bastion) => {
            let (stream, tunnel) = jump::tunnel(bastion, node, config, known_hosts)?;
            (Stream::Tunnel(stream), Some(tunnel))
        }
    };
    let (_, _, key) = handshake(stream, node, config, known_hosts)?;
    Ok(key)
}

pub(super) fn unreachable(node: &Node, reason: String) -> TransportError {
    TransportError::Unreachable {
        node: node.name.clone(),
        reason: format!("{}: {reason}", host_name(&node.address, node.port)),
    }
}

/// A TCP connection to `node`, trying each address it resolves to.
pub(super) fn tcp(node: &Node, config: &SshConfig) -> Result<TcpStream, TransportError> {
    let addrs = (node.address.as_str(), node.port)
        .to_socket_addrs()
        .map_err(|err| unreachable(node, format!("cannot resolve `{}`: {err}", node.address)))?;
    let mut last_error = format!("`{}` resolves to no address", node.address);
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, config.connect_timeout) {
            Ok(stream) => {
                stream
                    .set_nodelay(true)
                    .map_err(|err| unreachable(node, format!("cannot set TCP_NODELAY: {err}")))?;
                keepalive(&stream, config)
                    .map_err(|err| unreachable(node, format!("cannot set TCP keepalive: {err}")))?;
                return Ok(stream);
            }
            // An address literal is already in the message; a name is not.
            Err(err) if node.address.parse::<std::net::IpAddr>().is_ok() => {
                last_error = err.to_string()
            }
            Err(err) => last_error = format!("{addr}: {err}"),
        }
    }
    Err(unreachable(node, last_error))
}

/// TCP's own dead-peer detection under the SSH keepalives: probes after
/// `keepalive_interval` idle, `keepalive_count` of them, and data left unacknowledged for
/// `dead_after` aborts the connection (`TCP_USER_TIMEOUT`), so a partitioned node turns
/// into a socket error within seconds even while libssh2 is blocked in a call.
fn keepalive(stream: &TcpStream, config: &SshConfig) -> std::io::Result<()> {
    let fd = stream.as_raw_fd();
    let secs = config.keepalive_interval.as_secs().clamp(1, 3600) as libc::c_int;
    let dead_ms = config.dead_after().as_millis().min(i32::MAX as u128) as libc::c_int;
    let set = |level: libc::c_int, name: libc::c_int, value: libc::c_int| {
        // SAFETY: a valid socket and a pointer to an int of the size given.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, secs)?;
    set(
        libc::IPPROTO_TCP,
        libc::TCP_KEEPCNT,
        config.keepalive_count.clamp(1, 100) as libc::c_int,
    )?;
    set(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, dead_ms)
}

/// Key exchange over `stream`; returns the session, its socket and the host key.
pub(super) fn handshake(
    stream: Stream,
    node: &Node,
    config: &SshConfig,
    known_hosts: &KnownHosts,
) -> Result<(ssh2::Session, RawFd, HostKey), TransportError> {
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
    // Sent from `exec`'s wait loop when due, and answered by sshd. Configured only after
    // the key exchange: set before it, libssh2 fails the exchange.
    session.set_keepalive(
        true,
        config.keepalive_interval.as_secs().clamp(1, 3600) as u32,
    );
    let key = session
        .host_key()
        .and_then(|(blob, _)| {
            Some(HostKey {
                kind: key_type(blob)?,
                blob: blob.to_vec(),
            })
        })
        .ok_or_else(|| unreachable(node, "the server presented no usable host key".into()))?;
    Ok((session, fd, key))
}

/// Refuses a key that is not pinned for `node`'s address and port.
pub(super) fn verify(
    node: &Node,
    key: &HostKey,
    known_hosts: &KnownHosts,
) -> Result<(), TransportError> {
    let host = host_name(&node.address, node.port);
    let seen = format!("{} {}", key.kind, key.fingerprint());
    let file = known_hosts.path().display();
    let reason = match known_hosts.check(&node.address, node.port, key) {
        Verdict::Trusted => return Ok(()),
        Verdict::Unknown => format!(
            "`{host}` presented {seen}, which is not in `{file}`; check it and pin it with \
             `tandem trust {}`",
            node.name
        ),
        Verdict::Changed { pinned } => format!(
            "HOST KEY CHANGED: `{host}` presented {seen} but `{file}` pins {}; someone may \
             be intercepting the connection, or the node was rebuilt",
            pinned.join(", ")
        ),
        Verdict::Revoked => format!("`{host}` presented {seen}, which `{file}` marks revoked"),
    };
    Err(TransportError::HostKey {
        node: node.name.clone(),
        reason,
    })
}

/// Public key authentication with the identity file, else with ssh-agent's keys.
pub(super) fn authenticate(
    session: &ssh2::Session,
    node: &Node,
    config: &SshConfig,
) -> Result<(), TransportError> {
    let user = node.user.as_deref().unwrap_or(&config.user);
    let auth_error = |reason: String| TransportError::Auth {
        node: node.name.clone(),
        reason,
    };
    match &config.identity {
        Some(identity) => session
            .userauth_pubkey_file(user, None, identity, None)
            .map_err(|err| format!("key `{}` for user `{user}`: {err}", identity.display())),
        None => session
            .userauth_agent(user)
            .map_err(|err| format!("ssh-agent keys for user `{user}`: {err}")),
    }
    .map_err(auth_error)?;
    if !session.authenticated() {
        return Err(auth_error(format!("user `{user}` was not accepted")));
    }
    Ok(())
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
