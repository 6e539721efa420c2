//! Interrupting an apply. The first SIGINT or SIGTERM asks the run to stop: nodes whose
//! apply has started get a grace period (30 s unless set) to run to the end (their remote
//! script finishes, so no file is left half-written), no new node or batch starts, and
//! the run is recorded as interrupted with a summary. A node still in flight when the
//! grace period ends is abandoned: the run stops waiting for it, records it as
//! `interrupted` (its state unknown) and ends; on the node, its script is killed by its
//! own timeout. A second signal exits at once with status 130; even then nothing is
//! half-written on a node, because every file is staged and renamed into place by the
//! remote script, which runs in its own process group (local transport) or on the node
//! (SSH) and is not killed by the signal.
//!
//! [`Interrupt`] is the flag the executor and the rollout loop read. The CLI connects it
//! to the signals with [`Interrupt::on_signals`]; tests request it directly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// How long in-flight nodes may go on after an interrupt, unless set otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// A shared "stop starting new work" flag. Clones share the flag.
#[derive(Debug, Clone)]
pub struct Interrupt {
    requests: Arc<AtomicUsize>,
    /// When the first request came; `None` until then.
    since: Arc<watch::Sender<Option<Instant>>>,
    grace: Duration,
}

impl Default for Interrupt {
    fn default() -> Self {
        Interrupt::with_grace(DEFAULT_GRACE)
    }
}

impl Interrupt {
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// A flag whose in-flight nodes are abandoned `grace` after the first request.
    pub fn with_grace(grace: Duration) -> Interrupt {
        Interrupt {
            requests: Arc::default(),
            since: Arc::new(watch::channel(None).0),
            grace,
        }
    }

    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Asks the run to stop starting new work; returns how many times it was asked.
    pub fn request(&self) -> usize {
        let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        self.since.send_if_modified(|since| {
            let first = since.is_none();
            since.get_or_insert_with(Instant::now);
            first
        });
        n
    }

    pub fn is_requested(&self) -> bool {
        self.requests.load(Ordering::SeqCst) > 0
    }

    /// Completes once the grace period after the first request is over (never, when
    /// no request comes): what an in-flight node's work races against.
    pub async fn grace_over(&self) {
        let mut since = self.since.subscribe();
        let Ok(at) = since.wait_for(Option::is_some).await.map(|v| *v) else {
            // The sender lives as long as `self`: unreachable, but waiting is the answer.
            return std::future::pending().await;
        };
        if let Some(at) = at {
            tokio::time::sleep_until(at + self.grace).await;
        }
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
                        "\n{name}: stopping: nodes in flight get {:?} to finish their changes, no new node starts (again to exit at once)",
                        flag.grace
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

    #[tokio::test]
    async fn the_grace_period_starts_at_the_first_request() {
        assert_eq!(Interrupt::new().grace(), DEFAULT_GRACE);
        let grace = Duration::from_millis(300);
        let flag = Interrupt::with_grace(grace);
        let unasked = tokio::time::timeout(grace * 2, flag.grace_over()).await;
        assert!(
            unasked.is_err(),
            "without a request the grace period never ends"
        );
        let asked = Instant::now();
        flag.request();
        flag.request();
        tokio::time::timeout(Duration::from_secs(10), flag.grace_over())
            .await
            .expect("the grace period ends after a request");
        let waited = asked.elapsed();
        assert!(
            waited >= grace && waited < grace + Duration::from_secs(5),
            "{waited:?}"
        );
    }
}
