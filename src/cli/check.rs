//! `tandem check`: load the site, compile every node's catalog, check parity; list every
//! error found (each once, with the nodes it affects) and exit 0 or 1. Touches no host
//! and, by default, no network: the nodes are the static ones (`manifests/nodes.toml`,
//! or the `--inventory` file), every role is also compiled in every datacenter (see
//! `catalog::parity`), and cloud discovery runs only with `--discover`.
//!
//! Without the age identity, everything but the secret values is checked: the secrets
//! file lists its names in clear, templates get placeholders for those, and a name it
//! does not list is still an error. Nothing is written to the site (`check` does not
//! record secret-bearing files in the ledger).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::catalog::{parity, Catalog, CompileError, Compiler};
use crate::cli::{Format, Global};
use crate::exit::Status;
use crate::manifest::Site;
use crate::node::Node;
use crate::resource::ResourceId;
use crate::secret::SecretStore;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also check the nodes that cloud discovery lists (calls the clouds' APIs)
    #[arg(long)]
    pub discover: bool,
}

/// What `check` found, as `--format json` prints it.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub ok: bool,
    pub nodes: usize,
    pub resources: usize,
    /// Whether secret values were decrypted; when not, `secret_names` names were
    /// checked against the secrets file's clear list instead.
    pub secrets_decrypted: bool,
    pub secret_names: usize,
    pub errors: Vec<Problem>,
}

#[derive(Debug, Serialize)]
pub struct Problem {
    pub message: String,
    /// The nodes whose catalog hit this error (empty for site-wide errors).
    pub nodes: Vec<String>,
}

impl Problem {
    fn site_wide(message: impl ToString) -> Problem {
        Problem {
            message: message.to_string(),
            nodes: Vec::new(),
        }
    }
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<Status> {
    let report = check(global, &args).await;
    match global.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => {
            for problem in &report.errors {
                if problem.nodes.is_empty() {
                    eprintln!("error: {}", problem.message);
                } else {
                    eprintln!(
                        "error: {} (nodes: {})",
                        problem.message,
                        problem.nodes.join(", ")
                    );
                }
            }
            if !report.secrets_decrypted {
                println!(
                    "secrets not decrypted: no identity; {} secret names checked",
                    report.secret_names
                );
            }
            if report.ok {
                println!(
                    "ok: {} nodes, {} resources, parity holds",
                    report.nodes, report.resources
                );
            } else {
                eprintln!("check failed: {} errors", report.errors.len());
            }
        }
    }
    Ok(if report.ok { Status::Ok } else { Status::Error })
}

/// Runs every check on the site named by `global`.
pub async fn check(global: &Global, args: &Args) -> Report {
    let mut report = Report {
        secrets_decrypted: true,
        ..Report::default()
    };
    let site = match Site::load(&global.site) {
        Ok(site) => site,
        Err(err) => {
            report.errors = err.flatten().into_iter().map(Problem::site_wide).collect();
            return report;
        }
    };
    let secrets = match SecretStore::load(&site.root) {
        Ok(secrets) => secrets,
        Err(err) => {
            report.errors.push(Problem::site_wide(err));
            return report;
        }
    };
    if secrets.locked().is_some() {
        report.secrets_decrypted = false;
        report.secret_names = secrets.locked_names().map_or(0, |n| n.len());
    }
    let compiler = match Compiler::with_secrets(&site, Arc::new(secrets.with_placeholders()), false)
    {
        Ok(compiler) => compiler,
        Err(err) => {
            report
                .errors
                .extend(err.flatten().into_iter().map(Problem::site_wide));
            return report;
        }
    };
    let nodes = match nodes(global, &site, args.discover, &mut report).await {
        Some(nodes) => nodes,
        None => return report,
    };
    let mut seen = BTreeMap::new();
    for node in &nodes {
        if let Some(first) = seen.insert(node.name.as_str(), node) {
            report.errors.push(Problem {
                message: format!(
                    "node name `{}` is used twice (datacenters `{}` and `{}`)",
                    node.name, first.datacenter, node.datacenter
                ),
                nodes: vec![node.name.to_string()],
            });
        }
    }
    // Each catalog is counted, compared and dropped as soon as it is compiled (see
    // `parity::Streaming`): memory stays flat in the number of nodes. The nodes are
    // shared out among one thread per core, each with its own share of the check;
    // the shares are merged in node order, so the report is the same as one thread's.
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, nodes.len().max(1));
    let share = nodes.len().div_ceil(workers).max(1);
    let parts: Vec<Share<'_, '_>> = std::thread::scope(|scope| {
        let handles: Vec<_> = nodes
            .chunks(share)
            .map(|mine| {
                let (compiler, site, all) = (&compiler, &site, &nodes);
                scope.spawn(move || check_share(compiler, site, all, mine))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut parts = parts.into_iter();
    let Some(first) = parts.next() else {
        return report;
    };
    let Share {
        mut streaming,
        mut errors,
        mut overlays,
        resources,
    } = first;
    report.resources = resources;
    for part in parts {
        streaming = streaming.merge(part.streaming);
        errors.merge(part.errors);
        overlays.merge(&part.overlays);
        report.resources += part.resources;
    }
    report.nodes = nodes.len();
    let parity = streaming.finish(&mut |c| overlays.saw(c));
    for failure in parity.failures {
        let label = if failure.stand_in {
            format!(
                "{}@{} (no nodes yet)",
                failure.node.role, failure.node.datacenter
            )
        } else {
            format!(
                "{} (compiled as if in `{}`)",
                failure.node.name, failure.node.datacenter
            )
        };
        errors.add(failure.error, label);
    }
    report.errors.extend(errors.into_problems());
    overlays.report(&mut report);
    report
        .errors
        .extend(parity.errors.into_iter().map(|e| Problem {
            message: e.to_string(),
            nodes: vec![e.node.to_string()],
        }));
    for problem in &mut report.errors {
        problem.message = compiler.secrets().redact(&problem.message);
    }
    report.ok = report.errors.is_empty();
    report
}

/// One thread's share of `check`: its nodes compiled and compared in every datacenter.
struct Share<'c, 's> {
    streaming: parity::Streaming<'c, 's>,
    errors: Errors,
    overlays: OverlayKeys,
    resources: usize,
}

fn check_share<'c, 's>(
    compiler: &'c Compiler<'s>,
    site: &Site,
    all: &[Node],
    mine: &[Node],
) -> Share<'c, 's> {
    let mut share = Share {
        streaming: parity::Streaming::new(compiler, all),
        errors: Errors::default(),
        overlays: OverlayKeys::new(site),
        resources: 0,
    };
    for node in mine {
        match compiler.compile(node) {
            Ok(catalog) => {
                share.resources += catalog.resources.len();
                share.overlays.saw(&catalog);
                // Every role in every datacenter, compared for what the datacenter changes.
                let overlays = &mut share.overlays;
                share.streaming.own(&catalog, &mut |c| overlays.saw(c));
            }
            Err(err) => share.errors.add(err, node.name.to_string()),
        }
    }
    share
}

/// The nodes to check: static ones (the `--inventory` file when given, else the site's
/// `manifests/nodes.toml`), or with `discover` what inventory resolution lists. `None`
/// when there are none to check because of an error (already in `report`).
async fn nodes(
    global: &Global,
    site: &Site,
    discover: bool,
    report: &mut Report,
) -> Option<Vec<Node>> {
    if discover {
        return discovered(global, site, report).await;
    }
    match &global.inventory {
        Some(path) => match crate::manifest::nodes::load(path) {
            Ok(nodes) => Some(nodes),
            Err(err) => {
                report.errors.push(Problem::site_wide(err));
                None
            }
        },
        None => Some(site.nodes.clone()),
    }
}

/// `check --discover`: the one place `check` calls inventory resolution (and so the
/// network), kept apart so that its signature can move without touching the rest.
async fn discovered(global: &Global, site: &Site, report: &mut Report) -> Option<Vec<Node>> {
    match crate::inventory::resolve(site, global.inventory.as_deref()).await {
        Ok(inventory) => {
            report
                .errors
                .extend(inventory.failures.iter().map(Problem::site_wide));
            Some(inventory.nodes)
        }
        Err(err) => {
            report.errors.push(Problem::site_wide(err));
            None
        }
    }
}

/// The resource ids the overlays declare, each with whether some catalog has it. A
/// declared key that matches no resource anywhere is most likely a typo that would let
/// the real difference through.
struct OverlayKeys {
    /// (overlay file, line, id, found)
    keys: Vec<(std::path::PathBuf, usize, ResourceId, bool)>,
}

impl OverlayKeys {
    fn new(site: &Site) -> OverlayKeys {
        let keys = [&site.standby, &site.primary]
            .into_iter()
            .flatten()
            .flat_map(|overlay| {
                overlay
                    .may_change_lines
                    .iter()
                    .map(|(id, line)| (overlay.file.clone(), *line, id.clone(), false))
            })
            .collect();
        OverlayKeys { keys }
    }

    fn saw(&mut self, catalog: &Catalog) {
        for (_, _, id, found) in self.keys.iter_mut().filter(|k| !k.3) {
            *found = catalog.resource(id).is_some();
        }
    }

    /// What another share saw counts as seen.
    fn merge(&mut self, other: &OverlayKeys) {
        for (mine, theirs) in self.keys.iter_mut().zip(&other.keys) {
            mine.3 |= theirs.3;
        }
    }

    /// Only meaningful when every catalog compiled: a failed one may be where the
    /// resource lives.
    fn report(&self, report: &mut Report) {
        if !report.errors.is_empty() {
            return;
        }
        for (file, line, id, _) in self.keys.iter().filter(|k| !k.3) {
            report.errors.push(Problem::site_wide(format!(
                "{}:{line}: overlay declares `{id}`, which no catalog has",
                file.display()
            )));
        }
    }
}

/// Compile errors, each distinct message once with the nodes it affects, in the order
/// first seen.
#[derive(Default)]
struct Errors {
    order: Vec<String>,
    affected: BTreeMap<String, Vec<String>>,
}

impl Errors {
    fn add(&mut self, err: CompileError, node: String) {
        for error in CompileError::flatten(err) {
            let message = error.to_string();
            let entry = self.affected.entry(message.clone()).or_default();
            if entry.is_empty() {
                self.order.push(message);
            }
            if !entry.contains(&node) {
                entry.push(node.clone());
            }
        }
    }

    /// Another share's errors, after this one's (shares are in node order).
    fn merge(&mut self, other: Errors) {
        let Errors {
            order,
            mut affected,
        } = other;
        for message in order {
            let nodes = affected.remove(&message).unwrap_or_default();
            let entry = self.affected.entry(message.clone()).or_default();
            if entry.is_empty() {
                self.order.push(message);
            }
            for node in nodes {
                if !entry.contains(&node) {
                    entry.push(node);
                }
            }
        }
    }

    fn into_problems(mut self) -> Vec<Problem> {
        self.order
            .into_iter()
            .map(|message| {
                let nodes = self.affected.remove(&message).unwrap_or_default();
                Problem { message, nodes }
            })
            .collect()
    }
}
