//! `tandem drift`: audit reports of the fleet against git and of the two clouds against
//! each other. Read-only: nothing here can reach apply. Every selected node is read
//! with one connection and one probe command (`probe`); each resource gets a status
//! (`assess`: in sync, drifted, pending, missing, or why it was not assessed), roles are
//! compared between datacenters (`parity`), findings are kept in the run history with
//! their first-seen time and acknowledgements (`store::findings`), and the [`Report`]
//! renders as text, JSON, HTML or JUnit XML.
//!
//! For the daemon: [`drift`] produces the report from a [`Workspace`] in one call, and
//! [`Format::render`] turns it into any format (`/drift` serves `Html` and `Json`).

pub mod assess;
pub mod html;
pub mod junit;
pub mod parity;
pub mod probe;
pub mod report;
pub mod text;

use std::collections::HashMap;

pub use report::{Report, Status, SCHEMA_VERSION};

use crate::fact::applied::Digester;
use crate::path::RemotePath;
use crate::run::{RunError, Workspace};
use crate::store::StoreError;
use probe::{Read, ReadOptions};
use report::{Ack, Coverage, DatacenterCoverage, Outcome, Summary};

/// What a drift run is asked to do.
#[derive(Debug, Clone)]
pub struct DriftRequest {
    /// Node names, globs, `@role` or `dc:NAME`; all nodes when `None`.
    pub on: Option<String>,
    /// Nodes read at once.
    pub parallel: usize,
    /// Keep findings in the run history (first seen, count) and apply acknowledgements.
    pub history: bool,
}

impl Default for DriftRequest {
    fn default() -> Self {
        DriftRequest {
            on: None,
            parallel: 50,
            history: true,
        }
    }
}

/// The report's formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text { verbose: bool },
    Json,
    Html,
    Junit,
}

impl Format {
    pub fn render(self, report: &Report) -> String {
        match self {
            Format::Text { verbose } => text::render(report, verbose),
            Format::Json => report.to_json(),
            Format::Html => html::render(report),
            Format::Junit => junit::render(report),
        }
    }
}

/// Reads the selected nodes of `ws` and reports their drift. An error here comes before
/// any node was read (exit 1); everything after is in the report.
pub async fn drift(ws: &Workspace, request: &DriftRequest) -> Result<Report, RunError> {
    let targets = ws.targets(request.on.as_deref()).await?;
    let store = if request.history {
        Some(ws.store()?)
    } else {
        None
    };
    let connector = ws.settings.connector()?;
    let options = ReadOptions {
        parallel: request.parallel,
        command_timeout: ws.settings.connection.command_timeout,
        // A literal absolute path: parsing cannot fail.
        state_dir: RemotePath::parse("/var/lib/tandem").unwrap_or_else(|_| unreachable!()),
        secrets: ws.secrets.clone(),
    };
    let generated_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let reads = probe::read_nodes(&targets.catalogs, connector, &options).await;
    let digester = Digester::new(&ws.secrets);
    let mut nodes = Vec::with_capacity(reads.len());
    let mut keys = Vec::new();
    for (n, (catalog, read)) in targets.catalogs.iter().zip(&reads).enumerate() {
        let assessed = assess::assess(catalog, read, &digester);
        keys.extend(assessed.keys.into_iter().map(|(r, k)| (n, r, k)));
        nodes.push(assessed.report);
    }
    if let Some(store) = &store {
        history(store, &mut nodes, &keys).map_err(RunError::from)?;
    }
    let subjects: Vec<parity::Subject<'_>> = targets
        .catalogs
        .iter()
        .zip(&reads)
        .zip(&nodes)
        .filter_map(|((catalog, read), report)| match read {
            Read::Read { facts, plan, .. } => Some(parity::Subject {
                catalog,
                facts,
                read: &plan.read,
                report,
            }),
            _ => None,
        })
        .collect();
    let parity = parity::breaks(&ws.site, &subjects);
    let coverage = coverage(ws, &targets, &nodes);
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        tandem_version: env!("CARGO_PKG_VERSION"),
        generated_at,
        site: ws.site.name.clone(),
        commit: ws.source.commit.clone(),
        dirty: ws.source.dirty,
        selector: request.on.clone(),
        coverage,
        summary: Summary::default(),
        result: Outcome {
            passed: false,
            exit_code: 1,
            reasons: Vec::new(),
        },
        nodes,
        parity,
    };
    report.conclude();
    Ok(report)
}

/// Records every finding and fills in "drifted since", the count and the
/// acknowledgement in force, if any.
fn history(
    store: &crate::store::Store,
    nodes: &mut [report::NodeReport],
    keys: &[(usize, usize, crate::store::FindingKey)],
) -> Result<(), StoreError> {
    let plain: Vec<_> = keys.iter().map(|(_, _, k)| k.clone()).collect();
    let seen = store.record_findings(&plain)?;
    for ((n, r, _), seen) in keys.iter().zip(seen) {
        let finding = &mut nodes[*n].resources[*r];
        // A resource's earliest attribute finding is when it started to drift.
        if finding.since.as_ref().is_none_or(|s| seen.first_seen < *s) {
            finding.since = Some(seen.first_seen);
        }
        finding.seen = Some(finding.seen.unwrap_or(0).max(seen.count));
    }
    let mut acks = HashMap::new();
    for ack in store.active_acknowledgements()? {
        // Later acknowledgements win.
        acks.insert((ack.node.clone(), ack.resource.clone()), ack);
    }
    for node in nodes.iter_mut() {
        for f in node.resources.iter_mut().filter(|f| f.status.is_fault()) {
            if let Some(ack) = acks.get(&(node.node.clone(), f.resource.clone())) {
                f.acknowledged = Some(Ack {
                    by: ack.by.clone(),
                    reason: ack.reason.clone(),
                    until: ack.until.clone(),
                });
            }
        }
    }
    Ok(())
}

fn coverage(
    ws: &Workspace,
    targets: &crate::run::Targets,
    nodes: &[report::NodeReport],
) -> Coverage {
    let assessed = nodes.iter().filter(|n| n.assessed).count();
    let datacenters = ws
        .site
        .datacenters
        .iter()
        .map(|dc| {
            let error = targets
                .failures
                .iter()
                .find(|f| f.datacenter() == Some(&dc.name))
                .map(ToString::to_string);
            let of_dc = nodes.iter().filter(|n| n.datacenter == dc.name.as_str());
            DatacenterCoverage {
                name: dc.name.to_string(),
                discovered: error.is_none(),
                error,
                expected: of_dc.clone().count(),
                assessed: of_dc.filter(|n| n.assessed).count(),
            }
        })
        .collect();
    Coverage {
        expected: nodes.len(),
        assessed,
        not_assessed: nodes.len() - assessed,
        datacenters,
    }
}

#[cfg(test)]
mod tests;
