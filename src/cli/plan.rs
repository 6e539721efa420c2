//! `tandem plan`: read every selected node's state (one connection and one probe each)
//! and show what would change. Exit 2 when changes are pending. `--out FILE` saves the
//! plan (see `crate::plan::saved`) for `tandem apply FILE`. The run itself is
//! `crate::run::plan`; this file turns flags into its request and prints the result.

use std::path::PathBuf;

use crate::apply::Progress;
use crate::cli::{Format, Global};
use crate::exit::Status;
use crate::plan::render;
use crate::run::{self, PlanRequest, Settings, Workspace};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Node names, globs, `@role` or `dc:NAME`, comma separated
    #[arg(long)]
    pub on: Option<String>,
    /// Write the plan to FILE, for `tandem apply FILE` and `tandem show FILE`
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Nodes worked on at once (each holds one SSH connection and one thread while in
    /// flight; up to 4,096, e.g. `--parallel 1000` for a 1,000-node fleet at once)
    #[arg(long, default_value_t = 50)]
    pub parallel: usize,
    /// Show every node, in sync ones included
    #[arg(long, short)]
    pub verbose: bool,
    #[command(flatten)]
    pub record: RecordArgs,
}

/// Where and as whom a run is recorded; shared by `plan` and `apply`.
#[derive(Debug, Clone, clap::Args)]
pub struct RecordArgs {
    /// The run history file (default: `.tandem/history.sqlite` in the site)
    #[arg(long, env = "TANDEM_HISTORY")]
    pub history: Option<PathBuf>,
    /// Who or what started this run, as the history shows it (default: `user@host`)
    #[arg(long, env = "TANDEM_STARTED_BY")]
    pub started_by: Option<String>,
}

impl RecordArgs {
    /// `global`'s settings with this run's history and starter.
    pub(crate) fn settings(&self, global: &Global) -> anyhow::Result<Settings> {
        let mut settings = global.settings()?;
        settings.history = self.history.clone();
        settings.started_by = self.started_by.clone();
        Ok(settings)
    }
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<Status> {
    let ws = Workspace::open(args.record.settings(global)?)?;
    if ws.source.dirty {
        eprintln!("{}", dirty_line(&ws.source));
    }
    let progress = progress(global.format);
    let request = PlanRequest {
        on: args.on.clone(),
        out: args.out.clone(),
        parallel: args.parallel,
        progress: progress.clone(),
    };
    let planned = run::plan(&ws, request).await;
    progress.finish();
    let planned = planned?;
    match global.format {
        Format::Text if args.verbose => print!("{}", render::text(&planned.results)),
        Format::Text => print!("{}", render::grouped(&planned.results)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&render::json(&planned.results))?
        ),
    }
    not_discovered(&planned.failures);
    if let Some(out) = &args.out {
        eprintln!(
            "plan saved to `{}`; apply exactly it with `tandem apply {}`",
            out.display(),
            out.display()
        );
    }
    Ok(planned.status)
}

/// Progress on stderr for text output; none for JSON (its reader wants one document).
pub(crate) fn progress(format: Format) -> Progress {
    match format {
        Format::Text => Progress::stderr(),
        Format::Json => Progress::Quiet,
    }
}

/// The one line a run prints when the compiled folders differ from the recorded commit.
pub(crate) fn dirty_line(source: &crate::manifest::source::SiteSource) -> String {
    format!(
        "note: the site has uncommitted changes in manifests/, templates/ or modules/; \
         recorded as {} with site digest {}",
        source.describe(),
        source.digest.get(..12).unwrap_or(&source.digest)
    )
}

/// Names each datacenter that was not discovered: its nodes were not touched.
pub(crate) fn not_discovered(failures: &[crate::inventory::InventoryError]) {
    for failure in failures {
        eprintln!("error: {failure}");
    }
    for dc in failures.iter().filter_map(|f| f.datacenter()) {
        eprintln!("error: not discovered: `{dc}`; its nodes were not touched");
    }
}
