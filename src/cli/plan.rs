//! `tandem plan`: show what would change.
//!
//! SKELETON: arguments only.

use crate::cli::Global;
use crate::exit::Status;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Node names, globs, `@role` or `dc:NAME`, comma separated
    #[arg(long)]
    pub on: Option<String>,
    /// Write the plan to FILE
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

pub async fn run(_global: &Global, _args: Args) -> anyhow::Result<Status> {
    anyhow::bail!("`tandem plan` is not built yet")
}
