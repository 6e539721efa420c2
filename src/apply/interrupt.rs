//! Interrupting an apply. The first SIGINT or SIGTERM asks the run to stop: nodes whose
//! apply has started run to the end (their remote script finishes, so no file is left
//! half-written), no new node or batch starts, and the run is recorded as interrupted
//! with a summary. A second signal exits at once with status 130; even then nothing is
//! half-written on a node, because every file is staged and renamed into place by the
//! remote script, which runs in its own process group (local transport) or on the node
//! (SSH) and is not killed by the signal.
//!
//! [`Interrupt`] is the flag the executor and the rollout loop read. The CLI connects it
//! to the signals with [`Interrupt::on_signals`]; tests request it directly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A shared "stop starting new work" flag. Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    requests: Arc<AtomicUsize>,
}

impl Interrupt {
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Asks the run to stop starting new work; returns how many times it was asked.
    pub fn request(&self) -> usize {
        self.requests.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn is_requested(&self) -> bool {
        self.requests.load(Ordering::SeqCst) > 0
    }

    /// Connects SIGINT and SIGTERM to this flag for the life of the process: the first
    /// signal requests a stop (and says so on stderr), a second one exits with 130.
    /// Must be called from within a tokio runtime.
    pub fn on_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let flag = self.clone();
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    got = int.recv() => got.map(|()| "SIGINT"),
                    got = term.recv() => got.map(|()| "SIGTERM"),
                };
                let Some(name) = name else { return };
                if flag.request() == 1 {
                    eprintln!(
                        "\n{name}: stopping: nodes in flight finish their changes, no new node starts (again to exit at once)"
                    );
                } else {
                    eprintln!(
                        "\n{name} again: exiting now; scripts already running on nodes finish on their own, the run shows as interrupted"
                    );
                    std::process::exit(130);
                }
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag_and_count_requests() {
        let a = Interrupt::new();
        let b = a.clone();
        assert!(!b.is_requested());
        assert_eq!(a.request(), 1);
        assert!(b.is_requested());
        assert_eq!(b.request(), 2);
    }
}
