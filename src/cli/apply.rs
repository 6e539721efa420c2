//! `tandem apply`: converge nodes.
//!
//! SKELETON: arguments only.

use crate::cli::Global;
use crate::exit::Status;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A saved plan to apply exactly
    pub plan: Option<std::path::PathBuf>,
    /// Node names, globs, `@role` or `dc:NAME`, comma separated
    #[arg(long)]
    pub on: Option<String>,
}

pub async fn run(_global: &Global, _args: Args) -> anyhow::Result<Status> {
    anyhow::bail!("`tandem apply` is not built yet")
}
