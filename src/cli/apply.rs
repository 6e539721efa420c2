//! `tandem apply [FILE]`: converge the selected nodes through the site's rollout
//! (canaries, batches, failure threshold, health checks), each node under its node lock
//! and the whole run under the site lock, recorded in the run history. The run itself
//! is `crate::run::apply`; this file turns flags into its request and prints the result.
//!
//! By default a second run fails at once naming the lock's holder (who, which command,
//! since when), because an operator who finds someone else deploying should decide, not
//! queue behind them; `--lock-wait 5m` waits instead (the daemon and CI want that), and
//! Ctrl-C stops a wait without doing anything. SIGINT or SIGTERM during the run: nodes
//! in flight get `--grace` (30 s) to finish and are abandoned past it (outcome
//! `interrupted`), nothing new starts, the run is recorded as interrupted and the
//! summary names done and not-attempted nodes; exit 3 (nodes were left unconverged).

use anyhow::Context as _;

use crate::apply::{render, Interrupt};
use crate::cli::plan::{dirty_line, not_discovered, progress, RecordArgs};
use crate::cli::{Format, Global};
use crate::exit::Status;
use crate::lock::Wait;
use crate::run::apply::Event;
use crate::run::{self, ApplyRequest};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A saved plan (`tandem plan --out FILE`) to apply exactly
    pub plan: Option<std::path::PathBuf>,
    /// Node names, globs, `@role` or `dc:NAME`, comma separated
    #[arg(long, conflicts_with = "plan")]
    pub on: Option<String>,
    /// Nodes worked on at once within a batch (each holds one SSH connection and one thread while in
    /// flight; up to 4,096, e.g. `--parallel 1000` for a 1,000-node fleet at once)
    #[arg(long, default_value_t = 50)]
    pub parallel: usize,
    /// How long to wait for another run's site lock (`0s`: fail at once, naming it)
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub lock_wait: std::time::Duration,
    /// Show every node and every step, unchanged ones included
    #[arg(long, short)]
    pub verbose: bool,
    /// After SIGINT or SIGTERM, how long nodes in flight may go on before they are
    /// abandoned and recorded as interrupted
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub grace: std::time::Duration,
    #[command(flatten)]
    pub record: RecordArgs,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<Status> {
    let interrupt = Interrupt::with_grace(args.grace);
    interrupt
        .on_signals()
        .context("cannot listen for SIGINT and SIGTERM")?;
    let progress = progress(global.format);
    let request = ApplyRequest {
        on: args.on.clone(),
        saved: args.plan.clone(),
        parallel: args.parallel,
        lock_wait: if args.lock_wait.is_zero() {
            Wait::FailFast
        } else {
            Wait::For(args.lock_wait)
        },
        interrupt,
        progress: progress.clone(),
    };
    let text_mode = global.format == Format::Text;
    let applied = run::apply(
        args.record.settings(global)?,
        request,
        |event| match event {
            Event::Waiting(msg) => eprintln!("{msg}"),
            Event::Dirty(source) => eprintln!("{}", dirty_line(source)),
            Event::Rollout(event) if text_mode => progress.rollout(&event),
            Event::Rollout(_) => {}
        },
    )
    .await;
    progress.finish();
    let applied = applied?;
    match global.format {
        Format::Text => {
            if let Some(fence) = &applied.fence {
                println!("{}", fence.line());
            }
            print!("{}", render::text(&applied.report, args.verbose));
            if let Some(saved) = &applied.saved {
                let skipped: Vec<String> = saved
                    .unplanned_nodes()
                    .map(|n| format!("{} ({})", n.node, n.status))
                    .collect();
                if !skipped.is_empty() {
                    println!(
                        "not in the saved plan (could not be planned): {}",
                        skipped.join(", ")
                    );
                }
            }
        }
        Format::Json => println!("{}", serde_json::to_string_pretty(&applied.report)?),
    }
    for err in &applied.report.history_errors {
        eprintln!("warning: the run history is incomplete: {err}");
    }
    not_discovered(&applied.failures);
    Ok(applied.status)
}
