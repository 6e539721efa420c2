//! `tandem promote DC --reason TEXT`: make a standby datacenter the primary (see
//! `crate::failover`). Shows the plan of both steps with diffs, asks for confirmation on
//! a terminal (elsewhere `--yes` is required), then demotes the old primary first and
//! promotes the target, flips the Route53 records when configured, and commits the new
//! primary and epoch to `site.toml`. `--dry-run` stops after the plan. Exit 0 when
//! promoted and verified, 1 when refused before anything changed, 3 when a step stopped
//! or a node, the DNS flip or the commit failed.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::Context as _;

use crate::apply::{render, Interrupt};
use crate::cli::plan::{progress, RecordArgs};
use crate::cli::{Format, Global};
use crate::exit::Status;
use crate::failover::execute::{Event, Promoted};
use crate::failover::promote::{self, Prepared, PromoteRequest};
use crate::lock::Wait;
use crate::plan::render as plan_render;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The standby datacenter to make primary
    pub datacenter: String,
    /// Why: recorded in the run history and the commit
    #[arg(long)]
    pub reason: String,
    /// Go ahead without asking (required when not on a terminal)
    #[arg(long)]
    pub yes: bool,
    /// Check and show the plan; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Go ahead although old-primary nodes cannot be reached: they become fence
    /// pending and are demoted before anything else when they return
    #[arg(long)]
    pub old_primary_unreachable: bool,
    /// Push the commit to this branch of `origin` (the deploy branch)
    #[arg(long, value_name = "BRANCH", num_args = 0..=1, default_missing_value = "master")]
    pub push: Option<String>,
    /// Nodes worked on at once within a batch
    #[arg(long, default_value_t = 50)]
    pub parallel: usize,
    /// How long to wait for another run's site lock (`0s`: fail at once, naming it)
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub lock_wait: std::time::Duration,
    #[command(flatten)]
    pub record: RecordArgs,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<Status> {
    let interrupt = Interrupt::with_grace(std::time::Duration::from_secs(30));
    interrupt
        .on_signals()
        .context("cannot listen for SIGINT and SIGTERM")?;
    let progress = progress(global.format);
    let request = PromoteRequest {
        target: args.datacenter.clone(),
        reason: args.reason.clone(),
        old_primary_unreachable: args.old_primary_unreachable,
        push: args.push.clone(),
        parallel: args.parallel,
        lock_wait: if args.lock_wait.is_zero() {
            Wait::FailFast
        } else {
            Wait::For(args.lock_wait)
        },
        progress: progress.clone(),
        interrupt,
    };
    let prepared = promote::prepare(args.record.settings(global)?, request).await;
    progress.finish();
    let prepared = prepared?;
    if global.format == Format::Text {
        print!("{}", plan_text(&prepared));
    }
    if args.dry_run {
        println!(
            "dry run: nothing was changed (plan recorded as run {})",
            prepared.plan_run
        );
        return Ok(Status::Ok);
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            anyhow::bail!(
                "not on a terminal: pass `--yes` to promote `{}`; nothing was changed",
                prepared.to
            );
        }
        eprint!("type the datacenter name `{}` to promote it: ", prepared.to);
        std::io::stderr().flush().ok();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != prepared.to.as_str() {
            eprintln!("not confirmed; nothing was changed");
            return Ok(Status::Error);
        }
    }
    let text_mode = global.format == Format::Text;
    let promoted = prepared
        .execute(|event| match event {
            Event::Step(line) if text_mode => eprintln!("{line}"),
            Event::Rollout(event) if text_mode => progress.rollout(&event),
            _ => {}
        })
        .await;
    progress.finish();
    let promoted = promoted?;
    match global.format {
        Format::Text => print!("{}", report_text(&promoted)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&promoted)?),
    }
    Ok(promoted.status)
}

fn plan_text(p: &Prepared) -> String {
    let mut out = format!(
        "promote `{}` to primary (epoch {} -> {}); `{}` becomes a standby\n\n",
        p.to,
        p.epoch - 1,
        p.epoch,
        p.from
    );
    out.push_str(&format!(
        "step 1, demote: {} nodes of `{}` gain the standby overlay, verified before any node of `{}` changes\n",
        p.demote.len(),
        p.from,
        p.to
    ));
    out.push_str(&plan_render::text(&p.demote_plans()));
    for (node, error) in &p.fence {
        out.push_str(&format!(
            "  {} unreachable, will be fence pending: {error}\n",
            node.name
        ));
    }
    out.push_str(&format!(
        "\nstep 2, promote: {} nodes of `{}` lose the standby overlay\n",
        p.promote.len(),
        p.to
    ));
    out.push_str(&plan_render::text(&p.promote_plans()));
    out.push('\n');
    out
}

fn report_text(p: &Promoted) -> String {
    let mut out = String::new();
    for (step, report) in [("demote", &p.demote), ("promote", &p.promote)] {
        if let Some(report) = report {
            out.push_str(&format!("{step} step (run {}):\n", report.run));
            out.push_str(&render::text(report, false));
        }
    }
    for line in &p.unverified {
        out.push_str(&format!("not verified: {line}\n"));
    }
    for node in &p.fence_pending {
        out.push_str(&format!(
            "fence pending: `{node}` (demoted first by the next run once it is reachable)\n"
        ));
    }
    match &p.dns {
        Some(Ok(f)) => out.push_str(&format!(
            "route53: failover records flipped in one batch, change `{}` ({})\n",
            f.change_id, f.status
        )),
        Some(Err(err)) => out.push_str(&format!(
            "route53 FAILED, the nodes stay promoted; flip the records by hand: {err}\n"
        )),
        None => {}
    }
    match (&p.commit, &p.git_error) {
        (Some(c), _) => out.push_str(&format!(
            "site.toml: `{}` primary, epoch {}, commit {}{}\n",
            p.to,
            p.epoch,
            c.get(..12).unwrap_or(c),
            p.pushed
                .as_ref()
                .map(|b| format!(", pushed to {b}"))
                .unwrap_or_default()
        )),
        (None, Some(err)) => out.push_str(&format!("site.toml: {err}\n")),
        (None, None) => out.push_str("site.toml: written (the site is not a git repository)\n"),
    }
    if let Some(why) = &p.stopped {
        out.push_str(&format!("promote {why}\n"));
    } else {
        out.push_str(&format!(
            "promoted `{}` (epoch {}) in {:.1}s: demote {:.1}s, promote {:.1}s, dns {:.1}s\n",
            p.to,
            p.epoch,
            p.timings.total_s,
            p.timings.demote_s,
            p.timings.promote_s,
            p.timings.dns_s
        ));
    }
    out
}
