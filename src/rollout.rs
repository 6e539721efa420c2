//! Rollout policy: canaries per datacenter, then batches, a failure threshold, health
//! checks between batches. `[rollout]` in `site.toml`.
//!
//! SKELETON: the settings shape only; batching and the executor's use of it come with
//! the safe-rollout work.

use serde::{Deserialize, Serialize};

/// Which datacenter goes first. The default protects the primary: the standby takes any
/// bad change first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    #[default]
    StandbyFirst,
    PrimaryFirst,
}

/// `[rollout]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutPolicy {
    #[serde(default)]
    pub order: Order,
    /// Canary nodes per datacenter, applied before any batch.
    #[serde(default = "one")]
    pub canary: usize,
    /// Batch size: a count (`5`) or a percentage of the remaining nodes (`"25%"`).
    #[serde(default = "default_batch")]
    pub batch: toml::Value,
    /// Failed or unreachable nodes tolerated before the rollout halts.
    #[serde(default)]
    pub max_failed: usize,
    /// Seconds to wait between batches.
    #[serde(default)]
    pub pause_seconds: u64,
    pub health: Option<HealthCheck>,
}

/// `[rollout.health]`: run after each batch on the batch's nodes; exactly one of `http`
/// (a URL, `{address}` replaced by the node's address) or `command` (run on the node).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub http: Option<String>,
    pub command: Option<String>,
    #[serde(default = "default_health_timeout")]
    pub timeout_seconds: u64,
}

impl Default for RolloutPolicy {
    fn default() -> Self {
        RolloutPolicy {
            order: Order::default(),
            canary: 1,
            batch: default_batch(),
            max_failed: 0,
            pause_seconds: 0,
            health: None,
        }
    }
}

fn one() -> usize {
    1
}

fn default_batch() -> toml::Value {
    toml::Value::String("25%".to_string())
}

fn default_health_timeout() -> u64 {
    10
}
