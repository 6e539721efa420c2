//! `tandem inventory`: list the nodes of every datacenter with role, address and state,
//! then the machines that were listed but are not nodes, then the datacenters that could
//! not be discovered. A failed datacenter makes the exit status non-zero while the
//! others are still shown.

use std::io::Write;

use anyhow::Context;
use serde_json::json;

use crate::cli::{Format, Global};
use crate::exit::Status;
use crate::inventory::{self, DiscoverOptions, Inventory};
use crate::manifest::Site;
use crate::node::Node;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bypass the inventory cache
    #[arg(long)]
    pub refresh: bool,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<Status> {
    let site = Site::load(&global.site).context("cannot load the site")?;
    let mut options = DiscoverOptions::for_site(&site);
    options.refresh = args.refresh;
    let inventory = inventory::resolve_with(&site, global.inventory.as_deref(), options).await?;
    let mut out = std::io::stdout().lock();
    match global.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &as_json(&inventory))?;
            writeln!(out)?;
        }
        Format::Text => write_text(&mut out, &inventory)?,
    }
    for failure in &inventory.failures {
        eprintln!("error: {failure}");
    }
    if inventory.failures.is_empty() {
        return Ok(Status::Ok);
    }
    let names: Vec<String> = inventory
        .failed_datacenters()
        .iter()
        .map(|dc| format!("`{dc}`"))
        .collect();
    eprintln!("error: not discovered: {}", names.join(", "));
    Ok(Status::Error)
}

fn as_json(inventory: &Inventory) -> serde_json::Value {
    json!({
        "nodes": inventory.nodes.iter().map(|node| json!({
            "name": node.name,
            "datacenter": node.datacenter,
            "role": node.role,
            "address": node.address,
            "port": node.port,
            "state": state(node),
            "facts": node.facts,
        })).collect::<Vec<_>>(),
        "skipped": inventory.skipped,
        "failures": inventory.failures.iter().map(|failure| json!({
            "datacenter": failure.datacenter(),
            "error": failure.to_string(),
        })).collect::<Vec<_>>(),
    })
}

fn state(node: &Node) -> &str {
    node.facts.get("state").map(String::as_str).unwrap_or("-")
}

/// Provider facts worth a column: where the node is and what it is.
fn facts(node: &Node) -> String {
    ["provider", "region", "instance_id", "instance_type"]
        .iter()
        .filter_map(|key| node.facts.get(*key))
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
}

fn write_text(out: &mut impl Write, inventory: &Inventory) -> std::io::Result<()> {
    let header = ["NAME", "DATACENTER", "ROLE", "ADDRESS", "STATE", "FACTS"];
    let rows: Vec<[String; 6]> = inventory
        .nodes
        .iter()
        .map(|node| {
            [
                node.name.to_string(),
                node.datacenter.to_string(),
                node.role.to_string(),
                node.address.clone(),
                state(node).to_string(),
                facts(node),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |out: &mut dyn Write, cells: [&str; 6]| -> std::io::Result<()> {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, header)?;
    for row in &rows {
        line(out, row.each_ref().map(String::as_str))?;
    }
    writeln!(out, "{} nodes", rows.len())?;
    for skipped in &inventory.skipped {
        writeln!(
            out,
            "skipped `{}` in `{}`: {}",
            skipped.id, skipped.datacenter, skipped.reason
        )?;
    }
    Ok(())
}
