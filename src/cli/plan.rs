//! `tandem plan`: read every selected node's state (one connection and one probe each)
//! and show what would change. Exit 2 when changes are pending.

use std::path::Path;

use anyhow::Context as _;

use crate::apply::{self, ApplyOptions, Progress};
use crate::catalog::Catalog;
use crate::cli::{connect, Format, Global};
use crate::exit::Status;
use crate::manifest::Site;
use crate::plan::render::{self, NodeResult};
use crate::secret::SecretStore;
use crate::selector::Selector;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Node names, globs, `@role` or `dc:NAME`, comma separated
    #[arg(long)]
    pub on: Option<String>,
    /// Write the plan to FILE
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Nodes worked on at once
    #[arg(long, default_value_t = 50)]
    pub parallel: usize,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<Status> {
    let (catalogs, secrets) = catalogs(global, args.on.as_deref()).await?;
    let connector = connect::connector(global)?;
    let options = options(global, args.parallel, secrets);
    let results = apply::plan_nodes(catalogs.clone(), connector, &options).await;
    match global.format {
        Format::Text => print!("{}", render::text(&results)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&render::json(&results))?),
    }
    if let Some(out) = &args.out {
        write_plan(out, &global.site, &catalogs, &results)?;
    }
    Ok(apply::plan_status(&results))
}

/// The site's selected nodes, compiled. Any error here comes before a host is touched.
pub(crate) async fn catalogs(
    global: &Global,
    on: Option<&str>,
) -> anyhow::Result<(Vec<Catalog>, SecretStore)> {
    let site = Site::load(&global.site)
        .with_context(|| format!("cannot load the site at `{}`", global.site.display()))?;
    let secrets = SecretStore::load(&global.site)?;
    let inventory = crate::inventory::resolve(global, &site).await?;
    for failure in &inventory.failures {
        eprintln!("warning: {failure}");
    }
    let selector = on.map(Selector::parse).transpose()?;
    let mut catalogs = Vec::new();
    for node in inventory
        .nodes
        .iter()
        .filter(|n| selector.as_ref().is_none_or(|s| s.matches(n)))
    {
        catalogs.push(crate::catalog::compile(&site, node)?);
    }
    if catalogs.is_empty() {
        anyhow::bail!("no node matches `{}`", on.unwrap_or("*"));
    }
    Ok((catalogs, secrets))
}

pub(crate) fn options(global: &Global, parallel: usize, secrets: SecretStore) -> ApplyOptions {
    ApplyOptions {
        parallel,
        secrets: std::sync::Arc::new(secrets),
        progress: match global.format {
            Format::Text => Progress::stderr(),
            Format::Json => Progress::Quiet,
        },
        ..ApplyOptions::default()
    }
}

/// The versioned plan file: commit, and per node and resource the desired state (secret
/// content as digest and fingerprints only) and the digest of the state that was read.
fn write_plan(
    out: &Path,
    site: &Path,
    catalogs: &[Catalog],
    results: &[NodeResult],
) -> anyhow::Result<()> {
    let commit = std::process::Command::new("git")
        .arg("-C")
        .arg(site)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let nodes: Vec<serde_json::Value> = catalogs
        .iter()
        .zip(results)
        .map(|(catalog, result)| {
            let read = match result {
                NodeResult::Planned(p) => Some(&p.read),
                _ => None,
            };
            serde_json::json!({
                "node": catalog.node.name,
                "desired": catalog.resources,
                "result": result,
                "read": read,
            })
        })
        .collect();
    let plan = serde_json::json!({ "version": 1, "commit": commit, "nodes": nodes });
    let text = serde_json::to_string_pretty(&plan)?;
    std::fs::write(out, text)
        .with_context(|| format!("cannot write the plan to `{}`", out.display()))
}
