//! `tandem check`: load the site, compile every node's catalog, check parity; list every
//! error found (each once, with the nodes it affects) and exit 0 or 1. Touches no host.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::catalog::{parity, Catalog, CompileError, Compiler};
use crate::cli::{Format, Global};
use crate::exit::Status;
use crate::manifest::Site;
use crate::node::{Node, NodeName};

#[derive(Debug, clap::Args)]
pub struct Args {}

/// What `check` found, as `--format json` prints it.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub ok: bool,
    pub nodes: usize,
    pub resources: usize,
    pub errors: Vec<Problem>,
}

#[derive(Debug, Serialize)]
pub struct Problem {
    pub message: String,
    /// The nodes whose catalog hit this error (empty for site-wide errors).
    pub nodes: Vec<String>,
}

pub async fn run(global: &Global, _args: Args) -> anyhow::Result<Status> {
    let report = check(global).await;
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
pub async fn check(global: &Global) -> Report {
    let mut report = Report::default();
    let site = match Site::load(&global.site) {
        Ok(site) => site,
        Err(err) => {
            report.errors = err
                .flatten()
                .into_iter()
                .map(|e| Problem {
                    message: e.to_string(),
                    nodes: Vec::new(),
                })
                .collect();
            return report;
        }
    };
    let inventory = match crate::inventory::resolve(&site, global.inventory.as_deref()).await {
        Ok(inventory) => inventory,
        Err(err) => {
            report.errors.push(Problem {
                message: err.to_string(),
                nodes: Vec::new(),
            });
            return report;
        }
    };
    for failure in &inventory.failures {
        report.errors.push(Problem {
            message: failure.to_string(),
            nodes: Vec::new(),
        });
    }
    let compiler = match Compiler::new(&site) {
        Ok(compiler) => compiler,
        Err(err) => {
            report
                .errors
                .extend(err.flatten().into_iter().map(|e| Problem {
                    message: e.to_string(),
                    nodes: Vec::new(),
                }));
            return report;
        }
    };
    let mut seen = BTreeMap::new();
    for node in &inventory.nodes {
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
    let (mut catalogs, by_message) = compile_all(&compiler, &inventory.nodes);
    report.nodes = inventory.nodes.len();
    report.resources = catalogs.iter().map(|c| c.resources.len()).sum();
    report.errors.extend(by_message);
    // A role with no node yet in some datacenter is still compiled there, as a
    // stand-in node without variables, so that its templates are checked and parity
    // is verified before the first node exists.
    let stand_ins: Vec<Node> = site
        .roles
        .keys()
        .flat_map(|role| site.datacenters.iter().map(move |dc| (role, &dc.name)))
        .filter(|(role, dc)| {
            !inventory
                .nodes
                .iter()
                .any(|n| &n.role == *role && &n.datacenter == *dc)
        })
        .map(|(role, dc)| Node {
            name: NodeName::stand_in(role, dc),
            datacenter: dc.clone(),
            role: role.clone(),
            address: String::new(),
            port: 22,
            user: None,
            facts: BTreeMap::new(),
            vars: BTreeMap::new(),
        })
        .collect();
    let (stand_in_catalogs, stand_in_errors) = compile_all(&compiler, &stand_ins);
    catalogs.extend(stand_in_catalogs);
    report.errors.extend(stand_in_errors);
    // A declared key that matches no resource anywhere is most likely a typo that
    // would let the real difference through. Only meaningful when every catalog
    // compiled: a failed one may be where the resource lives.
    let all_compiled = report.errors.is_empty();
    for overlay in [&site.standby, &site.primary]
        .into_iter()
        .flatten()
        .filter(|_| all_compiled)
    {
        for (id, line) in &overlay.may_change_lines {
            if !catalogs.iter().any(|c| c.resource(id).is_some()) {
                report.errors.push(Problem {
                    message: format!(
                        "{}:{line}: overlay declares `{id}`, which no catalog has",
                        overlay.file.display()
                    ),
                    nodes: Vec::new(),
                });
            }
        }
    }
    report.errors.extend(
        parity::check(&site, &catalogs)
            .into_iter()
            .map(|e| Problem {
                message: e.to_string(),
                nodes: e.nodes.iter().map(ToString::to_string).collect(),
            }),
    );
    for problem in &mut report.errors {
        problem.message = compiler.secrets().redact(&problem.message);
    }
    report.ok = report.errors.is_empty();
    report
}

/// Compiles every node; each distinct error once, with the nodes it affects.
fn compile_all(
    compiler: &Compiler<'_>,
    nodes: &[crate::node::Node],
) -> (Vec<Catalog>, Vec<Problem>) {
    let mut catalogs = Vec::with_capacity(nodes.len());
    let mut order: Vec<String> = Vec::new();
    let mut affected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for node in nodes {
        match compiler.compile(node) {
            Ok(catalog) => catalogs.push(catalog),
            Err(err) => {
                for error in CompileError::flatten(err) {
                    let message = error.to_string();
                    let entry = affected.entry(message.clone()).or_default();
                    if entry.is_empty() {
                        order.push(message);
                    }
                    if !entry.iter().any(|n| n == node.name.as_str()) {
                        entry.push(node.name.to_string());
                    }
                }
            }
        }
    }
    let problems = order
        .into_iter()
        .map(|message| {
            let nodes = affected.remove(&message).unwrap_or_default();
            Problem { message, nodes }
        })
        .collect();
    (catalogs, problems)
}
