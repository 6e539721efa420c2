//! Progress of a multi-node run on stderr: one status line redrawn in place on a
//! terminal, plain lines otherwise (logs, CI), nothing when quiet (tests, JSON output).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub enum Progress {
    #[default]
    Quiet,
    /// Report to stderr; `done` counts finished nodes across clones.
    Stderr { live: bool, done: Arc<AtomicUsize> },
}

impl Progress {
    /// Live on a terminal, plain lines otherwise.
    pub fn stderr() -> Progress {
        Progress::Stderr {
            live: std::io::stderr().is_terminal(),
            done: Arc::default(),
        }
    }

    pub fn node_done(&self, label: String, total: usize) {
        if let Progress::Stderr { live, done } = self {
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            let mut err = std::io::stderr().lock();
            let _ = if *live {
                write!(err, "\r\x1b[2K[{n}/{total}] {label}")
            } else {
                writeln!(err, "[{n}/{total}] {label}")
            };
            let _ = err.flush();
        }
    }

    pub fn finish(&self) {
        if let Progress::Stderr { live: true, done } = self {
            if done.load(Ordering::Relaxed) > 0 {
                eprintln!();
            }
        }
    }
}
