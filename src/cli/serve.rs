//! `tandem serve [--listen ADDR]`: the webhook daemon (`crate::serve`), configured by
//! `manifests/serve.toml` beside `site.toml`. Receiver secrets come from the variables
//! or files that file names, never from the command line. Exits 0 after SIGTERM once
//! the running run is recorded; non-zero, before binding the port, when the
//! configuration is wrong (an enabled receiver without a secret is named, and a
//! listen address beyond loopback without a read token is refused).

use std::sync::Arc;

use crate::cli::Global;
use crate::exit::Status;
use crate::serve::log::LogObserver;
use crate::serve::metrics::Metrics;
use crate::serve::observe::Fanout;
use crate::serve::pages::{self, view::Trigger, PagesState};
use crate::serve::{self, auth, ServeOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (loopback unless you mean otherwise: then a read token,
    /// `TANDEM_SERVE_READ_TOKEN_FILE` or `TANDEM_SERVE_READ_TOKEN`, is required)
    #[arg(long, default_value = serve::DEFAULT_LISTEN)]
    pub listen: std::net::SocketAddr,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<Status> {
    let read_token = auth::read_token_from_env()?;
    auth::check_bind(args.listen, read_token.as_ref())?;
    let settings = global.settings()?;
    let history = settings.history_path();
    let metrics = Arc::new(Metrics::new());
    let pages_metrics = metrics.clone();
    let options = ServeOptions {
        settings,
        listen: args.listen,
    };
    let pages = move |repository_ready| {
        pages::router(PagesState {
            history,
            metrics: pages_metrics,
            read_token,
            repository_ready,
            triggers: Some(Arc::new(|store, id| {
                Ok(store
                    .run_triggers(id)?
                    .into_iter()
                    .map(|d| Trigger {
                        receiver: d.receiver,
                        delivery: d.id,
                        event: d.event,
                        git_ref: d.git_ref,
                        pusher: d.pusher,
                        received_at: d.received_at,
                    })
                    .collect())
            })),
        })
    };
    let observer = Arc::new(Fanout(vec![Arc::new(LogObserver), metrics]));
    serve::run(options, pages, observer).await?;
    Ok(Status::Ok)
}
