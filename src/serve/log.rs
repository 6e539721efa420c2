//! The observer the daemon runs with until `/metrics` takes its place: one line on
//! stderr per delivery and per finished run. Only fixed words and counts, never a
//! payload, a header or a secret.

use super::observe::{DeliveryResult, Observer, Receiver, RunFinished};

/// Writes one stderr line per event.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogObserver;

impl Observer for LogObserver {
    fn delivery(&self, receiver: Receiver, result: DeliveryResult) {
        eprintln!(
            "serve: delivery receiver={} result={}",
            receiver.as_str(),
            result.as_str()
        );
    }

    fn run_finished(&self, run: &RunFinished) {
        let nodes: Vec<String> = run
            .nodes_by_outcome
            .iter()
            .map(|(outcome, n)| format!("{outcome}={n}"))
            .collect();
        eprintln!(
            "serve: run kind={} result={} seconds={:.1} nodes[{}]",
            run.kind,
            run.result,
            run.seconds,
            nodes.join(" ")
        );
    }
}
