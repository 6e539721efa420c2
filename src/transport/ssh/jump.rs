//! Reaching a node through a bastion: an authenticated session to the bastion (its
//! host key verified like any node's), a `direct-tcpip` channel from it to the node,
//! and a thread pumping bytes between that channel and one end of a socket pair. The
//! node's own session runs over the other end, so the node's host key is verified
//! end to end: the bastion only ever sees encrypted bytes.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::connect::{self, Stream};
use super::{JumpHost, SshConfig};
use crate::node::Node;
use crate::transport::known_hosts::{HostKey, KnownHosts};
use crate::transport::TransportError;

/// The pump thread; stopped and joined when dropped (it wakes at least every 100 ms).
pub(super) struct Tunnel {
    /// The bastion's verified key, checked again when a kept session is reused.
    pub(super) bastion_key: (String, u16, HostKey),
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Says that an error happened on the way through the bastion.
fn via_bastion(bastion: &JumpHost, err: TransportError) -> TransportError {
    let prefix = |reason: String| format!("via bastion `{}`: {reason}", bastion.address);
    match err {
        TransportError::Unreachable { node, reason } => TransportError::Unreachable {
            node,
            reason: prefix(reason),
        },
        TransportError::HostKey { node, reason } => TransportError::HostKey {
            node,
            reason: prefix(reason),
        },
        TransportError::Auth { node, reason } => TransportError::Auth {
            node,
            reason: prefix(reason),
        },
        TransportError::Lost { node, reason } => TransportError::Lost {
            node,
            reason: prefix(reason),
        },
        TransportError::NotSent { node, reason } => TransportError::NotSent {
            node,
            reason: prefix(reason),
        },
        timeout @ TransportError::Timeout { .. } => timeout,
    }
}

/// Opens the tunnel to `node` and returns the socket its session should run over.
pub(super) fn tunnel(
    bastion: &JumpHost,
    node: &Node,
    config: &SshConfig,
    known_hosts: &KnownHosts,
) -> Result<(UnixStream, Tunnel), TransportError> {
    // The bastion as a node: errors still name the node being reached.
    let hop = Node {
        address: bastion.address.clone(),
        port: bastion.port,
        user: Some(bastion.user.clone()),
        facts: Default::default(),
        vars: Default::default(),
        ..node.clone()
    };
    let wrap = |err| via_bastion(bastion, err);
    let stream = connect::tcp(&hop, config).map_err(wrap)?;
    let (session, fd, key) =
        connect::handshake(Stream::Tcp(stream), &hop, config, known_hosts).map_err(wrap)?;
    connect::verify(&hop, &key, known_hosts).map_err(wrap)?;
    connect::authenticate(&session, &hop, config).map_err(wrap)?;
    let channel = session
        .channel_direct_tcpip(&node.address, node.port, None)
        .map_err(|err| wrap(connect::unreachable(node, format!("cannot forward: {err}"))))?;
    let (ours, theirs) = UnixStream::pair()
        .map_err(|err| connect::unreachable(node, format!("cannot create a socket pair: {err}")))?;
    theirs
        .set_nonblocking(true)
        .map_err(|err| connect::unreachable(node, format!("socket pair: {err}")))?;
    let stop = Arc::new(AtomicBool::new(false));
    let pump = Pump {
        session,
        fd,
        channel,
        local: theirs,
        stop: stop.clone(),
    };
    let thread = std::thread::Builder::new()
        .name(format!("tandem-jump-{}", node.name))
        .spawn(move || pump.run())
        .map_err(|err| connect::unreachable(node, format!("cannot start a thread: {err}")))?;
    Ok((
        ours,
        Tunnel {
            bastion_key: (bastion.address.clone(), bastion.port, key),
            stop,
            thread: Some(thread),
        },
    ))
}

/// Bytes between the bastion's channel and our end of the socket pair, until either
/// side closes or the tunnel is dropped.
struct Pump {
    session: ssh2::Session,
    fd: RawFd,
    channel: ssh2::Channel,
    local: UnixStream,
    stop: Arc<AtomicBool>,
}

impl Pump {
    fn run(mut self) {
        self.session.set_blocking(false);
        let (mut up, mut down) = (Vec::new(), Vec::new());
        let mut buf = vec![0u8; 32 * 1024];
        while !self.stop.load(Ordering::Relaxed) {
            let mut progressed = false;
            if up.is_empty() {
                match self.local.read(&mut buf) {
                    // Our session is gone: tell the node, and stop.
                    Ok(0) => break,
                    Ok(n) => {
                        up.extend_from_slice(&buf[..n]);
                        progressed = true;
                    }
                    Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
            if !up.is_empty() {
                match self.channel.write(&up) {
                    Ok(n) => {
                        up.drain(..n);
                        progressed |= n > 0;
                    }
                    Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
            if down.is_empty() {
                match self.channel.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        down.extend_from_slice(&buf[..n]);
                        progressed = true;
                    }
                    Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
            if !down.is_empty() {
                match self.local.write(&down) {
                    Ok(n) => {
                        down.drain(..n);
                        progressed |= n > 0;
                    }
                    Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
            if !progressed {
                self.wait(!up.is_empty(), !down.is_empty());
            }
        }
        let _ = self.channel.send_eof();
        let _ = self.channel.close();
    }

    /// Sleeps until either socket may make progress, at most 100 ms.
    fn wait(&self, up_pending: bool, down_pending: bool) {
        let mut bastion = libc::POLLIN;
        if up_pending
            || matches!(
                self.session.block_directions(),
                ssh2::BlockDirections::Outbound | ssh2::BlockDirections::Both
            )
        {
            bastion |= libc::POLLOUT;
        }
        let mut local = 0;
        if !up_pending {
            local |= libc::POLLIN;
        }
        if down_pending {
            local |= libc::POLLOUT;
        }
        let mut fds = [
            libc::pollfd {
                fd: self.fd,
                events: bastion,
                revents: 0,
            },
            libc::pollfd {
                fd: self.local.as_raw_fd(),
                events: local,
                revents: 0,
            },
        ];
        let millis = Duration::from_millis(100).as_millis() as libc::c_int;
        // SAFETY: two valid pollfds for the duration of the call; both descriptors are
        // owned by this pump and outlive the call. Errors (EINTR) just retry the loop.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, millis) };
    }
}
