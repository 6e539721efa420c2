//! Rollout policy: canaries per datacenter, then batches, a failure threshold, health
//! checks between batches. `[rollout]` in `site.toml` deserializes into
//! [`RolloutPolicy`]; [`plan`] orders a run's nodes into batches (pure), and [`run`]
//! drives the batches through a caller-supplied apply function, halting on the
//! threshold or a failed health check.
//!
//! The failure rule, everywhere: nodes whose outcome is failed, unreachable or host-key
//! count as failed (see [`crate::outcome::Outcome::counts_as_failure`]); when their
//! number exceeds `max_failed`, the rollout halts before the next batch.

mod driver;
mod health;
mod planner;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use driver::{run, run_until, Halt, NodeResult, Progress, RolloutReport, FAILURE_RULE};
pub use health::{check_http, HealthFailure};
pub use planner::{plan, Batch, BatchKind, RolloutError, RolloutPlan};

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
    /// Batch size: a count (`5`) or a percentage (`"25%"`) of the nodes left after the
    /// canaries.
    #[serde(default)]
    pub batch: BatchSize,
    /// Failed, unreachable or host-key nodes tolerated; one more halts the rollout.
    #[serde(default)]
    pub max_failed: usize,
    /// Seconds to wait between batches.
    #[serde(default)]
    pub pause_seconds: u64,
    pub health: Option<HealthCheck>,
}

impl Default for RolloutPolicy {
    fn default() -> Self {
        RolloutPolicy {
            order: Order::default(),
            canary: 1,
            batch: BatchSize::default(),
            max_failed: 0,
            pause_seconds: 0,
            health: None,
        }
    }
}

fn one() -> usize {
    1
}

/// `batch = 5` or `batch = "25%"`. Validated when `site.toml` is read: a count of at
/// least 1, a percentage from 1 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawBatchSize", into = "RawBatchSize")]
pub enum BatchSize {
    Count(usize),
    Percent(u8),
}

impl Default for BatchSize {
    fn default() -> Self {
        BatchSize::Percent(25)
    }
}

impl BatchSize {
    /// Nodes per batch when `remaining` nodes are left after the canaries: the
    /// percentage rounded up, never less than 1.
    pub fn nodes_per_batch(self, remaining: usize) -> usize {
        match self {
            BatchSize::Count(n) => n.max(1),
            BatchSize::Percent(p) => (remaining * usize::from(p)).div_ceil(100).max(1),
        }
    }
}

impl fmt::Display for BatchSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchSize::Count(n) => write!(f, "{n}"),
            BatchSize::Percent(p) => write!(f, "{p}%"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum RawBatchSize {
    Count(i64),
    Text(String),
}

impl TryFrom<RawBatchSize> for BatchSize {
    type Error = String;
    fn try_from(raw: RawBatchSize) -> Result<Self, String> {
        match raw {
            RawBatchSize::Count(n) if n >= 1 => usize::try_from(n)
                .map(BatchSize::Count)
                .map_err(|_| format!("batch size `{n}` is too large")),
            RawBatchSize::Count(n) => Err(format!("batch size `{n}` must be at least 1")),
            RawBatchSize::Text(text) => {
                let percent = text
                    .trim()
                    .strip_suffix('%')
                    .and_then(|p| p.trim().parse::<u8>().ok())
                    .filter(|p| (1..=100).contains(p));
                percent.map(BatchSize::Percent).ok_or_else(|| {
                    format!(
                        "batch size `{text}` must be a count or a percentage from `1%` to `100%`"
                    )
                })
            }
        }
    }
}

impl From<BatchSize> for RawBatchSize {
    fn from(size: BatchSize) -> Self {
        match size {
            BatchSize::Count(n) => RawBatchSize::Count(i64::try_from(n).unwrap_or(i64::MAX)),
            BatchSize::Percent(p) => RawBatchSize::Text(format!("{p}%")),
        }
    }
}

/// `[rollout.health]`: run after each batch on the batch's converged nodes; exactly one
/// of `http` (a URL, `{address}` replaced by the node's address; a 2xx status is
/// healthy) or `command` (run on the node; exit status 0 is healthy). `roles` limits
/// it to nodes of those roles (an HTTP check of the front ends means nothing on a
/// database node); empty means every node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawHealthCheck", into = "RawHealthCheck")]
pub struct HealthCheck {
    pub probe: HealthProbe,
    pub timeout_seconds: u64,
    pub roles: Vec<String>,
}

impl HealthCheck {
    /// Whether `node` is one this check applies to.
    pub fn covers(&self, node: &crate::node::Node) -> bool {
        self.roles.is_empty() || self.roles.iter().any(|r| r == node.role.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthProbe {
    /// `http://{address}:8080/healthz`
    Http(String),
    /// A shell command run on the node through the transport.
    Command(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealthCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<String>,
    #[serde(default = "default_health_timeout")]
    timeout_seconds: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    roles: Vec<String>,
}

fn default_health_timeout() -> u64 {
    10
}

impl TryFrom<RawHealthCheck> for HealthCheck {
    type Error = String;
    fn try_from(raw: RawHealthCheck) -> Result<Self, String> {
        let probe = match (raw.http, raw.command) {
            (Some(url), None) => {
                health::HttpTarget::parse(&url, "127.0.0.1")?;
                HealthProbe::Http(url)
            }
            (None, Some(command)) => HealthProbe::Command(command),
            (Some(_), Some(_)) => {
                return Err("`rollout.health` takes `http` or `command`, not both".into())
            }
            (None, None) => return Err("`rollout.health` needs `http` or `command`".into()),
        };
        if raw.timeout_seconds == 0 {
            return Err("`rollout.health.timeout_seconds` must be at least 1".into());
        }
        Ok(HealthCheck {
            probe,
            timeout_seconds: raw.timeout_seconds,
            roles: raw.roles,
        })
    }
}

impl From<HealthCheck> for RawHealthCheck {
    fn from(check: HealthCheck) -> Self {
        let (http, command) = match check.probe {
            HealthProbe::Http(url) => (Some(url), None),
            HealthProbe::Command(command) => (None, Some(command)),
        };
        RawHealthCheck {
            http,
            command,
            timeout_seconds: check.timeout_seconds,
            roles: check.roles,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RolloutPolicy, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn defaults_protect_the_primary() {
        let policy = parse("").unwrap();
        assert_eq!(policy, RolloutPolicy::default());
        assert_eq!(policy.order, Order::StandbyFirst);
        assert_eq!(policy.batch, BatchSize::Percent(25));
        assert_eq!(policy.canary, 1);
    }

    #[test]
    fn batch_sizes_parse_and_are_validated() {
        assert_eq!(parse("batch = 5").unwrap().batch, BatchSize::Count(5));
        assert_eq!(
            parse("batch = \"40%\"").unwrap().batch,
            BatchSize::Percent(40)
        );
        for bad in [
            "batch = 0",
            "batch = -2",
            "batch = \"0%\"",
            "batch = \"101%\"",
            "batch = \"ten\"",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("batch size"), "{bad}: {err}");
        }
    }

    #[test]
    fn percentages_round_up_and_never_reach_zero() {
        assert_eq!(BatchSize::Percent(25).nodes_per_batch(10), 3);
        assert_eq!(BatchSize::Percent(25).nodes_per_batch(8), 2);
        assert_eq!(BatchSize::Percent(1).nodes_per_batch(3), 1);
        assert_eq!(BatchSize::Percent(100).nodes_per_batch(7), 7);
        assert_eq!(BatchSize::Percent(50).nodes_per_batch(0), 1);
        assert_eq!(BatchSize::Count(4).nodes_per_batch(100), 4);
    }

    #[test]
    fn health_needs_exactly_one_probe() {
        let policy =
            parse("[health]\nhttp = \"http://{address}:8080/healthz\"\ntimeout_seconds = 3\n")
                .unwrap();
        let health = policy.health.unwrap();
        assert_eq!(
            health.probe,
            HealthProbe::Http("http://{address}:8080/healthz".into())
        );
        assert_eq!(health.timeout_seconds, 3);
        let both = parse("[health]\nhttp = \"http://{address}/\"\ncommand = \"true\"\n");
        assert!(both.unwrap_err().to_string().contains("not both"));
        let none = parse("[health]\ntimeout_seconds = 3\n");
        assert!(none.unwrap_err().to_string().contains("needs"));
        let https = parse("[health]\nhttp = \"https://{address}/\"\n");
        assert!(https.unwrap_err().to_string().contains("http://"));
    }

    #[test]
    fn policy_serializes_back_to_the_same_toml_shape() {
        let text = "order = \"primary-first\"\ncanary = 2\nbatch = \"30%\"\nmax_failed = 1\npause_seconds = 5\n\n[health]\ncommand = \"systemctl is-active nginx\"\ntimeout_seconds = 4\n";
        let policy = parse(text).unwrap();
        let again = parse(&toml::to_string(&policy).unwrap()).unwrap();
        assert_eq!(policy, again);
    }
}
