//! Saved plans (`tandem plan --out FILE`): a versioned JSON file holding the commit, a
//! digest of the site (manifests, templates, modules), and per node and resource the
//! desired state, a digest of it, the digest of the state read, and the planned change.
//! It also keeps each node's planning result (changes and diffs) and the machine that
//! was read (address, port, verified host key). `tandem show FILE` renders the results
//! only after checking that they say what the per-resource entries say (what apply
//! uses), so editing what a reviewer sees is detected; `apply FILE` goes only to the
//! address that was read, and only when the node presents the host key that was read.
//!
//! Secrets: desired file content that carries a secret serializes as its SHA-256 and the
//! secrets' fingerprints only (see `resource::Content`), and the rendered plan shows only
//! line numbers and fingerprints for it, so the file holds no secret in clear. Applying
//! re-renders the catalogs from the site and requires every resource's desired digest to
//! match the plan, so secret content is re-created from the site, never from the file.
//!
//! Applying a saved plan is refused as a whole when the site digest or any desired state
//! differs: the reviewed plan would no longer be what the site says, and applying an old
//! plan over a newer commit would silently revert someone's change. Make a new plan.
//! Per node, a resource whose read state moved since the plan is refused by name and the
//! node is left untouched (see `apply::Expect`); the other nodes proceed.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::manifest::source::{SiteSource, SourceError};
use crate::node::{DatacenterName, NodeName};
use crate::plan::render::NodeResult;
use crate::plan::stale::{change_summary, Expect, Job, NodeIdentity};
use crate::plan::Diff;
use crate::resource::ResourceId;

/// The `format` field: what this file is.
pub const FORMAT: &str = "tandem-plan";
/// The format version this tandem writes and reads.
/// Version 2: node addresses and host keys, structured results instead of stored text.
pub const VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    #[error("cannot read the saved plan `{path}`: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("`{path}` is not a tandem saved plan: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("saved plan `{path}` has format version {found}; this tandem reads version {VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("cannot write the saved plan `{path}`: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("the site changed since the plan was made (site digest `{planned}`, now `{now}`{}); refusing the whole plan: make a new one with `tandem plan --out`", commits(.planned_commit, .now_commit))]
    SiteChanged {
        planned: String,
        now: String,
        planned_commit: Option<String>,
        now_commit: Option<String>,
    },
    #[error("the saved plan was edited: what it shows for `{node}` ({what}) is not what it would apply; refusing it: make a new one with `tandem plan --out`")]
    Tampered { node: NodeName, what: String },
    #[error("the saved plan was edited: it holds {nodes} nodes but {results} results; refusing it: make a new one with `tandem plan --out`")]
    TamperedShape { nodes: usize, results: usize },
    #[error("node `{node}` of the plan is no longer in the inventory; refusing the whole plan: make a new one with `tandem plan --out`")]
    NodeGone { node: NodeName },
    #[error("the desired state of `{resource}` on `{node}` is not what the plan holds ({reason}); refusing the whole plan: make a new one with `tandem plan --out`")]
    DesiredChanged {
        node: NodeName,
        resource: String,
        reason: &'static str,
    },
}

fn commits(planned: &Option<String>, now: &Option<String>) -> String {
    match (planned, now) {
        (Some(p), Some(n)) if p != n => format!(", commit `{p}` then, `{n}` now"),
        _ => String::new(),
    }
}

/// A saved plan, as written to and read from the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format: String,
    pub version: u32,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub commit: Option<String>,
    /// See [`site_digest`].
    pub site_digest: String,
    pub nodes: Vec<SavedNode>,
    /// What planning found per node, changes and diffs included: what `tandem show`
    /// renders, after checking that it says what `nodes` (what apply uses) says.
    pub results: Vec<NodeResult>,
}

/// One node: `planned` with its resources, or why it could not be planned (such a node
/// is not applied from this plan).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedNode {
    pub node: NodeName,
    pub datacenter: DatacenterName,
    /// The machine that was read: `apply FILE` goes to this address and port only, and
    /// only when the node presents this host key.
    pub address: String,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    pub status: SavedStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub resources: Vec<SavedResource>,
}

/// Whether a node could be planned, and if not why: the words of
/// [`crate::outcome::Outcome`] for the same cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SavedStatus {
    Planned,
    Unreachable,
    /// Written `hostkey` by version 1 files of earlier tandems.
    #[serde(alias = "hostkey")]
    HostKey,
    Failed,
}

impl std::fmt::Display for SavedStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SavedStatus::Planned => "planned",
            SavedStatus::Unreachable => "unreachable",
            SavedStatus::HostKey => "host-key",
            SavedStatus::Failed => "failed",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedResource {
    /// `file:/etc/nginx/nginx.conf`
    pub id: ResourceId,
    /// The desired state, secret-bearing content as digest and fingerprints only.
    pub desired: serde_json::Value,
    pub desired_digest: String,
    pub read_digest: String,
    /// The planned change in a few words (`modify (content, mode)`, `in sync`).
    pub planned: String,
}

impl SavedPlan {
    /// The saved form of a plan run over `catalogs` (one result per catalog, same order).
    pub fn new(
        source: &SiteSource,
        catalogs: &[Catalog],
        results: &[NodeResult],
    ) -> Result<SavedPlan, SavedPlanError> {
        let nodes = catalogs
            .iter()
            .zip(results)
            .map(|(catalog, result)| saved_node(catalog, result))
            .collect();
        Ok(SavedPlan {
            format: FORMAT.into(),
            version: VERSION,
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            commit: source.commit.clone(),
            site_digest: source.digest.clone(),
            nodes,
            results: results.to_vec(),
        })
    }

    /// Writes the plan atomically: a temporary file in the same directory, fsynced, then
    /// renamed over `path`, so a reader never sees half a plan.
    pub fn write(&self, path: &Path) -> Result<(), SavedPlanError> {
        let err = |error| SavedPlanError::Write {
            path: path.to_path_buf(),
            error,
        };
        let text = serde_json::to_vec_pretty(self).map_err(|e| err(std::io::Error::other(e)))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plan".into());
        let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let written = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            file.write_all(&text)?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if let Err(source) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(err(source));
        }
        Ok(())
    }

    /// Reads a saved plan, refusing other files and other format versions.
    pub fn load(path: &Path) -> Result<SavedPlan, SavedPlanError> {
        let text = std::fs::read(path).map_err(|error| SavedPlanError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let parse = |reason: String| SavedPlanError::Parse {
            path: path.to_path_buf(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| parse(e.to_string()))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(parse(format!("no `\"format\": \"{FORMAT}\"`")));
        }
        let found = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if found != u64::from(VERSION) {
            return Err(SavedPlanError::Version {
                path: path.to_path_buf(),
                found: u32::try_from(found).unwrap_or(u32::MAX),
            });
        }
        serde_json::from_value(value).map_err(|e| parse(e.to_string()))
    }

    /// Refuses the plan when the site's files are no longer those it was made from.
    pub fn check_site(&self, site_root: &Path) -> Result<(), SavedPlanError> {
        let now = SiteSource::read(site_root)?;
        if now.digest == self.site_digest {
            return Ok(());
        }
        Err(SavedPlanError::SiteChanged {
            planned: self.site_digest.clone(),
            now: now.digest,
            planned_commit: self.commit.clone(),
            now_commit: now.commit,
        })
    }

    /// Checks that the stored results (what `show` renders) say what the structured
    /// nodes (what `apply` uses) say: the same nodes, statuses and host keys, the same
    /// changes per resource, and file diffs whose new side is the desired content. A
    /// plan edited to hide a change is refused, by node and resource.
    pub fn verify_results(&self) -> Result<(), SavedPlanError> {
        let mismatch = |node: &NodeName, what: String| SavedPlanError::Tampered {
            node: node.clone(),
            what,
        };
        if self.results.len() != self.nodes.len() {
            return Err(SavedPlanError::TamperedShape {
                nodes: self.nodes.len(),
                results: self.results.len(),
            });
        }
        for (saved, result) in self.nodes.iter().zip(&self.results) {
            if result.node() != &saved.node {
                return Err(mismatch(
                    &saved.node,
                    format!("result for `{}`", result.node()),
                ));
            }
            let NodeResult::Planned(plan) = result else {
                if saved.status == SavedStatus::Planned {
                    return Err(mismatch(
                        &saved.node,
                        "a planned node without a plan".into(),
                    ));
                }
                continue;
            };
            if saved.status != SavedStatus::Planned || plan.host_key != saved.host_key {
                return Err(mismatch(&saved.node, "its status or host key".into()));
            }
            for r in &saved.resources {
                let change = plan.change(&r.id);
                if change_summary(change) != r.planned || read_digest(plan, &r.id) != r.read_digest
                {
                    return Err(mismatch(&saved.node, format!("`{}`", r.id)));
                }
                let desired = r
                    .desired
                    .pointer("/spec/content/text")
                    .and_then(|t| t.as_str());
                if let (Some(Diff::Text { unified }), Some(desired)) =
                    (change.and_then(|c| c.diff.as_ref()), desired)
                {
                    if !new_side_matches(unified, desired) {
                        return Err(mismatch(&saved.node, format!("the diff of `{}`", r.id)));
                    }
                }
            }
            if let Some(extra) = plan
                .changes
                .iter()
                .find(|c| !saved.resources.iter().any(|r| r.id == c.id))
            {
                return Err(mismatch(&saved.node, format!("`{}`", extra.id)));
            }
        }
        Ok(())
    }

    /// The nodes this plan applies to (those it could plan).
    pub fn planned_nodes(&self) -> impl Iterator<Item = &SavedNode> {
        self.nodes
            .iter()
            .filter(|n| n.status == SavedStatus::Planned)
    }

    /// The nodes that could not be planned: applying this plan leaves them alone.
    pub fn unplanned_nodes(&self) -> impl Iterator<Item = &SavedNode> {
        self.nodes
            .iter()
            .filter(|n| n.status != SavedStatus::Planned)
    }

    /// One job per planned node, from freshly compiled `catalogs` (others are ignored:
    /// the plan is applied, nothing else). Every resource's desired state must match the
    /// plan; otherwise the whole plan is refused.
    pub fn jobs(&self, catalogs: Vec<Catalog>) -> Result<Vec<Job>, SavedPlanError> {
        let mut jobs = Vec::new();
        for saved in self.planned_nodes() {
            let changed = |resource: String, reason| SavedPlanError::DesiredChanged {
                node: saved.node.clone(),
                resource,
                reason,
            };
            let Some(catalog) = catalogs.iter().find(|c| c.node.name == saved.node) else {
                return Err(changed(
                    "*".into(),
                    "the node is no longer in the inventory",
                ));
            };
            let mut expect = Vec::with_capacity(saved.resources.len());
            for r in &catalog.resources {
                let Some(s) = saved.resources.iter().find(|s| s.id == r.id) else {
                    return Err(changed(r.id.to_string(), "the resource is not in the plan"));
                };
                if desired_digest(&desired_value(r)) != s.desired_digest {
                    return Err(changed(r.id.to_string(), "its desired state differs"));
                }
                expect.push(Expect {
                    id: r.id.clone(),
                    read_digest: s.read_digest.clone(),
                    planned: s.planned.clone(),
                });
            }
            if let Some(gone) = saved
                .resources
                .iter()
                .find(|s| catalog.resources.iter().all(|r| r.id != s.id))
            {
                return Err(changed(
                    gone.id.to_string(),
                    "the resource is no longer in the catalog",
                ));
            }
            jobs.push(Job {
                catalog: catalog.clone(),
                expect: Some(expect),
                identity: Some(NodeIdentity {
                    address: saved.address.clone(),
                    port: saved.port,
                    host_key: saved.host_key.clone(),
                }),
                probed: None,
            });
        }
        Ok(jobs)
    }
}

fn saved_node(catalog: &Catalog, result: &NodeResult) -> SavedNode {
    let (status, error) = match result {
        NodeResult::Planned(_) => (SavedStatus::Planned, None),
        NodeResult::Unreachable { error, .. } => (SavedStatus::Unreachable, Some(error.clone())),
        NodeResult::HostKey { error, .. } => (SavedStatus::HostKey, Some(error.clone())),
        NodeResult::Failed { error, .. } => (SavedStatus::Failed, Some(error.clone())),
    };
    let resources = match result {
        NodeResult::Planned(plan) => catalog
            .resources
            .iter()
            .map(|r| {
                let desired = desired_value(r);
                SavedResource {
                    id: r.id.clone(),
                    desired_digest: desired_digest(&desired),
                    desired,
                    read_digest: read_digest(plan, &r.id),
                    planned: change_summary(plan.change(&r.id)),
                }
            })
            .collect(),
        _ => Vec::new(),
    };
    SavedNode {
        node: catalog.node.name.clone(),
        datacenter: catalog.node.datacenter.clone(),
        address: catalog.node.address.clone(),
        port: catalog.node.port,
        host_key: match result {
            NodeResult::Planned(plan) => plan.host_key.clone(),
            _ => None,
        },
        status,
        error,
        resources,
    }
}

/// Whether every hunk's new side (context and added lines) of a unified diff is the
/// desired text at the lines the hunk header names.
fn new_side_matches(unified: &str, desired: &str) -> bool {
    let want: Vec<&str> = desired.lines().collect();
    let mut line = None::<usize>;
    for l in unified.lines() {
        if let Some(header) = l.strip_prefix("@@ ") {
            let start = header
                .split_whitespace()
                .find_map(|part| part.strip_prefix('+'))
                .and_then(|range| range.split(',').next())
                .and_then(|n| n.parse::<usize>().ok());
            let Some(start) = start else { return false };
            line = Some(start.saturating_sub(1));
            continue;
        }
        let Some(at) = line.as_mut() else { continue };
        // `\ No newline at end of file` belongs to the line before it.
        if l.starts_with('\\') {
            continue;
        }
        if let Some(text) = l.strip_prefix('+').or_else(|| l.strip_prefix(' ')) {
            if want.get(*at) != Some(&text) {
                return false;
            }
            *at += 1;
        }
    }
    true
}

fn read_digest(plan: &crate::plan::NodePlan, id: &ResourceId) -> String {
    plan.read
        .iter()
        .find(|r| &r.id == id)
        .map(|r| r.digest.clone())
        .unwrap_or_default()
}

/// A resource's desired state as JSON (secret content as digest and fingerprints).
fn desired_value(resource: &crate::resource::Resource) -> serde_json::Value {
    // Invariant: resources are plain data (strings, numbers, enums, string-keyed maps),
    // and serializing such data to a JSON value cannot fail.
    serde_json::to_value(resource).unwrap_or_default()
}

fn desired_digest(desired: &serde_json::Value) -> String {
    hex::encode(Sha256::digest(desired.to_string().as_bytes()))
}

#[cfg(test)]
#[path = "saved_tests.rs"]
mod tests;
