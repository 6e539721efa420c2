//! Saved plans (`tandem plan --out FILE`): a versioned JSON file holding the commit, a
//! digest of the site (manifests, templates, modules), and per node and resource the
//! desired state, a digest of it, the digest of the state read, and the planned change.
//! It also keeps the plan exactly as `plan` rendered it, so `tandem show FILE` prints
//! what the reviewer saw.
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

use crate::apply::{change_summary, Expect, Job};
use crate::catalog::Catalog;
use crate::node::{DatacenterName, NodeName};
use crate::plan::render::{self, NodeResult};
use crate::resource::ResourceId;

/// The `format` field: what this file is.
pub const FORMAT: &str = "tandem-plan";
/// The format version this tandem writes and reads.
pub const VERSION: u32 = 1;
/// The site folders whose files the site digest covers.
pub const DIGESTED: [&str; 3] = ["manifests", "templates", "modules"];

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
    #[error("cannot digest the site file `{path}`: {error}")]
    Digest {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the site changed since the plan was made (site digest `{planned}`, now `{now}`{}); refusing the whole plan: make a new one with `tandem plan --out`", commits(.planned_commit, .now_commit))]
    SiteChanged {
        planned: String,
        now: String,
        planned_commit: Option<String>,
        now_commit: Option<String>,
    },
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
    /// The plan as `tandem plan` printed it (text) and as `--format json` gives it.
    pub rendered: Rendered,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendered {
    pub text: String,
    pub json: serde_json::Value,
}

/// One node: `planned` with its resources, or why it could not be planned (such a node
/// is not applied from this plan).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedNode {
    pub node: NodeName,
    pub datacenter: DatacenterName,
    /// `planned`, `unreachable`, `hostkey` or `failed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub resources: Vec<SavedResource>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedResource {
    /// `file:/etc/nginx/nginx.conf`
    pub id: String,
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
        site_root: &Path,
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
            commit: site_commit(site_root),
            site_digest: site_digest(site_root)?,
            nodes,
            rendered: Rendered {
                text: render::text(results),
                json: render::json(results),
            },
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
        let now = site_digest(site_root)?;
        if now == self.site_digest {
            return Ok(());
        }
        Err(SavedPlanError::SiteChanged {
            planned: self.site_digest.clone(),
            now,
            planned_commit: self.commit.clone(),
            now_commit: site_commit(site_root),
        })
    }

    /// The nodes this plan applies to (those it could plan).
    pub fn planned_nodes(&self) -> impl Iterator<Item = &SavedNode> {
        self.nodes.iter().filter(|n| n.status == "planned")
    }

    /// The nodes that could not be planned: applying this plan leaves them alone.
    pub fn unplanned_nodes(&self) -> impl Iterator<Item = &SavedNode> {
        self.nodes.iter().filter(|n| n.status != "planned")
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
                let id = r.id.to_string();
                let Some(s) = saved.resources.iter().find(|s| s.id == id) else {
                    return Err(changed(id, "the resource is not in the plan"));
                };
                if desired_digest(&desired_value(r)) != s.desired_digest {
                    return Err(changed(id, "its desired state differs"));
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
                .find(|s| catalog.resources.iter().all(|r| r.id.to_string() != s.id))
            {
                return Err(changed(
                    gone.id.clone(),
                    "the resource is no longer in the catalog",
                ));
            }
            jobs.push(Job {
                catalog: catalog.clone(),
                expect: Some(expect),
            });
        }
        Ok(jobs)
    }
}

fn saved_node(catalog: &Catalog, result: &NodeResult) -> SavedNode {
    let (status, error) = match result {
        NodeResult::Planned(_) => ("planned", None),
        NodeResult::Unreachable { error, .. } => ("unreachable", Some(error.clone())),
        NodeResult::HostKey { error, .. } => ("hostkey", Some(error.clone())),
        NodeResult::Failed { error, .. } => ("failed", Some(error.clone())),
    };
    let resources = match result {
        NodeResult::Planned(plan) => catalog
            .resources
            .iter()
            .map(|r| {
                let desired = desired_value(r);
                SavedResource {
                    id: r.id.to_string(),
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
        status: status.into(),
        error,
        resources,
    }
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

/// SHA-256 over every file below the site's `manifests/`, `templates/` and `modules/`:
/// relative path, length and content, in path order. Missing folders count as empty.
pub fn site_digest(site_root: &Path) -> Result<String, SavedPlanError> {
    let mut files = Vec::new();
    for top in DIGESTED {
        collect(&site_root.join(top), &mut files)?;
    }
    files.sort();
    let mut hash = Sha256::new();
    for path in files {
        let bytes = std::fs::read(&path).map_err(|error| SavedPlanError::Digest {
            path: path.clone(),
            error,
        })?;
        let rel = path.strip_prefix(site_root).unwrap_or(&path);
        hash.update(rel.to_string_lossy().as_bytes());
        hash.update([0]);
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
    }
    Ok(hex::encode(hash.finalize()))
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), SavedPlanError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(SavedPlanError::Digest {
                path: dir.to_path_buf(),
                error,
            })
        }
    };
    for entry in entries {
        let entry = entry.map_err(|error| SavedPlanError::Digest {
            path: dir.to_path_buf(),
            error,
        })?;
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

/// `git rev-parse HEAD` of the site, when it is a git repository.
pub fn site_commit(site_root: &Path) -> Option<String> {
    std::process::Command::new("git")
        .arg("-C")
        .arg(site_root)
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

#[cfg(test)]
#[path = "saved_tests.rs"]
mod tests;
