//! `tandem drift`: read every selected node (read-only, one probe each) and report what
//! is in sync, drifted, pending, missing or not assessed, and the parity of the
//! datacenters' actual state, as text, JSON, HTML or JUnit XML (`--out FILE` writes it
//! there). Exit 0 all in sync, 2 drift, missing or parity broken, 4 some node not
//! assessed (takes precedence), 1 an error before any node was read.
//! `tandem drift ack NODE RESOURCE --reason TEXT --until DATE` acknowledges a finding.

use std::path::PathBuf;

use anyhow::Context;

use crate::cli::Global;
use crate::drift::{self, DriftRequest, Format};
use crate::exit::Status;
use crate::node::NodeName;
use crate::resource::ResourceId;
use crate::run::Workspace;
use crate::store::Store;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Node names, globs, `@role` or `dc:NAME`, comma separated
    #[arg(long)]
    pub on: Option<String>,
    /// Write the report to FILE instead of stdout
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Text: show every node and resource, in sync ones included
    #[arg(long, short)]
    pub verbose: bool,
    /// Nodes read at once
    #[arg(long, default_value_t = 50)]
    pub parallel: usize,
    /// The run history file, which keeps findings and acknowledgements (default:
    /// `.tandem/history.sqlite` in the site)
    #[arg(long, env = "TANDEM_HISTORY", global = true)]
    pub history: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Acknowledge a drifted or missing resource: reported as such, not failing, until
    /// DATE
    Ack {
        node: String,
        /// `type:name`, as the report names it
        resource: String,
        /// Why the drift is accepted
        #[arg(long)]
        reason: String,
        /// `YYYY-MM-DD` (to the end of that day, UTC) or an RFC 3339 time
        #[arg(long)]
        until: String,
        /// Who acknowledges (default: `user@host`)
        #[arg(long, env = "TANDEM_STARTED_BY")]
        by: Option<String>,
    },
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<Status> {
    let mut settings = global.settings()?;
    settings.history = args.history.clone();
    if let Some(Action::Ack {
        node,
        resource,
        reason,
        until,
        by,
    }) = &args.action
    {
        return ack(
            &settings.history_path(),
            node,
            resource,
            reason,
            until,
            by.as_deref(),
        );
    }
    let format = match global.format_name.as_str() {
        "json" => Format::Json,
        "html" => Format::Html,
        "junit" => Format::Junit,
        _ => Format::Text {
            verbose: args.verbose,
        },
    };
    let ws = Workspace::open(settings)?;
    let request = DriftRequest {
        on: args.on.clone(),
        parallel: args.parallel,
        history: true,
    };
    let report = drift::drift(&ws, &request).await?;
    let rendered = format.render(&report);
    match &args.out {
        Some(path) => {
            std::fs::write(path, &rendered)
                .with_context(|| format!("cannot write the report to `{}`", path.display()))?;
            let s = &report.summary;
            eprintln!(
                "drift: {} of {} nodes assessed; {} drifted, {} missing, {} pending, {} parity breaks; exit {}",
                report.coverage.assessed,
                report.coverage.expected,
                s.drifted,
                s.missing,
                s.pending,
                s.parity_breaks,
                report.result.exit_code
            );
            eprintln!("report written to `{}`", path.display());
        }
        None => print!("{rendered}"),
    }
    Ok(report.exit())
}

fn ack(
    history: &std::path::Path,
    node: &str,
    resource: &str,
    reason: &str,
    until: &str,
    by: Option<&str>,
) -> anyhow::Result<Status> {
    let node: NodeName = node
        .parse()
        .map_err(|e| anyhow::anyhow!("node `{node}`: {e}"))?;
    let resource: ResourceId = resource
        .parse()
        .map_err(|e: String| anyhow::anyhow!("{e}"))?;
    if reason.trim().is_empty() {
        anyhow::bail!("`--reason` must say why the drift is accepted");
    }
    let until_ms = parse_until(until)?;
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0),
    )
    .unwrap_or(i64::MAX);
    if until_ms <= now_ms {
        anyhow::bail!("`--until {until}` is in the past");
    }
    let by = by.map(str::to_string).unwrap_or_else(|| {
        format!(
            "{}@{}",
            crate::lock::current_user(),
            crate::lock::current_host()
        )
    });
    let store = Store::open(history)?;
    store.acknowledge(node.as_str(), &resource.to_string(), &by, reason, until_ms)?;
    println!("acknowledged {resource} on {node} until {until} by {by}: {reason}");
    Ok(Status::Ok)
}

/// `YYYY-MM-DD` (the end of that day, UTC) or an RFC 3339 time, in milliseconds.
fn parse_until(text: &str) -> anyhow::Result<i64> {
    let full = if text.len() == 10 && text.as_bytes().get(4) == Some(&b'-') {
        format!("{text}T23:59:59Z")
    } else {
        text.to_string()
    };
    let time = humantime::parse_rfc3339_weak(&full).map_err(|e| {
        anyhow::anyhow!("`--until {text}` is not a date (`YYYY-MM-DD`) or an RFC 3339 time: {e}")
    })?;
    let ms = time
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Ok(i64::try_from(ms).unwrap_or(i64::MAX))
}
