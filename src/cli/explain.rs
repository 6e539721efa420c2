//! `tandem explain`: where a variable's value comes from.
//!
//! SKELETON: arguments only.

use crate::cli::Global;
use crate::exit::Status;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node
    pub node: String,
    /// The variable
    pub var: String,
}

pub async fn run(_global: &Global, _args: Args) -> anyhow::Result<Status> {
    anyhow::bail!("`tandem explain` is not built yet")
}
