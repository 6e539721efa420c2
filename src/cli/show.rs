//! `tandem show FILE`: a saved plan rendered from its structured results (text, or JSON
//! with `--format json`), once they are checked against what apply would use, after a
//! header saying when, from which commit and site
//! digest it was made, and whether the site still matches. Touches no host.

use crate::cli::{Format, Global};
use crate::exit::Status;
use crate::plan::render;
use crate::plan::saved::SavedPlan;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The saved plan (`tandem plan --out FILE`)
    pub file: std::path::PathBuf,
}

/// Exit 2 when the plan holds changes (as `plan` would), 0 when it holds none.
pub async fn run(global: &Global, args: Args) -> anyhow::Result<Status> {
    let saved = SavedPlan::load(&args.file)?;
    saved.verify_results()?;
    let pending = saved
        .planned_nodes()
        .any(|n| n.resources.iter().any(|r| r.planned != "in sync"));
    match global.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&render::json(&saved.results))?
        ),
        Format::Text => {
            println!(
                "saved plan `{}` (format version {}), made {}",
                args.file.display(),
                saved.version,
                saved.created_at
            );
            println!(
                "commit: {}",
                saved
                    .commit
                    .as_deref()
                    .unwrap_or("none (the site is not a git repository)")
            );
            let site = match saved.check_site(&global.site) {
                Ok(()) => "matches the site".to_string(),
                Err(_) => format!(
                    "differs from the site at `{}` now: `tandem apply` would refuse this plan",
                    global.site.display()
                ),
            };
            println!("site digest: {} ({site})\n", saved.site_digest);
            print!("{}", render::text(&saved.results));
        }
    }
    Ok(if pending { Status::Pending } else { Status::Ok })
}
