//! How the CLI reaches nodes: SSH with tandem's own known_hosts, or the local transport
//! when asked for explicitly (`TANDEM_TRANSPORT=local`, for tests and for running on a
//! node itself). A deploy tool must never fall back silently to running "remote"
//! commands on the machine it runs on, so there is no implicit local mode.

use std::sync::Arc;

use anyhow::Context;

use crate::cli::Global;
use crate::transport::local::LocalConnector;
use crate::transport::ssh::{SshConfig, SshConnector};
use crate::transport::Connector;

/// The connector for this run.
pub fn connector(global: &Global) -> anyhow::Result<Arc<dyn Connector>> {
    match std::env::var("TANDEM_TRANSPORT").as_deref() {
        Ok("local") => Ok(Arc::new(LocalConnector)),
        Ok("ssh") | Err(_) => {
            let mut config = SshConfig::from_global(global, &global.site);
            config.connect_timeout = global.connect_timeout;
            config.keepalive_interval = global.keepalive;
            config.keepalive_count = global.keepalive_count;
            let path = config.known_hosts.clone();
            let connector = SshConnector::new(config)
                .with_context(|| format!("cannot load known hosts `{}`", path.display()))?;
            Ok(Arc::new(connector))
        }
        Ok(other) => {
            anyhow::bail!("unknown transport `{other}` in TANDEM_TRANSPORT (known: `ssh`, `local`)")
        }
    }
}
