//! `tandem apply [FILE]`: converge the selected nodes through the site's rollout
//! (canaries, batches, failure threshold, health checks), each node under its node lock
//! and the whole run under the site lock, recorded in the run history.
//!
//! With a saved plan FILE it applies exactly that plan: the site must be unchanged since
//! the plan (else the whole plan is refused), each node is probed again and a node whose
//! resources no longer read as planned is refused by resource name and left untouched.
//!
//! The site lock is taken first, before inventory and compilation. By default a second
//! run fails at once naming the holder (who, which command, since when), because an
//! operator who finds someone else deploying should decide, not queue behind them;
//! `--lock-wait 5m` waits instead (the daemon and CI want that), and Ctrl-C stops a wait
//! without doing anything. SIGINT or SIGTERM during the run: nodes in flight get
//! `--grace` (30 s) to finish and are abandoned past it (outcome `interrupted`), nothing
//! new starts, the run is recorded as interrupted and the summary names done and
//! not-attempted nodes; exit 3 (nodes were left unconverged).

use std::fmt::Write as _;

use anyhow::Context as _;

use crate::apply::deploy::{self, DeployReport, RunContext};
use crate::apply::{Interrupt, Job, Outcome, StepStatus};
use crate::cli::plan::RecordArgs;
use crate::cli::{connect, plan, Format, Global};
use crate::exit::Status;
use crate::lock::Wait;
use crate::manifest::Site;
use crate::plan::saved::SavedPlan;
use crate::store::RunKind;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A saved plan (`tandem plan --out FILE`) to apply exactly
    pub plan: Option<std::path::PathBuf>,
    /// Node names, globs, `@role` or `dc:NAME`, comma separated
    #[arg(long, conflicts_with = "plan")]
    pub on: Option<String>,
    /// Nodes worked on at once within a batch
    #[arg(long, default_value_t = 50)]
    pub parallel: usize,
    /// How long to wait for another run's site lock (`0s`: fail at once, naming it)
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub lock_wait: std::time::Duration,
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
    let record = args.record.new_run(global, RunKind::Apply);
    let wait = if args.lock_wait.is_zero() {
        Wait::FailFast
    } else {
        Wait::For(args.lock_wait)
    };
    let lock = deploy::lock_site(&global.site, &record.command, wait, &interrupt, |msg| {
        eprintln!("{msg}")
    })
    .await?;
    let site = Site::load(&global.site)
        .with_context(|| format!("cannot load the site at `{}`", global.site.display()))?;
    let (jobs, secrets, undiscovered, saved) = match &args.plan {
        Some(path) => {
            let saved = SavedPlan::load(path)?;
            saved.check_site(&global.site)?;
            let names: Vec<&str> = saved.planned_nodes().map(|n| n.node.as_str()).collect();
            if names.is_empty() {
                anyhow::bail!(
                    "the saved plan `{}` holds no node that could be planned",
                    path.display()
                );
            }
            let targets = plan::catalogs(global, Some(&names.join(","))).await?;
            let undiscovered = targets.undiscovered;
            (
                saved.jobs(targets.catalogs)?,
                targets.secrets,
                undiscovered,
                Some(saved),
            )
        }
        None => {
            let targets = plan::catalogs(global, args.on.as_deref()).await?;
            let jobs = targets
                .catalogs
                .into_iter()
                .map(|catalog| Job {
                    catalog,
                    expect: None,
                })
                .collect();
            (jobs, targets.secrets, targets.undiscovered, None)
        }
    };
    let connector = connect::connector(global)?;
    let mut options = plan::options(global, args.parallel, secrets);
    options.interrupt = interrupt;
    let ctx = RunContext {
        datacenters: site.datacenters.clone(),
        policy: site.rollout.clone(),
        store_path: args.record.history(global),
        run: record,
    };
    let text_mode = global.format == Format::Text;
    let report = deploy::deploy(jobs, connector, &options, ctx, lock, |event| {
        if text_mode {
            eprintln!("{event}");
        }
    })
    .await?;
    match global.format {
        Format::Text => {
            print!("{}", text(&report));
            if let Some(saved) = &saved {
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
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    for err in &report.history_errors {
        eprintln!("warning: the run history is incomplete: {err}");
    }
    Ok(plan::with_undiscovered(report.exit_status(), &undiscovered))
}

/// Per node its outcome and steps, then the rollout summary (threshold rule, halt,
/// not-attempted nodes) and, when interrupted, what was done and what was not.
pub fn text(report: &DeployReport) -> String {
    let mut out = String::new();
    for r in report
        .nodes
        .iter()
        .filter(|r| r.outcome != Outcome::NotAttempted)
    {
        let _ = write!(out, "{} ({}): {}", r.node, r.datacenter, r.outcome);
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
        for id in &r.refused {
            let _ = writeln!(out, "  REFUSED {id}: its state changed since the plan");
        }
    }
    out.push('\n');
    out.push_str(&report.rollout.to_string());
    if report.interrupted {
        let done: Vec<&str> = report
            .nodes
            .iter()
            .filter(|n| n.outcome != Outcome::NotAttempted)
            .map(|n| n.node.as_str())
            .collect();
        let _ = writeln!(
            out,
            "interrupted: no new node was started; nodes in flight finished their changes"
        );
        let _ = writeln!(out, "done: {}", list(&done));
        let not: Vec<&str> = report
            .nodes_with(Outcome::NotAttempted)
            .iter()
            .map(|n| n.as_str())
            .collect();
        let _ = writeln!(out, "not attempted: {}", list(&not));
    }
    if report.nodes.iter().any(|r| r.outcome == Outcome::HostKey) {
        out.push_str("nodes with refused host keys got no command; pin them with `tandem trust`\n");
    }
    let status = if report.interrupted {
        "interrupted"
    } else {
        "recorded"
    };
    let _ = writeln!(
        out,
        "run {} {status}: `tandem runs show {}`",
        report.run, report.run
    );
    out
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
