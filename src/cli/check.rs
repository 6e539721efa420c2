//! `tandem check`: validate everything and check parity; touches no host.
//!
//! SKELETON: arguments only.

use crate::cli::Global;
use crate::exit::Status;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_global: &Global, _args: Args) -> anyhow::Result<Status> {
    anyhow::bail!("`tandem check` is not built yet")
}
