//! `tandem inventory`: list discovered nodes.
//!
//! SKELETON: arguments only.

use crate::cli::Global;
use crate::exit::Status;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bypass the inventory cache
    #[arg(long)]
    pub refresh: bool,
}

pub async fn run(_global: &Global, _args: Args) -> anyhow::Result<Status> {
    anyhow::bail!("`tandem inventory` is not built yet")
}
