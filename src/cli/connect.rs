//! How the CLI reaches nodes. For now only the local transport, and only when asked for
//! explicitly (`TANDEM_TRANSPORT=local`): a deploy tool must never fall back silently to
//! running "remote" commands on the machine it runs on. The SSH connector replaces this.

use std::sync::Arc;

use crate::cli::Global;
use crate::transport::local::LocalConnector;
use crate::transport::Connector;

/// The connector for this run.
pub fn connector(_global: &Global) -> anyhow::Result<Arc<dyn Connector>> {
    match std::env::var("TANDEM_TRANSPORT").as_deref() {
        Ok("local") => Ok(Arc::new(LocalConnector)),
        Ok(other) => anyhow::bail!("unknown transport `{other}` in TANDEM_TRANSPORT (known: `local`)"),
        Err(_) => anyhow::bail!(
            "no SSH transport in this build yet; set TANDEM_TRANSPORT=local to run every node's commands on this machine"
        ),
    }
}
