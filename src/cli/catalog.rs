//! `tandem catalog`: print one node's catalog, secrets redacted.
//!
//! SKELETON: arguments only.

use crate::cli::Global;
use crate::exit::Status;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node
    pub node: String,
}

pub async fn run(_global: &Global, _args: Args) -> anyhow::Result<Status> {
    anyhow::bail!("`tandem catalog` is not built yet")
}
