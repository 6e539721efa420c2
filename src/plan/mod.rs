//! Plans: per node, the changes that would bring it to its catalog, computed purely from
//! the catalog and the facts one probe read (`plan_node`). Rendering (text and JSON) lives
//! in `render`. The change types and file diffs are the resources' own
//! (`crate::resource::change`, `crate::resource::diff`), re-exported here.

pub mod render;
pub mod saved;
pub mod stale;

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::fact::script::PackageCache;
use crate::fact::{FactError, NodeFacts, ProbeBuilder, Token};
use crate::node::{DatacenterName, NodeName};
use crate::resource::{self, ResourceId};
use crate::secret::SecretStore;

pub use crate::resource::change::{Action, Assessment, Change, Detail};
pub use crate::resource::diff::{self, Diff};

/// What was read for one resource, as a digest: a saved plan is only applied to a
/// resource whose state still has this digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadState {
    pub id: ResourceId,
    pub digest: String,
}

/// One node's plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodePlan {
    pub node: NodeName,
    pub datacenter: DatacenterName,
    pub changes: Vec<Change>,
    pub read: Vec<ReadState>,
    /// The host key the node presented when it was read (`ssh-ed25519 SHA256:…`), as
    /// tandem's known_hosts verified it; `None` for transports without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    /// The node state file (`fact::applied`) needs rewriting though nothing else
    /// changes: an apply does not settle such a node as in sync without its script.
    #[serde(skip)]
    pub record_stale: bool,
}

impl NodePlan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn change(&self, id: &ResourceId) -> Option<&Change> {
        self.changes.iter().find(|c| &c.id == id)
    }
}

/// The probe script for a catalog and its stdin, for output parsed with `token`; its
/// package query never uses the node's package cache.
pub fn probe_script(catalog: &Catalog, token: Token) -> (String, Vec<u8>) {
    probe_script_with(catalog, token, PackageCache::Off)
}

/// [`probe_script`], with the package query answered from the node's package cache as
/// `cache` says.
pub fn probe_script_with(
    catalog: &Catalog,
    token: Token,
    cache: PackageCache,
) -> (String, Vec<u8>) {
    let mut builder = ProbeBuilder::new(token);
    builder.package_cache(cache);
    for (index, r) in catalog.resources.iter().enumerate() {
        resource::operations(&r.spec).probe(index, &mut builder);
    }
    builder.finish()
}

/// Plans one node from its catalog and the facts read. Pure. A resource is "notified"
/// when a resource listing it in `notify` has a change; notification turns into a
/// reload or a refresh-only run.
pub fn plan_node(
    catalog: &Catalog,
    facts: &NodeFacts,
    secrets: &SecretStore,
) -> Result<NodePlan, FactError> {
    let mut changes: Vec<Change> = Vec::new();
    let mut read = Vec::with_capacity(catalog.resources.len());
    // Who notifies whom, and who has a change: kept as maps so planning stays linear in
    // the number of relations (10,000 nodes of 50 resources are planned in seconds).
    let mut notifiers: HashMap<&ResourceId, Vec<&ResourceId>> = HashMap::new();
    for r in &catalog.resources {
        for target in &r.notify {
            notifiers.entry(target).or_default().push(&r.id);
        }
    }
    let mut changed: HashSet<ResourceId> = HashSet::new();
    for (index, r) in catalog.resources.iter().enumerate() {
        let notified_by: Vec<ResourceId> = notifiers
            .get(&r.id)
            .into_iter()
            .flatten()
            .filter(|n| changed.contains(**n))
            .map(|n| (*n).clone())
            .collect();
        let ctx = resource::Context {
            index,
            id: &r.id,
            facts,
            notified_by: &notified_by,
            secrets,
        };
        let assessment = resource::operations(&r.spec).assess(&ctx)?;
        read.push(ReadState {
            id: r.id.clone(),
            digest: hex::encode(&Sha256::digest(assessment.observed.as_bytes())[..16]),
        });
        if let Some(change) = assessment.change {
            changed.insert(change.id.clone());
            changes.push(change);
        }
    }
    Ok(NodePlan {
        node: catalog.node.name.clone(),
        datacenter: catalog.node.datacenter.clone(),
        changes,
        read,
        host_key: None,
        record_stale: false,
    })
}

/// Resources that do not read as in sync after an apply: every change except runs and
/// reloads, which are events rather than state.
pub fn unsynced(plan: &NodePlan) -> Vec<&Change> {
    plan.changes
        .iter()
        .filter(|c| !matches!(c.action, Action::Run | Action::Reload))
        .collect()
}
