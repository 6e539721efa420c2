//! `tandem status`: which datacenter is primary and the failover epoch (as the checkout
//! says), the last promote (when, who, why: from the run history), and per datacenter
//! the nodes counted by the side and epoch THEY carry. Those counts come from a probe
//! of every node (one round trip each), not from the history: the history says what a
//! control node did, the nodes say what is true now, whoever changed them (another
//! laptop, the daemon, a stale checkout's refused run). Unreachable nodes are counted as
//! such, never guessed. Fence-pending nodes come from the history.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::apply::ApplyOptions;
use crate::exit::Status;
use crate::plan::render::NodeResult;
use crate::run::{RunError, Workspace};
use crate::store::{Failover, FencePending};

#[derive(Debug, Serialize)]
pub struct SiteStatus {
    pub site: String,
    pub primary: String,
    pub epoch: u64,
    pub commit: Option<String>,
    pub last_promote: Option<Failover>,
    pub datacenters: Vec<DatacenterStatus>,
    pub fence_pending: Vec<FencePending>,
    /// Datacenters that could not be discovered.
    pub not_discovered: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct DatacenterStatus {
    pub name: String,
    pub primary: bool,
    pub nodes: usize,
    /// `"primary epoch 2"` (or `"no state file"`) to the number of nodes.
    pub by_side_and_epoch: BTreeMap<String, usize>,
    pub unreachable: Vec<String>,
}

impl SiteStatus {
    /// 0, or 4 when a node was unreachable or a datacenter not discovered.
    pub fn exit_status(&self) -> Status {
        let unreachable = self.datacenters.iter().any(|d| !d.unreachable.is_empty());
        if unreachable || !self.not_discovered.is_empty() {
            Status::Unreachable
        } else {
            Status::Ok
        }
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "site `{}`: primary `{}`, failover epoch {} (site.toml at {})",
            self.site,
            self.primary,
            self.epoch,
            self.commit
                .as_deref()
                .map_or("no commit", |c| c.get(..12).unwrap_or(c))
        );
        match &self.last_promote {
            Some(f) => {
                let _ = writeln!(
                    out,
                    "last promote: {} by {}, `{}` -> `{}`, epoch {}, {}: {}",
                    f.started_at, f.started_by, f.from, f.to, f.epoch, f.status, f.reason
                );
            }
            None => out.push_str("last promote: none recorded in this run history\n"),
        }
        for dc in &self.datacenters {
            let role = if dc.primary { "primary" } else { "standby" };
            let counts: Vec<String> = dc
                .by_side_and_epoch
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect();
            let _ = write!(
                out,
                "{} ({role}): {} nodes: {}",
                dc.name,
                dc.nodes,
                counts.join(", ")
            );
            if !dc.unreachable.is_empty() {
                let _ = write!(out, "; unreachable: {}", dc.unreachable.join(", "));
            }
            out.push('\n');
        }
        for dc in &self.not_discovered {
            let _ = writeln!(out, "not discovered: {dc}");
        }
        if self.fence_pending.is_empty() {
            out.push_str("fence pending: none\n");
        } else {
            for f in &self.fence_pending {
                let _ = writeln!(
                    out,
                    "fence pending: `{}` ({}) since {}, promote #{} to epoch {}",
                    f.node, f.datacenter, f.since, f.failover, f.epoch
                );
            }
        }
        out
    }
}

/// Probes every node of the site and reads the history; changes nothing.
pub async fn status(ws: &Workspace, parallel: usize) -> Result<SiteStatus, RunError> {
    let targets = ws.targets(None).await?;
    let connector = ws.settings.connector()?;
    let options = ApplyOptions {
        parallel,
        command_timeout: ws.settings.connection.command_timeout,
        secrets: ws.secrets.clone(),
        ..ApplyOptions::default()
    };
    let options = super::with_applied(options, &ws.site, &ws.source);
    let results = crate::apply::plan_nodes_seen(targets.catalogs, connector, &options).await;
    let mut datacenters: Vec<DatacenterStatus> = ws
        .site
        .datacenters
        .iter()
        .map(|dc| DatacenterStatus {
            name: dc.name.to_string(),
            primary: dc.primary,
            nodes: 0,
            by_side_and_epoch: BTreeMap::new(),
            unreachable: Vec::new(),
        })
        .collect();
    for (result, seen) in &results {
        let Some(dc) = datacenters
            .iter_mut()
            .find(|d| d.name == result.datacenter().as_str())
        else {
            continue;
        };
        dc.nodes += 1;
        match (result, seen) {
            (_, Some(seen)) => {
                let key = match (&seen.side, seen.epoch) {
                    (Some(side), Some(epoch)) => format!("{side} epoch {epoch}"),
                    _ => "no state file".to_string(),
                };
                *dc.by_side_and_epoch.entry(key).or_default() += 1;
            }
            (NodeResult::Unreachable { .. } | NodeResult::HostKey { .. }, None) => {
                dc.unreachable.push(result.node().to_string());
            }
            (_, None) => {
                *dc.by_side_and_epoch.entry("not read".into()).or_default() += 1;
            }
        }
    }
    let (last_promote, fence_pending) =
        match crate::store::Store::open_existing(&ws.settings.history_path())? {
            Some(store) => (store.last_failover()?, store.fence_pending()?),
            None => (None, Vec::new()),
        };
    Ok(SiteStatus {
        site: ws.site.name.clone(),
        primary: super::primary_of(&ws.site)
            .map(ToString::to_string)
            .unwrap_or_default(),
        epoch: ws.site.epoch,
        commit: ws.source.commit.clone(),
        last_promote,
        datacenters,
        fence_pending,
        not_discovered: targets.failures.iter().map(ToString::to_string).collect(),
    })
}
