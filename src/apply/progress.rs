//! Progress of a multi-node run on stderr. On a terminal, one live view (`indicatif`):
//! nodes done of the run's total, the current batch, the nodes in flight, a countdown
//! during a pause, elapsed time. Elsewhere (logs, CI) plain lines, one per rollout
//! event, and none per node: the report that follows lists the nodes once. Nothing when
//! quiet (tests, JSON output).

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::rollout;

#[derive(Debug, Clone, Default)]
pub enum Progress {
    #[default]
    Quiet,
    /// Plain lines for rollout events.
    Lines,
    /// The live view on a terminal.
    Live(Arc<Live>),
}

/// The live view's state, shared by the run's node tasks.
#[derive(Debug)]
pub struct Live {
    bar: ProgressBar,
    state: Mutex<LiveState>,
}

#[derive(Debug, Default)]
struct LiveState {
    batch: String,
    in_flight: BTreeSet<String>,
    pause_until: Option<Instant>,
}

impl Progress {
    /// Live on a terminal, plain lines otherwise.
    pub fn stderr() -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress::Lines;
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("[{elapsed_precise}] {pos}/{len} nodes {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(250));
        Progress::Live(Arc::new(Live {
            bar,
            state: Mutex::default(),
        }))
    }

    /// The number of nodes the whole run works on (all batches together).
    pub fn set_total(&self, total: usize) {
        if let Progress::Live(live) = self {
            live.bar.set_length(total as u64);
        }
    }

    pub fn node_started(&self, node: &str) {
        if let Progress::Live(live) = self {
            live.update(|s| {
                s.in_flight.insert(node.to_string());
            });
        }
    }

    pub fn node_done(&self, node: &str) {
        if let Progress::Live(live) = self {
            live.bar.inc(1);
            live.update(|s| {
                s.in_flight.remove(node);
            });
        }
    }

    /// A rollout event: a line, or the live view's batch and pause state.
    pub fn rollout(&self, event: &rollout::Progress<'_>) {
        match self {
            Progress::Quiet => {}
            Progress::Lines => eprintln!("{event}"),
            Progress::Live(live) => {
                let pause = match event {
                    rollout::Progress::Pause { seconds } => Some(*seconds),
                    _ => None,
                };
                live.update(|s| {
                    s.pause_until = pause.map(|secs| Instant::now() + Duration::from_secs(secs));
                    if !matches!(event, rollout::Progress::Pause { .. }) {
                        s.batch = event.to_string();
                    }
                });
                if pause.is_some() {
                    live.count_down();
                }
            }
        }
    }

    /// Clears the live view, so the report starts on a clean line.
    pub fn finish(&self) {
        if let Progress::Live(live) = self {
            live.bar.finish_and_clear();
        }
    }
}

impl Live {
    fn update(&self, change: impl FnOnce(&mut LiveState)) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        change(&mut state);
        self.bar.set_message(state.message());
    }

    /// Redraws the pause's remaining seconds until it ends (a new event ends it early).
    fn count_down(self: &Arc<Self>) {
        let live = Arc::clone(self);
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(250));
            let Ok(state) = live.state.lock() else {
                return;
            };
            let Some(until) = state.pause_until else {
                return;
            };
            live.bar.set_message(state.message());
            if Instant::now() >= until {
                return;
            }
        });
    }
}

impl LiveState {
    fn message(&self) -> String {
        let mut msg = self.batch.clone();
        if let Some(until) = self.pause_until {
            let left = until.saturating_duration_since(Instant::now()).as_secs() + 1;
            msg = format!("{msg}; next batch in {left}s");
        }
        if !self.in_flight.is_empty() {
            let names: Vec<&str> = self.in_flight.iter().take(4).map(String::as_str).collect();
            let more = self.in_flight.len().saturating_sub(names.len());
            msg = format!("{msg} | in flight: {}", names.join(", "));
            if more > 0 {
                msg = format!("{msg} +{more}");
            }
        }
        msg
    }
}
