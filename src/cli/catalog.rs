//! `tandem catalog NODE`: a node's resources in apply order with their attributes and
//! rendered file content. Secret-bearing content shows only its digest and the
//! fingerprints of the secrets in it; `--format json` prints the same, as JSON.

use std::fmt::Write as _;

use anyhow::Context as _;
use serde_json::Value;

use crate::catalog::{Catalog, Compiler};
use crate::cli::{Format, Global};
use crate::exit::Status;
use crate::manifest::Site;
use crate::node::Node;
use crate::resource::Spec;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node
    pub node: String,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<Status> {
    let site = Site::load(&global.site).context("cannot load the site")?;
    let node = find_node(global, &site, &args.node).await?;
    // A read command: it does not record secret-bearing files in the ledger.
    let secrets = crate::secret::SecretStore::load(&site.root)?;
    let compiler = Compiler::with_secrets(&site, std::sync::Arc::new(secrets), false)?;
    let catalog = compiler.compile(&node)?;
    let out = match global.format {
        Format::Json => serde_json::to_string_pretty(&catalog)?,
        Format::Text => render_text(&site, &catalog),
    };
    // Sensitive content is already withheld; this guards what a template might have
    // copied from a secret into a place nobody expected.
    println!("{}", compiler.secrets().redact(&out));
    Ok(Status::Ok)
}

/// The node named `name` among the nodes commands operate on: the `--inventory` list
/// when given; else a static node of the site, found without asking any cloud (so
/// `catalog` and `explain` of a static node work offline); else discovery.
pub(crate) async fn find_node(global: &Global, site: &Site, name: &str) -> anyhow::Result<Node> {
    if global.inventory.is_none() {
        if let Some(node) = site.nodes.iter().find(|n| n.name.as_str() == name) {
            return Ok(node.clone());
        }
    }
    let inventory = crate::inventory::resolve(site, global.inventory.as_deref())
        .await
        .context("cannot list the nodes")?;
    inventory
        .nodes
        .into_iter()
        .find(|n| n.name.as_str() == name)
        .with_context(|| format!("unknown node `{name}`"))
}

/// The text form: one block per resource, attributes indented, content as `|` lines.
pub fn render_text(site: &Site, catalog: &Catalog) -> String {
    let node = &catalog.node;
    let state = match site.datacenter(&node.datacenter) {
        Some(dc) if dc.primary => "primary",
        _ => "standby",
    };
    let mut out = format!(
        "# node `{}`: role `{}`, datacenter `{}` ({state}), {} resources\n",
        node.name,
        node.role,
        node.datacenter,
        catalog.resources.len()
    );
    for resource in &catalog.resources {
        let origin = resource
            .origin
            .file
            .strip_prefix(&site.root)
            .unwrap_or(&resource.origin.file);
        let _ = writeln!(
            out,
            "\n{}  ({}:{})",
            resource.id,
            origin.display(),
            resource.origin.line
        );
        if let Ok(Value::Object(attrs)) = serde_json::to_value(&resource.spec) {
            for (key, value) in attrs {
                if matches!(key.as_str(), "type" | "content") || value.is_null() {
                    continue;
                }
                let _ = writeln!(out, "  {key}: {}", plain(&value));
            }
        }
        for (label, ids) in [("after", &resource.after), ("notify", &resource.notify)] {
            if !ids.is_empty() {
                let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
                let _ = writeln!(out, "  {label}: {}", ids.join(", "));
            }
        }
        if let Spec::File(file) = &resource.spec {
            if let Some(content) = &file.content {
                if content.is_sensitive() {
                    let markers: Vec<String> = content.secrets.iter().map(|f| f.marker()).collect();
                    let _ = writeln!(
                        out,
                        "  content: keyed digest {}, withheld: contains {}",
                        content.keyed_digest.as_deref().unwrap_or("-"),
                        markers.join(" ")
                    );
                } else {
                    let _ = writeln!(out, "  content: sha256 {}", content.sha256());
                    for line in String::from_utf8_lossy(&content.bytes).lines() {
                        let _ = writeln!(out, "    | {line}");
                    }
                }
            }
        }
    }
    out
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
