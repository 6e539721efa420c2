//! The local transport: runs "remote" commands on this machine with `sh -c`. It is what
//! tests and single-machine setups use, and the reference for what a `Session` must do:
//! feed stdin, capture both streams, and on timeout kill the whole process group so no
//! grandchild outlives the command.

use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::node::{Node, NodeName};
use crate::transport::{Connector, Output, Session, TransportError};

/// Connects every node to this machine. Only for tests and explicit local use: the node's
/// address is ignored.
#[derive(Debug, Clone, Default)]
pub struct LocalConnector;

#[async_trait]
impl Connector for LocalConnector {
    async fn connect(&self, node: &Node) -> Result<Box<dyn Session>, TransportError> {
        Ok(Box::new(LocalSession {
            node: node.name.clone(),
            round_trips: 0,
        }))
    }
}

/// One "connection" to this machine.
#[derive(Debug)]
pub struct LocalSession {
    node: NodeName,
    round_trips: u32,
}

impl LocalSession {
    pub fn new(node: NodeName) -> Self {
        LocalSession {
            node,
            round_trips: 0,
        }
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
        self.round_trips += 1;
        // As over SSH, so that both transports run the same bytes the same way.
        let (command, stdin) = super::ship_command(command, stdin);
        let (command, stdin) = (command.as_ref(), stdin.as_ref());
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout can kill everything it started.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| self.lost(format_args!("cannot start `/bin/sh`: {err}")))?;
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
