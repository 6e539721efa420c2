//! One remote command on one channel, run on a blocking thread. stdin is written while
//! stdout and stderr are read (the session in non-blocking mode, waiting on the socket
//! with `poll`), so megabytes of input cannot deadlock against a full output window.
//!
//! The command runs under `timeout -s KILL` in its own process group, so when it
//! outlives its time the node kills it and everything it started; locally, the channel
//! is given up a little later in case the node itself stopped answering. Nodes need a
//! POSIX login shell for the user and coreutils' `timeout` (the specification's
//! "POSIX shell and coreutils").

use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Connection;
use crate::node::NodeName;
use crate::transport::quote::quote_str;
use crate::transport::{Output, TransportError};

/// How long past its timeout a command may take to be reported killed by the node
/// before the channel is abandoned locally.
pub(super) const GRACE: Duration = Duration::from_secs(2);
/// Bytes of stdin offered per write.
const CHUNK: usize = 64 * 1024;
/// libssh2's "would block" code.
const EAGAIN: i32 = -37;
/// libssh2's code for a blocking call that outlived the session timeout.
const TIMED_OUT: i32 = -9;

/// Restores blocking mode whatever way the command ends, once the channel is dropped.
struct Blocking<'a>(&'a ssh2::Session);

impl Drop for Blocking<'_> {
    fn drop(&mut self) {
        self.0.set_blocking(true);
    }
}

/// The command line sent: `command` under `sh -c`, in a process group that `timeout`
/// kills (GNU `timeout` signals its whole group unless `--foreground`).
fn wrap(command: &str, timeout: Duration) -> String {
    // `timeout 0` would mean "no timeout"; a millisecond is the floor.
    let seconds = timeout.as_secs_f64().max(0.001);
    format!(
        "exec timeout -s KILL {seconds:.3} sh -c {}",
        quote_str(command)
    )
}

/// The connection failed before a channel was open, so before the command was sent.
fn not_sent(node: &NodeName, err: &ssh2::Error, blocking: Duration) -> TransportError {
    let reason = match err.code() {
        ssh2::ErrorCode::Session(TIMED_OUT) => {
            format!("cannot open a channel: no answer from the node for {blocking:?}")
        }
        _ => format!("cannot open a channel: {err}"),
    };
    TransportError::NotSent {
        node: node.clone(),
        reason,
    }
}

/// A short form of the command for error messages (commands carry no secrets).
fn describe(command: &str) -> String {
    const MAX: usize = 80;
    match command.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &command[..end]),
        None => command.to_string(),
    }
}

fn would_block(err: &ssh2::Error) -> bool {
    err.code() == ssh2::ErrorCode::Session(EAGAIN)
}

/// What bounds one command: its own timeout, the silence after which the connection
/// counts as lost, and the flag that says nobody waits for the result any more.
#[derive(Clone)]
pub(super) struct Limits {
    pub timeout: Duration,
    pub dead_after: Duration,
    pub cancel: Arc<AtomicBool>,
}

/// A command whose channel is open: started, perhaps held waiting for more input.
pub(super) struct Running {
    channel: ssh2::Channel,
    started: Instant,
    timeout: Duration,
    what: String,
}

impl Running {
    /// When the command's time is up locally: its timeout on the node, and the grace
    /// for the node to report the kill.
    fn deadline(&self) -> Instant {
        self.started + self.timeout + GRACE
    }

    fn timed_out(&self, node: &NodeName) -> TransportError {
        TransportError::Timeout {
            node: node.clone(),
            what: self.what.clone(),
            after: self.started.elapsed(),
        }
    }
}

fn lost(node: &NodeName, what: &str, err: &dyn std::fmt::Display) -> TransportError {
    TransportError::Lost {
        node: node.clone(),
        reason: format!("{what}: {err}"),
    }
}

/// What a held command did by the time [`hold`] returned.
pub(super) enum Held {
    /// It printed the marker and waits for more input ([`resume`]).
    Waiting(Running, Output),
    /// It exited before printing the marker: its whole output.
    Exited(Output),
}

pub(super) fn run(
    connection: &Connection,
    node: &NodeName,
    command: &str,
    stdin: &[u8],
    limits: &Limits,
) -> Result<Output, TransportError> {
    let _restore = Blocking(&connection.session);
    let mut running = start(connection, node, command, limits)?;
    let mut out = (Vec::new(), Vec::new());
    pump(
        connection,
        node,
        &mut running,
        stdin,
        None,
        limits,
        &mut out,
    )?;
    finish(connection, node, running, limits, out)
}

/// Starts `command`, feeds it `stdin` without closing its input, and reads its output
/// until stdout holds `until` (included in the output returned) or the command exits.
/// Bounded by `limits.timeout` for this part; the command's own timeout on the node is
/// `whole`, which [`resume`] then works within.
pub(super) fn hold(
    connection: &Connection,
    node: &NodeName,
    command: &str,
    stdin: &[u8],
    until: &[u8],
    whole: Duration,
    limits: &Limits,
) -> Result<Held, TransportError> {
    let _restore = Blocking(&connection.session);
    let mut running = start(
        connection,
        node,
        command,
        &Limits {
            timeout: whole,
            ..limits.clone()
        },
    )?;
    let mut out = (Vec::new(), Vec::new());
    let first = Instant::now() + limits.timeout;
    let marked = pump(
        connection,
        node,
        &mut running,
        stdin,
        Some((until, first)),
        limits,
        &mut out,
    )?;
    if marked {
        let (stdout, stderr) = out;
        return Ok(Held::Waiting(
            running,
            Output {
                status: None,
                stdout,
                stderr,
            },
        ));
    }
    finish(connection, node, running, limits, out).map(Held::Exited)
}

/// The held command's second half: feeds it `stdin`, closes its input and reads the
/// rest of its output (only what follows the marker) to its exit, within `limits.timeout`
/// from now and the command's own timeout.
pub(super) fn resume(
    connection: &Connection,
    node: &NodeName,
    mut running: Running,
    stdin: &[u8],
    limits: &Limits,
) -> Result<Output, TransportError> {
    let _restore = Blocking(&connection.session);
    let mut out = (Vec::new(), Vec::new());
    let by = Instant::now() + limits.timeout;
    pump(
        connection,
        node,
        &mut running,
        stdin,
        Some((&[], by)),
        limits,
        &mut out,
    )?;
    finish(connection, node, running, limits, out)
}

/// Opens a channel and starts `command` on it (blocking, bounded by the command's time
/// and by the silence that counts as a dead connection: a live node answers at once).
/// The caller holds a [`Blocking`] guard declared before the channel, so that it drops
/// after it: a channel given up on a silent peer is then freed without blocking
/// (libssh2 would wait for the peer's close, up to the session timeout).
fn start(
    connection: &Connection,
    node: &NodeName,
    command: &str,
    limits: &Limits,
) -> Result<Running, TransportError> {
    let timeout = limits.timeout;
    let started = Instant::now();
    let session = &connection.session;
    let lost = |what: &str, err: &dyn std::fmt::Display| lost(node, what, err);
    let timed_out = || TransportError::Timeout {
        node: node.clone(),
        what: describe(command),
        after: started.elapsed(),
    };
    session.set_blocking(true);
    let blocking = (timeout + GRACE).min(limits.dead_after);
    session.set_timeout(blocking.as_millis().min(u32::MAX as u128) as u32);
    // Whichever bound fired names the error: the command's own time, or the silence
    // that counts as a dead connection.
    let silent = |what: &str| {
        if blocking < limits.dead_after {
            timed_out()
        } else {
            TransportError::Lost {
                node: node.clone(),
                reason: format!("{what}: no answer from the node for {blocking:?}"),
            }
        }
    };
    // No channel means no command: whatever failed here, nothing ran on the node.
    let mut channel = session.channel_session().map_err(|err| match err.code() {
        ssh2::ErrorCode::Session(TIMED_OUT) if blocking < limits.dead_after => timed_out(),
        _ => not_sent(node, &err, blocking),
    })?;
    channel
        .exec(&wrap(command, timeout))
        .map_err(|err| match err.code() {
            ssh2::ErrorCode::Session(TIMED_OUT) => silent("cannot start the command"),
            _ => lost("cannot start the command", &err),
        })?;
    Ok(Running {
        channel,
        started,
        timeout,
        what: describe(command),
    })
}

/// Writes `stdin` while reading stdout and stderr into `out`. With `hold`, `(marker,
/// by)`: the input is left open, and reading stops once stdout holds the marker (an
/// empty marker: once `stdin` is written and the input closed, read on to the end);
/// `by` bounds this part locally. Without it the input is closed after `stdin`.
/// Returns whether the marker was seen (`false`: the command's output ended).
fn pump(
    connection: &Connection,
    node: &NodeName,
    running: &mut Running,
    stdin: &[u8],
    hold: Option<(&[u8], Instant)>,
    limits: &Limits,
    out: &mut (Vec<u8>, Vec<u8>),
) -> Result<bool, TransportError> {
    let deadline = running.deadline();
    let local = hold.map_or(deadline, |(_, by)| by.min(deadline));
    let marker = hold.map(|(m, _)| m).filter(|m| !m.is_empty());
    let lost = |what: &str, err: &dyn std::fmt::Display| lost(node, what, err);
    let channel = &mut running.channel;
    connection.session.set_blocking(false);
    let mut written = 0;
    let mut eof_sent = marker.is_some();
    let mut searched = out.0.len();
    let mut marked = false;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let mut progressed = false;
        if written < stdin.len() {
            let end = stdin.len().min(written + CHUNK);
            match channel.write(&stdin[written..end]) {
                Ok(n) => {
                    written += n;
                    progressed |= n > 0;
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                // The command exited without reading all of its input; the exit
                // status tells the rest.
                Err(_) => written = stdin.len(),
            }
        } else if !eof_sent {
            match channel.send_eof() {
                Ok(()) => {
                    eof_sent = true;
                    progressed = true;
                }
                Err(err) if would_block(&err) => {}
                Err(_) => eof_sent = true,
            }
        }
        for (stream, sink) in [
            (channel.stream(0), &mut out.0),
            (channel.stderr(), &mut out.1),
        ] {
            let mut stream = stream;
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        sink.extend_from_slice(&buf[..n]);
                        progressed = true;
                    }
                    Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                    Err(err) => return Err(lost("reading output", &err)),
                }
            }
        }
        if let Some(marker) = marker {
            let from = searched.saturating_sub(marker.len());
            marked |= out.0[from..].windows(marker.len()).any(|w| w == marker);
            searched = out.0.len();
            // All of stdin goes in first: what follows it belongs to the resumption.
            if marked && written >= stdin.len() {
                return Ok(true);
            }
        }
        if channel.eof() {
            return Ok(false);
        }
        let stdin_done = written >= stdin.len() && eof_sent;
        check_alive(connection, limits, stdin_done).map_err(|reason| TransportError::Lost {
            node: node.clone(),
            reason,
        })?;
        if Instant::now() >= local {
            // The node did not end it in time: give up the channel locally.
            let _ = channel.close();
            return Err(running.timed_out(node));
        }
        if !progressed {
            wait(connection, local).map_err(|err| lost("waiting on the socket", &err))?;
        }
    }
}

/// Waits for the channel to close and reads the exit status.
fn finish(
    connection: &Connection,
    node: &NodeName,
    mut running: Running,
    limits: &Limits,
    out: (Vec<u8>, Vec<u8>),
) -> Result<Output, TransportError> {
    let deadline = running.deadline();
    let lost = |what: &str, err: &dyn std::fmt::Display| lost(node, what, err);
    loop {
        match running.channel.wait_close() {
            Ok(()) => break,
            Err(err) if would_block(&err) => {
                check_alive(connection, limits, true).map_err(|reason| TransportError::Lost {
                    node: node.clone(),
                    reason,
                })?;
                if Instant::now() >= deadline {
                    return Err(running.timed_out(node));
                }
                wait(connection, deadline).map_err(|err| lost("waiting on the socket", &err))?;
            }
            Err(err) => return Err(lost("closing the channel", &err)),
        }
    }
    let channel = &running.channel;
    let signal = channel.exit_signal().ok().and_then(|s| s.exit_signal);
    let status = match signal {
        Some(_) => None,
        None => Some(
            channel
                .exit_status()
                .map_err(|err| lost("reading the exit status", &err))?,
        ),
    };
    // `timeout -s KILL` dies with its group (signal) or reports 137; either way, past
    // the timeout it was the timeout that ended the command.
    let killed = signal.as_deref() == Some("KILL") || status == Some(137) || status == Some(124);
    if killed && running.started.elapsed() >= running.timeout {
        return Err(running.timed_out(node));
    }
    let (stdout, stderr) = out;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Between polls: fails when nobody waits for the result any more, or when the node has
/// been silent for `dead_after`; and sends an SSH keepalive when one is due.
///
/// Silence is the kernel's: the time since the socket last received anything, data or
/// a bare ACK. TCP keepalive probes (set up by `connect`) make a live peer ACK at least
/// every keepalive interval even when nothing else moves (a step that runs for minutes
/// with its output going to a file, stdin waiting for the node to read it), so a live
/// node is never silent for long and a partitioned one is noticed after `dead_after`.
/// The SSH keepalive (answered by sshd itself) is sent only once all of stdin is handed
/// over and libssh2 has nothing half-sent: libssh2 keeps a keepalive that met a full
/// socket as its pending packet and refuses every other packet until the same call
/// flushes it, which would stall stdin for a keepalive interval each time.
fn check_alive(connection: &Connection, limits: &Limits, stdin_done: bool) -> Result<(), String> {
    if limits.cancel.load(Ordering::SeqCst) {
        return Err("abandoned: the run stopped waiting for the node".into());
    }
    let pending = matches!(
        connection.session.block_directions(),
        ssh2::BlockDirections::Outbound | ssh2::BlockDirections::Both
    );
    if stdin_done && !pending {
        if let Err(err) = connection.session.keepalive_send() {
            if !would_block(&err) {
                return Err(format!("sending a keepalive: {err}"));
            }
        }
    }
    match silent_for(connection.fd) {
        Some(silence) if silence >= limits.dead_after => Err(format!(
            "no answer from the node for {silence:.0?} (keepalives unanswered)"
        )),
        _ => Ok(()),
    }
}

/// An idle connection's keepalive: sends an SSH keepalive when one is due (sshd answers
/// it, which the kernel sees as traffic) and fails when the node closed the connection
/// or stayed silent for `dead_after`. Never blocks.
pub(super) fn keepalive(connection: &Connection, dead_after: Duration) -> Result<(), String> {
    let session = &connection.session;
    let _restore = Blocking(session);
    session.set_blocking(false);
    if let Err(err) = session.keepalive_send() {
        if !would_block(&err) {
            return Err(format!("sending a keepalive: {err}"));
        }
    }
    let mut fd = libc::pollfd {
        fd: connection.fd,
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call; the fd belongs to the
    // session, which outlives this function.
    let rc = unsafe { libc::poll(&mut fd, 1, 0) };
    if rc > 0 && fd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0 {
        return Err("the node closed the connection".into());
    }
    match silent_for(connection.fd) {
        Some(silence) if silence >= dead_after => Err(format!(
            "no answer from the node for {silence:.0?} (keepalives unanswered)"
        )),
        _ => Ok(()),
    }
}

/// How long since the socket last received anything (data or ACK), from the kernel's
/// TCP state; `None` where the socket is not TCP (a tunnel through a bastion: the
/// bastion's own connection is then what the kernel watches).
fn silent_for(fd: std::os::fd::RawFd) -> Option<Duration> {
    // SAFETY: `info` is a plain C struct the kernel fills up to `len` bytes; `fd` is the
    // session's socket, open for as long as the connection is.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    let last = info.tcpi_last_data_recv.min(info.tcpi_last_ack_recv);
    (rc == 0).then(|| Duration::from_millis(u64::from(last)))
}

/// Waits until the socket is ready in the direction libssh2 is blocked on, or a short
/// while, never past `deadline`.
fn wait(connection: &Connection, deadline: Instant) -> std::io::Result<()> {
    let directions = connection.session.block_directions();
    let mut events = libc::POLLIN;
    if matches!(
        directions,
        ssh2::BlockDirections::Outbound | ssh2::BlockDirections::Both
    ) {
        events |= libc::POLLOUT;
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let millis = left.min(Duration::from_millis(100)).as_millis() as libc::c_int;
    let mut fd = libc::pollfd {
        fd: connection.fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call; the fd belongs to the
    // session, which outlives this function.
    let rc = unsafe { libc::poll(&mut fd, 1, millis) };
    if rc < 0 {
        let err = std::io::Error::last_os_error();
        if err.kind() != ErrorKind::Interrupted {
            return Err(err);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_runs_quoted_under_timeout() {
        assert_eq!(
            wrap("echo 'a'", Duration::from_millis(1500)),
            r"exec timeout -s KILL 1.500 sh -c 'echo '\''a'\'''"
        );
        assert!(wrap("x", Duration::ZERO).contains(" 0.001 "));
    }

    #[test]
    fn silence_is_read_from_the_kernels_tcp_state() {
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server.write_all(b"x").unwrap();
        let mut byte = [0u8; 1];
        client.read_exact(&mut byte).unwrap();
        let silence = silent_for(client.as_raw_fd()).expect("a TCP socket has TCP state");
        assert!(silence < Duration::from_secs(5), "{silence:?}");
        // Not TCP (a tunnel's end): no reading, so no verdict.
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(silent_for(a.as_raw_fd()), None);
    }

    #[test]
    fn long_commands_are_shortened() {
        assert_eq!(describe("true"), "true");
        assert_eq!(describe(&"x".repeat(200)).chars().count(), 81);
    }
}
