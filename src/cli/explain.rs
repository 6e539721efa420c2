//! `tandem explain NODE VAR`: a variable's value for a node and every layer (module
//! defaults, site, role, datacenter, overlay, node) that set or overrode it.

use anyhow::Context as _;

use crate::catalog::explain;
use crate::cli::{Format, Global};
use crate::exit::Status;
use crate::manifest::Site;
use crate::secret::SecretStore;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node
    pub node: String,
    /// The variable
    pub var: String,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<Status> {
    let site = Site::load(&global.site).context("cannot load the site")?;
    let node = super::catalog::find_node(global, &site, &args.node).await?;
    let secrets = SecretStore::load(&site.root).context("cannot load secrets")?;
    let explanation = explain(&site, &node, &args.var);
    let show = |value: &serde_json::Value| secrets.redact(&value.to_string());
    if global.format == Format::Json {
        println!(
            "{}",
            secrets.redact(&serde_json::to_string_pretty(&explanation)?)
        );
        return Ok(if explanation.value.is_some() {
            Status::Ok
        } else {
            Status::Error
        });
    }
    let Some(value) = &explanation.value else {
        eprintln!(
            "error: variable `{}` is not set for node `{}` by any layer",
            args.var, args.node
        );
        return Ok(Status::Error);
    };
    println!("{} = {}", args.var, show(value));
    let last = explanation.layers.len().saturating_sub(1);
    for (i, setting) in explanation.layers.iter().enumerate() {
        let place = match (&setting.file, setting.line) {
            (Some(file), Some(line)) => {
                let file = file.strip_prefix(&site.root).unwrap_or(file);
                format!("{}:{line}", file.display())
            }
            _ => node_origin(global, &site, &args.node, &args.var),
        };
        let verdict = if i == last { "wins" } else { "overridden" };
        println!(
            "  {:<24} {:<44} {} ({verdict})",
            setting.layer,
            place,
            show(&setting.value)
        );
    }
    Ok(Status::Ok)
}

/// Where the node layer comes from: the `--inventory` file or `manifests/nodes.toml`,
/// with the line of the variable inside the node's `[[node]]` entry when found.
fn node_origin(global: &Global, site: &Site, node: &str, var: &str) -> String {
    let path = global
        .inventory
        .clone()
        .unwrap_or_else(|| site.root.join("manifests/nodes.toml"));
    let shown = path
        .strip_prefix(&site.root)
        .unwrap_or(&path)
        .display()
        .to_string();
    let Ok(text) = std::fs::read_to_string(&path) else {
        return shown;
    };
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let entry = lines.iter().position(|l| {
        l.strip_prefix("name")
            .map(|rest| rest.trim_start().trim_start_matches('=').trim())
            .is_some_and(|value| value.trim_matches('"') == node)
    });
    let found = entry.and_then(|start| {
        lines[start..]
            .iter()
            .take_while(|l| **l != "[[node]]")
            .position(|l| {
                l.strip_prefix(var)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
            .map(|offset| start + offset + 1)
    });
    match found {
        Some(line) => format!("{shown}:{line}"),
        None => shown,
    }
}
