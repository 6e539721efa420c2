//! `tandem apply`: converge the selected nodes, in parallel, each under its node lock,
//! and report per node. Exit codes: see `crate::apply::exit_status`.

use std::fmt::Write as _;

use crate::apply::{self, NodeReport, Outcome, StepStatus};
use crate::cli::{connect, plan, Format, Global};
use crate::exit::Status;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A saved plan to apply exactly
    pub plan: Option<std::path::PathBuf>,
    /// Node names, globs, `@role` or `dc:NAME`, comma separated
    #[arg(long)]
    pub on: Option<String>,
    /// Nodes worked on at once
    #[arg(long, default_value_t = 50)]
    pub parallel: usize,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<Status> {
    if let Some(saved) = &args.plan {
        anyhow::bail!(
            "applying a saved plan (`{}`) is not built yet; run `tandem apply` without it",
            saved.display()
        );
    }
    let (catalogs, secrets) = plan::catalogs(global, args.on.as_deref()).await?;
    let connector = connect::connector(global)?;
    let options = plan::options(global, args.parallel, secrets);
    let reports = apply::apply_nodes(catalogs, connector, &options).await;
    match global.format {
        Format::Text => print!("{}", text(&reports)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&reports)?),
    }
    Ok(apply::exit_status(&reports))
}

fn text(reports: &[NodeReport]) -> String {
    let mut out = String::new();
    let mut counts = std::collections::BTreeMap::new();
    for r in reports {
        *counts
            .entry(format!("{:?}", r.outcome).to_lowercase())
            .or_insert(0) += 1;
        let _ = write!(out, "{} ({}): {:?}", r.node, r.datacenter, r.outcome);
        if let Some(err) = &r.error {
            let _ = write!(out, ": {err}");
        }
        out.push('\n');
        for res in &r.resources {
            let mark = match res.status {
                StepStatus::Applied => "ok",
                StepStatus::Failed => "FAILED",
                StepStatus::Skipped => "skipped",
            };
            let _ = write!(out, "  {mark} {} {}", res.action.as_str(), res.id);
            if let (StepStatus::Failed, Some(err)) = (res.status, &res.error) {
                let _ = write!(out, ": {err}");
            }
            out.push('\n');
        }
    }
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let _ = writeln!(out, "\n{} nodes: {}", reports.len(), summary.join(", "));
    if reports.iter().any(|r| r.outcome == Outcome::HostKey) {
        out.push_str("nodes with refused host keys got no command; pin them with `tandem trust`\n");
    }
    out
}
