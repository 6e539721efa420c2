//! The local transport: runs "remote" commands on this machine with `sh -c`. It is what
//! tests and single-machine setups use, and the reference for what a `Session` must do:
//! feed stdin, capture both streams, and on timeout kill the whole process group so no
//! grandchild outlives the command.

use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;

use crate::node::{Node, NodeName};
use crate::transport::{Connector, Output, Session, TransportError};

/// Connects every node to this machine. Only for tests and explicit local use: the node's
/// address is ignored.
#[derive(Debug, Clone, Default)]
pub struct LocalConnector;

#[async_trait]
impl Connector for LocalConnector {
    async fn connect(&self, node: &Node) -> Result<Box<dyn Session>, TransportError> {
        Ok(Box::new(LocalSession::new(node.name.clone())))
    }
}

/// One "connection" to this machine.
#[derive(Debug)]
pub struct LocalSession {
    node: NodeName,
    round_trips: u32,
    held: Option<Held>,
}

/// A command started by `hold`: its input still open, waiting for `resume`.
#[derive(Debug)]
struct Held {
    child: Child,
    input: ChildStdin,
    stdout: ChildStdout,
    stderr: tokio::task::JoinHandle<Vec<u8>>,
    /// When the command's own time (`whole`) is up.
    ends: Instant,
    what: String,
}

impl LocalSession {
    pub fn new(node: NodeName) -> Self {
        LocalSession {
            node,
            round_trips: 0,
            held: None,
        }
    }

    fn timed_out(&self, child: &Child, what: &str, after: Duration) -> TransportError {
        if let Some(pid) = child.id() {
            kill_group(pid);
        }
        TransportError::Timeout {
            node: self.node.clone(),
            what: what.to_string(),
            after,
        }
    }

    /// `command` under `sh -c`, its three streams piped, in its own process group so
    /// that a timeout can kill everything it started.
    fn spawn(&self, command: &str) -> Result<Child, TransportError> {
        Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| self.lost(format_args!("cannot start `/bin/sh`: {err}")))
    }

    /// An earlier held command ends with nothing more to do (its input closed).
    async fn release(&mut self) {
        if let Some(held) = self.held.take() {
            drop(held.input);
            let _ = self
                .finish(held.child, held.stdout, Vec::new(), held.stderr)
                .await;
        }
    }

    /// Reads `stdout` to its end, then the exit status and stderr.
    async fn finish(
        &self,
        mut child: Child,
        mut stdout: ChildStdout,
        mut out: Vec<u8>,
        stderr: tokio::task::JoinHandle<Vec<u8>>,
    ) -> Result<Output, TransportError> {
        stdout
            .read_to_end(&mut out)
            .await
            .map_err(|err| self.lost(err))?;
        let status = child.wait().await.map_err(|err| self.lost(err))?;
        let stderr = stderr.await.unwrap_or_default();
        Ok(Output {
            status: status.code(),
            stdout: out,
            stderr,
        })
    }

    fn lost(&self, reason: impl std::fmt::Display) -> TransportError {
        TransportError::Lost {
            node: self.node.clone(),
            reason: reason.to_string(),
        }
    }
}

#[async_trait]
impl Session for LocalSession {
    async fn exec(
        &mut self,
        command: &str,
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<Output, TransportError> {
        self.release().await;
        self.round_trips += 1;
        // As over SSH, so that both transports run the same bytes the same way.
        let (command, stdin) = super::ship_command(command, stdin);
        let (command, stdin) = (command.as_ref(), stdin.as_ref());
        let mut child = self.spawn(command)?;
        let pid = child.id();
        let mut input = child.stdin.take();
        let data = stdin.to_vec();
        // Feed stdin concurrently with reading the output, so neither pipe can fill up
        // and deadlock. A command that does not read all its stdin is not an error.
        let feeder = tokio::spawn(async move {
            if let Some(pipe) = input.as_mut() {
                let _ = pipe.write_all(&data).await;
                let _ = pipe.shutdown().await;
            }
            drop(input);
        });
        let waited = tokio::time::timeout(timeout, child.wait_with_output()).await;
        feeder.abort();
        match waited {
            Ok(Ok(out)) => Ok(Output {
                status: out.status.code(),
                stdout: out.stdout,
                stderr: out.stderr,
            }),
            Ok(Err(err)) => Err(self.lost(err)),
            Err(_) => {
                if let Some(pid) = pid {
                    kill_group(pid);
                }
                Err(TransportError::Timeout {
                    node: self.node.clone(),
                    what: summary(command),
                    after: timeout,
                })
            }
        }
    }

    async fn hold(
        &mut self,
        command: &str,
        stdin: &[u8],
        until: &[u8],
        timeout: Duration,
        whole: Duration,
    ) -> Result<Option<Output>, TransportError> {
        self.release().await;
        self.round_trips += 1;
        let what = summary(command);
        let (command, stdin) = super::ship_command(command, stdin);
        let mut child = self.spawn(&command)?;
        let ends = Instant::now() + whole;
        let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (Some(mut input), Some(mut stdout), Some(mut err_pipe)) = pipes else {
            return Err(self.lost("the command's pipes were not set up"));
        };
        let stderr = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = err_pipe.read_to_end(&mut buf).await;
            buf
        });
        // Fed while stdout is read; the pipe comes back for `resume`.
        let data = stdin.to_vec();
        let feeder = tokio::spawn(async move {
            let written = input.write_all(&data).await;
            (input, written)
        });
        let mut out = Vec::new();
        let marked = tokio::time::timeout(timeout, async {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                let n = stdout.read(&mut buf).await?;
                if n == 0 {
                    return Ok::<bool, std::io::Error>(false);
                }
                let from = out.len().saturating_sub(until.len());
                out.extend_from_slice(&buf[..n]);
                if out[from..].windows(until.len()).any(|w| w == until) {
                    return Ok(true);
                }
            }
        })
        .await;
        let marked = match marked {
            Ok(Ok(marked)) => marked,
            Ok(Err(err)) => return Err(self.lost(err)),
            Err(_) => return Err(self.timed_out(&child, &what, timeout)),
        };
        if !marked {
            feeder.abort();
            return self.finish(child, stdout, out, stderr).await.map(Some);
        }
        // The marker is out; the command reads on, so the rest of stdin goes in.
        let (input, _) = match tokio::time::timeout(timeout, feeder).await {
            Ok(Ok(fed)) => fed,
            Ok(Err(err)) => return Err(self.lost(err)),
            Err(_) => return Err(self.timed_out(&child, &what, timeout)),
        };
        self.held = Some(Held {
            child,
            input,
            stdout,
            stderr,
            ends,
            what,
        });
        Ok(Some(Output {
            status: None,
            stdout: out,
            stderr: Vec::new(),
        }))
    }

    async fn resume(&mut self, stdin: &[u8], timeout: Duration) -> Result<Output, TransportError> {
        let Some(held) = self.held.take() else {
            return Err(super::not_held(&self.node));
        };
        let Held {
            child,
            mut input,
            stdout,
            stderr,
            ends,
            what,
            ..
        } = held;
        let data = stdin.to_vec();
        let feeder = tokio::spawn(async move {
            let _ = input.write_all(&data).await;
            let _ = input.shutdown().await;
        });
        let by = ends.min(Instant::now() + timeout);
        let started = std::time::Instant::now();
        let pid = child.id();
        let result =
            tokio::time::timeout_at(by, self.finish(child, stdout, Vec::new(), stderr)).await;
        feeder.abort();
        match result {
            Ok(result) => result,
            Err(_) => {
                if let Some(pid) = pid {
                    kill_group(pid);
                }
                Err(TransportError::Timeout {
                    node: self.node.clone(),
                    what,
                    after: started.elapsed(),
                })
            }
        }
    }

    fn holding(&self) -> bool {
        self.held.is_some()
    }

    fn round_trips(&self) -> u32 {
        self.round_trips
    }
}

/// Kills process group `pid` (the child made itself its leader). Through `kill(1)`
/// because the crate carries no libc binding; failure means the group is already gone.
fn kill_group(pid: u32) {
    let _ = std::process::Command::new("kill")
        .arg("-KILL")
        .arg("--")
        .arg(format!("-{pid}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The first line of a command, shortened: enough to recognise it in an error without
/// dumping a whole generated script.
pub(crate) fn summary(command: &str) -> String {
    let first = command.lines().next().unwrap_or("");
    if first.len() > 60 || command.contains('\n') {
        let cut: String = first.chars().take(60).collect();
        format!("{cut}...")
    } else {
        first.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn feeds_stdin_and_captures_streams() {
        let mut s = LocalSession::new(NodeName::new("local").unwrap());
        let out = s
            .exec(
                "cat; echo err >&2; exit 3",
                b"hello",
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(out.stdout, b"hello");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status, Some(3));
        assert_eq!(s.round_trips(), 1);
    }

    #[tokio::test]
    async fn a_held_command_takes_its_second_input_and_ends_when_released() {
        let mut s = LocalSession::new(NodeName::new("local").unwrap());
        let t = Duration::from_secs(10);
        let cmd = "head -c 3; printf '\nHELD\n'; cat; echo err >&2; exit 4";
        let first = s.hold(cmd, b"abc", b"HELD\n", t, t).await.unwrap().unwrap();
        assert_eq!(first.stdout, b"abc\nHELD\n");
        assert!(s.holding());
        let rest = s.resume(b"def", t).await.unwrap();
        assert_eq!(
            (rest.status, rest.stdout.as_slice()),
            (Some(4), &b"def"[..])
        );
        assert_eq!(rest.stderr, b"err\n");
        assert!(!s.holding());
        // Released with nothing: the command sees its input end.
        let cmd = "printf 'HELD\n'; if read -r l; then exit 0; else exit 7; fi";
        s.hold(cmd, b"", b"HELD\n", t, t).await.unwrap().unwrap();
        assert_eq!(s.resume(b"", t).await.unwrap().status, Some(7));
        // An exec while a command is held ends that command first.
        s.hold("printf 'HELD\n'; cat", b"", b"HELD\n", t, t)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.exec("echo next", b"", t).await.unwrap().stdout, b"next\n");
        assert_eq!(s.round_trips(), 4);
    }

    #[tokio::test]
    async fn timeout_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        let mut s = LocalSession::new(NodeName::new("local").unwrap());
        let cmd = format!("(sleep 1; touch {}) & sleep 5", marker.display());
        let started = std::time::Instant::now();
        let err = s
            .exec(&cmd, b"", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert!(!marker.exists(), "a grandchild outlived the timeout");
    }
}
