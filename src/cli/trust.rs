//! `tandem trust`: pin host keys.
//!
//! SKELETON: arguments only.

use crate::cli::Global;
use crate::exit::Status;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Node names, globs, `@role` or `dc:NAME`, comma separated
    pub selector: String,
    /// Expected SHA256 fingerprint (as `ssh-keygen -l` prints it)
    #[arg(long)]
    pub fingerprint: Option<String>,
}

pub async fn run(_global: &Global, _args: Args) -> anyhow::Result<Status> {
    anyhow::bail!("`tandem trust` is not built yet")
}
