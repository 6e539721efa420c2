//! The settling probe held open: one command per changing node for probe and apply.
//!
//! Every apply probes all its nodes before it changes any (the epoch guard must see
//! every node first, `crate::epoch`), so a changing node's apply cannot start in the
//! same message as its probe: its facts must come back, and the guard must pass, first.
//! What it need not cost is a second command. The settling probe of an apply ends with
//! a small reader: it prints a marker once the facts are out and waits, reading its
//! input, for `go` and the apply script, which it then runs in the same shell
//! (`Session::hold`, `Session::resume`). A node with nothing to do, or outside the
//! rollout's first batch, or in a run the guard refuses, gets its input closed instead
//! and ends having changed nothing. A transport that cannot hold a command (none today
//! but test wrappers) runs the two halves as two commands, as before.
//!
//! What is saved on each changing node of the first batch: an SSH channel (open and
//! exec requests, each a round trip on a real network) and the node's login shell,
//! `timeout` and `sh` for the second command. The apply's data is sent once the plan
//! is made, and only what differs, as before; the saved plan's check, made between the
//! probe and the script, is unchanged.

use std::time::{Duration, Instant};

use crate::fact::Token;
use crate::transport::quote::quote_str;
use crate::transport::Session;

/// How long a held command gets to end once its input is closed with nothing to do.
const RELEASE: Duration = Duration::from_secs(10);

/// A settling probe's command still open on its node: the facts are read, and it
/// waits for [`HeldProbe::go`] or [`HeldProbe::release`].
pub struct HeldProbe {
    pub(super) session: Box<dyn Session>,
    pub(super) go: Token,
    /// When the node's own `timeout` ends the command.
    pub(super) ends: Instant,
}

impl std::fmt::Debug for HeldProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldProbe")
            .field("ends", &self.ends)
            .finish_non_exhaustive()
    }
}

/// The command's time on the node: the probe's, and then a whole apply's (command
/// timeout and lock wait) after up to one more command timeout spent waiting for the
/// other nodes' probes.
pub(super) fn whole(command_timeout: Duration, lock_wait: Duration) -> Duration {
    command_timeout * 2 + lock_wait
}

/// The shell that follows the probe: print the marker, skip whatever of the probe's
/// input it left unread (secret-bearing content in sync is not read), up to the `go`
/// line; then read the script's length and the script, and run it in this shell. Input
/// closed before `go`: end, having done nothing more. Builtins only, but for the one
/// `head` that reads the script (which reads no further than its length).
pub(super) fn reader(go: &Token) -> String {
    let line = quote_str(&format!("{} go", go.as_str()));
    format!(
        "printf '\\n%s held\\n' {go}\n\
         tandem_go=\n\
         while IFS= read -r tandem_l; do if [ \"$tandem_l\" = {line} ]; then tandem_go=1; break; fi; done\n\
         [ -n \"$tandem_go\" ] || exit 0\n\
         IFS= read -r tandem_n || exit 125\n\
         case $tandem_n in ''|*[!0-9]*) exit 125;; esac\n\
         tandem_c=$(head -c \"$tandem_n\" && echo x) || exit 125\n\
         eval \"${{tandem_c%x}}\"\n",
        go = quote_str(go.as_str()),
    )
}

/// What stdout holds once the probe is done and the reader waits.
pub(super) fn marker(go: &Token) -> Vec<u8> {
    format!("\n{} held\n", go.as_str()).into_bytes()
}

/// What to send a held shell so that it runs `command` with `stdin`.
pub(super) fn go(go: &Token, command: &str, stdin: &[u8]) -> Vec<u8> {
    let mut sent = format!("\n{} go\n{}\n", go.as_str(), command.len()).into_bytes();
    sent.reserve(command.len() + stdin.len());
    sent.extend_from_slice(command.as_bytes());
    sent.extend_from_slice(stdin);
    sent
}

impl HeldProbe {
    /// Whether the node's command has `needed` left to run an apply in.
    pub(super) fn has_left(&self, needed: Duration) -> bool {
        self.ends.saturating_duration_since(Instant::now()) >= needed
    }

    /// Closes the command's input: it ends having changed nothing, and the session is
    /// free for the node's next command. A session that cannot say so cleanly is given
    /// up (the pool does not keep a session still holding).
    pub async fn release(mut self) -> Box<dyn Session> {
        release(&mut *self.session).await;
        self.session
    }
}

/// [`HeldProbe::release`] for a session that may hold a command.
pub(super) async fn release(session: &mut dyn Session) {
    if session.holding() {
        let _ = session.resume(b"", RELEASE).await;
    }
}

/// Releases every held probe, all at once.
pub async fn release_all(held: impl IntoIterator<Item = HeldProbe>) {
    let mut set = tokio::task::JoinSet::new();
    for probe in held {
        set.spawn(async move { drop(probe.release().await) });
    }
    while set.join_next().await.is_some() {}
}
