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
            _ => "node variables of the inventory".to_string(),
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
