//! `tandem runs` and `tandem runs show ID`: the run history, newest first, as a table or
//! JSON (`--format json`). Reading never creates the history file.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::cli::{Format, Global};
use crate::exit::Status;
use crate::store::{Run, RunDetail, RunId, Store, DEFAULT_PATH};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<RunsCommand>,
    /// How many runs to list, newest first
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// The run history file (default: `.tandem/history.sqlite` in the site)
    #[arg(long, env = "TANDEM_HISTORY")]
    pub history: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum RunsCommand {
    /// Show one run with every node's outcome and every resource change
    Show {
        /// The run's id, as `tandem runs` lists it
        id: RunId,
    },
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<Status> {
    let path = args
        .history
        .unwrap_or_else(|| global.site.join(DEFAULT_PATH));
    let store = Store::open_existing(&path)
        .with_context(|| format!("cannot read the run history `{}`", path.display()))?;
    match args.command {
        None => {
            let runs = match &store {
                Some(store) => store.runs(args.limit)?,
                None => Vec::new(),
            };
            match global.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&runs)?),
                Format::Text if runs.is_empty() => {
                    println!("no runs recorded in `{}`", path.display())
                }
                Format::Text => print!("{}", runs_table(&runs)),
            }
        }
        Some(RunsCommand::Show { id }) => {
            let store = store.with_context(|| {
                format!(
                    "no run `{id}`: there is no run history at `{}` yet",
                    path.display()
                )
            })?;
            let detail = store.run(id)?;
            match global.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&detail)?),
                Format::Text => print!("{}", run_text(&detail)),
            }
        }
    }
    Ok(Status::Ok)
}

/// `1.2s`, `3m 05s`, `850ms`; `-` while running.
use crate::store::duration_text as duration;

/// Rows of cells with columns padded to their widest cell; the last column unpadded.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn runs_table(runs: &[Run]) -> String {
    let mut rows = vec![[
        "ID", "KIND", "STATUS", "STARTED", "DURATION", "BY", "COMMIT", "COMMAND",
    ]
    .map(String::from)
    .to_vec()];
    for run in runs {
        rows.push(vec![
            run.id.to_string(),
            run.kind.to_string(),
            run.status.to_string(),
            run.started_at.clone(),
            duration(run.duration_ms),
            run.started_by.clone(),
            match run.commit.as_deref() {
                Some(c) if run.dirty => format!("{}+dirty", c.chars().take(10).collect::<String>()),
                Some(c) => c.chars().take(10).collect(),
                None => "-".into(),
            },
            run.command.clone(),
        ]);
    }
    table(&rows)
}

fn run_text(detail: &RunDetail) -> String {
    let run = &detail.run;
    let mut out = format!("run {}: {}, {}\n", run.id, run.kind, run.status);
    let mut header = vec![
        vec![
            "started".to_string(),
            format!(
                "{} by {} on {} (pid {})",
                run.started_at, run.started_by, run.host, run.pid
            ),
        ],
        vec![
            "finished".to_string(),
            match &run.finished_at {
                Some(at) => format!("{at} ({})", duration(run.duration_ms)),
                None => "-".into(),
            },
        ],
        vec![
            "commit".to_string(),
            match &run.commit {
                Some(c) if run.dirty => format!("{c} with uncommitted changes"),
                Some(c) => c.clone(),
                None => "-".into(),
            },
        ],
        vec![
            "digest".to_string(),
            run.site_digest.clone().unwrap_or_else(|| "-".into()),
        ],
        vec!["command".to_string(), run.command.clone()],
    ];
    if let Some(error) = &run.error {
        header.push(vec!["error".to_string(), error.clone()]);
    }
    out.push_str(&table(&header));

    let mut counts = std::collections::BTreeMap::new();
    for node in &detail.nodes {
        *counts.entry(node.outcome).or_insert(0usize) += 1;
    }
    let counts: Vec<String> = counts
        .iter()
        .map(|(outcome, n)| format!("{n} {outcome}"))
        .collect();
    let _ = writeln!(
        out,
        "\nnodes ({}){}",
        detail.nodes.len(),
        if counts.is_empty() {
            String::new()
        } else {
            format!(": {}", counts.join(", "))
        }
    );
    let rows: Vec<Vec<String>> = detail
        .nodes
        .iter()
        .map(|n| {
            vec![
                format!("  {}", n.node),
                n.datacenter
                    .as_ref()
                    .map_or("-".into(), ToString::to_string),
                n.outcome.to_string(),
                duration(Some(n.duration_ms)),
                n.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&table(&rows));

    let _ = writeln!(out, "\nchanges ({})", detail.changes.len());
    let rows: Vec<Vec<String>> = detail
        .changes
        .iter()
        .map(|c| {
            vec![
                format!("  {}", c.node),
                c.action.to_string(),
                c.resource.to_string(),
                c.summary.clone(),
            ]
        })
        .collect();
    out.push_str(&table(&rows));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(None), "-");
        assert_eq!(duration(Some(850)), "850ms");
        assert_eq!(duration(Some(1_234)), "1.2s");
        assert_eq!(duration(Some(185_000)), "3m 05s");
    }

    #[test]
    fn tables_pad_every_column_but_the_last() {
        let rows = vec![
            vec!["a".into(), "bbb".into(), "x".into()],
            vec!["cc".into(), "d".into(), "long tail".into()],
        ];
        assert_eq!(table(&rows), "a   bbb  x\ncc  d    long tail\n");
    }
}
