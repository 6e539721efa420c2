//! The epoch guard (`failover::guard` re-exports it): a run whose site declares a
//! failover epoch lower than the one a node carries is refused as a whole, before it
//! changes any node. Such a checkout is older than the last promote, and converging the
//! old primary's nodes from it would make them writable again. Every node's epoch comes
//! from the node state file that each apply writes and every probe reads back (see
//! `crate::fact`); the check itself is pure, over what the probes of ALL the run's
//! nodes read, so it runs after every probe and before the first apply script
//! (`apply::deploy` calls it there). A leaf module of its own, below both `apply`
//! (which calls it) and `failover`.
//!
//! What it cannot see: a run that reaches none of the nodes that carry the new epoch
//! (they are all unreachable, or not selected) has nothing to compare with. The second
//! witness for that case is outside the nodes: the Route53 failover record (see
//! `failover::route53`) and the promote's commit in git (docs/failover.md).

use std::fmt;

use crate::node::{DatacenterName, NodeName};

/// A node's failover state as its probe read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub node: NodeName,
    pub datacenter: DatacenterName,
    /// `None`: no state file on the node yet (never applied since epochs exist).
    pub epoch: Option<u64>,
    /// The side (`primary`, `standby`) the state file names, as written.
    pub side: Option<String>,
    /// A killed earlier run left staged files on the node: the apply script must run
    /// (it removes them) even when every resource reads in sync.
    pub leftovers: bool,
}

impl Seen {
    /// What the probe of `catalog`'s node read of its failover state.
    pub fn read(catalog: &crate::catalog::Catalog, facts: &crate::fact::NodeFacts) -> Seen {
        let state = facts.applied.as_ref();
        Seen {
            node: catalog.node.name.clone(),
            datacenter: catalog.node.datacenter.clone(),
            epoch: state.map(|s| s.epoch),
            side: state.map(|s| s.side.as_str().to_string()),
            leftovers: !facts.leftovers.is_empty(),
        }
    }
}

/// The refusal: the site's epoch and every node that carries a newer one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refused: this checkout declares failover epoch {site_epoch}, but {} (a promote happened after this checkout was made: fetch the site repository; nothing was changed on any node)",
    Ahead(.ahead)
)]
pub struct StaleEpoch {
    pub site_epoch: u64,
    pub ahead: Vec<(NodeName, DatacenterName, u64)>,
}

struct Ahead<'a>(&'a [(NodeName, DatacenterName, u64)]);

impl fmt::Display for Ahead<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self
            .0
            .iter()
            .take(20)
            .map(|(node, dc, epoch)| format!("`{node}` ({dc}) carries epoch {epoch}"))
            .collect();
        f.write_str(&shown.join(", "))?;
        if self.0.len() > shown.len() {
            write!(f, " and {} more nodes", self.0.len() - shown.len())?;
        }
        Ok(())
    }
}

/// Refuses when any node in `seen` carries an epoch above `site_epoch`.
pub fn check<'a>(
    site_epoch: u64,
    seen: impl IntoIterator<Item = &'a Seen>,
) -> Result<(), StaleEpoch> {
    let mut ahead: Vec<(NodeName, DatacenterName, u64)> = seen
        .into_iter()
        .filter_map(|s| match s.epoch {
            Some(e) if e > site_epoch => Some((s.node.clone(), s.datacenter.clone(), e)),
            _ => None,
        })
        .collect();
    if ahead.is_empty() {
        return Ok(());
    }
    ahead.sort();
    Err(StaleEpoch { site_epoch, ahead })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(node: &str, epoch: Option<u64>) -> Seen {
        Seen {
            node: NodeName::new(node).unwrap(),
            datacenter: DatacenterName::new("aws-useast1").unwrap(),
            epoch,
            side: None,
            leftovers: false,
        }
    }

    #[test]
    fn a_node_ahead_of_the_site_refuses_the_run_naming_it() {
        let nodes = [
            seen("fe-1", Some(2)),
            seen("fe-2", Some(3)),
            seen("fe-3", None),
        ];
        assert_eq!(check(3, &nodes), Ok(()));
        assert_eq!(check(4, &nodes), Ok(()));
        let err = check(2, &nodes).unwrap_err();
        assert_eq!(err.ahead.len(), 1);
        let text = err.to_string();
        assert!(text.contains("epoch 2"), "{text}");
        assert!(
            text.contains("`fe-2` (aws-useast1) carries epoch 3"),
            "{text}"
        );
        assert!(!text.contains("fe-1"), "{text}");
    }
}
