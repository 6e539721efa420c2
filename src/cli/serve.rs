//! `tandem serve [--listen ADDR]`: the webhook daemon (`crate::serve`), configured by
//! `manifests/serve.toml` beside `site.toml`. Receiver secrets come from the variables
//! or files that file names, never from the command line. Exits 0 after SIGTERM once
//! the running run is recorded; non-zero, before binding the port, when the
//! configuration is wrong (an enabled receiver without a secret is named).

use std::sync::Arc;

use crate::cli::Global;
use crate::exit::Status;
use crate::serve::{self, ServeOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (loopback unless you mean otherwise)
    #[arg(long, default_value = serve::DEFAULT_LISTEN)]
    pub listen: std::net::SocketAddr,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<Status> {
    let options = ServeOptions {
        settings: global.settings()?,
        listen: args.listen,
    };
    serve::run(
        options,
        axum::Router::new(),
        Arc::new(serve::log::LogObserver),
    )
    .await?;
    Ok(Status::Ok)
}
