//! `/metrics`: the daemon's counters in the OpenMetrics text format, kept with
//! `prometheus-client` and fed through [`Observer`]. Every label value is a fixed word
//! from the code or a checked name: a run's result and a node outcome must be known
//! words (else `other`), a datacenter a valid datacenter name and a commit a hex object
//! id (else the series is not recorded), so no request can grow a label set.
//!
//! `tandem_deployed_commit{datacenter,commit}` is an info-style gauge: 1 for the commit
//! each datacenter runs now. When a datacenter moves to a new commit, the old commit's
//! series is removed (not set to 0), so a query for `== 1` and a count by datacenter both
//! give one answer per datacenter.

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::observe::{DeliveryResult, Observer, Receiver, RunFinished};
use crate::node::DatacenterName;
use crate::outcome::Outcome;
use crate::store::RunStatus;

/// The `Content-Type` of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Run results the daemon records besides the history's [`RunStatus`] words.
const EXTRA_RESULTS: &[&str] = &["refused", "superseded", "ignored"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    receiver: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeployedLabels {
    datacenter: String,
    commit: String,
}

type DurationFamily = Family<KindLabels, Histogram, fn() -> Histogram>;

/// The daemon's metrics. Cheap to update from any thread; hand one `Arc<Metrics>` to
/// the receivers and the run worker as their observer and to the pages router.
pub struct Metrics {
    registry: Registry,
    deliveries: Family<DeliveryLabels, Counter>,
    runs: Family<RunLabels, Counter>,
    durations: DurationFamily,
    nodes: Family<OutcomeLabels, Counter>,
    deployed: Family<DeployedLabels, Gauge>,
    /// The commit each datacenter's series shows, to remove it when it moves on.
    current: Mutex<BTreeMap<String, String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Run durations from 1 s to about 2 h 16 min, doubling.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 14))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "tandem_webhook_deliveries",
            "Webhook deliveries by receiver and what became of them",
            deliveries.clone(),
        );
        let runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "tandem_runs",
            "Runs the daemon finished, by kind and result",
            runs.clone(),
        );
        let durations: DurationFamily = Family::new_with_constructor(duration_histogram);
        registry.register(
            "tandem_run_duration_seconds",
            "How long the daemon's runs took, by kind",
            durations.clone(),
        );
        let nodes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "tandem_nodes",
            "Nodes of finished runs by outcome",
            nodes.clone(),
        );
        let deployed = Family::<DeployedLabels, Gauge>::default();
        registry.register(
            "tandem_deployed_commit",
            "1 for the commit each datacenter was last converged to",
            deployed.clone(),
        );
        Metrics {
            registry,
            deliveries,
            runs,
            durations,
            nodes,
            deployed,
            current: Mutex::new(BTreeMap::new()),
        }
    }

    /// The whole exposition, `# EOF` included.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; the encoder only passes fmt errors on.
        let _ = encode(&mut out, &self.registry);
        out
    }

    fn deployed_commit(&self, datacenter: &str, commit: &str) {
        if datacenter.parse::<DatacenterName>().is_err() || !is_object_id(commit) {
            return;
        }
        let commit = commit.to_ascii_lowercase();
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(old) = current.insert(datacenter.to_string(), commit.clone()) {
            if old != commit {
                self.deployed.remove(&DeployedLabels {
                    datacenter: datacenter.to_string(),
                    commit: old,
                });
            }
        }
        self.deployed
            .get_or_create(&DeployedLabels {
                datacenter: datacenter.to_string(),
                commit,
            })
            .set(1);
    }
}

/// A git object id: 40 (SHA-1) or 64 (SHA-256) hex digits.
fn is_object_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `kind` as one of the daemon's run kinds, else `other`.
fn kind_word(kind: &str) -> &'static str {
    ["plan", "apply", "audit"]
        .into_iter()
        .find(|k| *k == kind)
        .unwrap_or("other")
}

fn result_word(result: &str) -> &'static str {
    match result.parse::<RunStatus>() {
        Ok(status) => status.as_str(),
        Err(_) => EXTRA_RESULTS
            .iter()
            .copied()
            .find(|r| *r == result)
            .unwrap_or("other"),
    }
}

fn outcome_word(outcome: &str) -> &'static str {
    outcome.parse::<Outcome>().map_or("other", Outcome::as_str)
}

impl Observer for Metrics {
    fn delivery(&self, receiver: Receiver, result: DeliveryResult) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                receiver: receiver.as_str(),
                result: result.as_str(),
            })
            .inc();
    }

    fn run_finished(&self, run: &RunFinished) {
        let kind = kind_word(run.kind);
        self.runs
            .get_or_create(&RunLabels {
                kind,
                result: result_word(&run.result),
            })
            .inc();
        if run.seconds.is_finite() && run.seconds >= 0.0 {
            self.durations
                .get_or_create(&KindLabels { kind })
                .observe(run.seconds);
        }
        for (outcome, count) in &run.nodes_by_outcome {
            self.nodes
                .get_or_create(&OutcomeLabels {
                    outcome: outcome_word(outcome),
                })
                .inc_by(*count);
        }
        for (datacenter, commit) in &run.deployed {
            self.deployed_commit(datacenter, commit);
        }
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
