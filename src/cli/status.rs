//! `tandem status`: primary datacenter, failover epoch, the last promote, per
//! datacenter the nodes by the side and epoch they carry (probed now, one round trip
//! each), and fence-pending nodes. See `crate::failover::status`. Exit 4 when a node
//! could not be read.

use crate::cli::plan::RecordArgs;
use crate::cli::{Format, Global};
use crate::exit::Status;
use crate::run::Workspace;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Nodes probed at once
    #[arg(long, default_value_t = 50)]
    pub parallel: usize,
    #[command(flatten)]
    pub record: RecordArgs,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<Status> {
    let ws = Workspace::open(args.record.settings(global)?)?;
    let status = crate::failover::status::status(&ws, args.parallel).await?;
    match global.format {
        Format::Text => print!("{}", status.text()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&status)?),
    }
    Ok(status.exit_status())
}
