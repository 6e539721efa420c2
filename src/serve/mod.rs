//! `tandem serve`: the webhook daemon. The build server calls it on every push; it
//! fetches the site repository itself, deploys the deploy branch's head under the site
//! lock, one run at a time, and shows runs, health and metrics over HTTP.
//!
//! [`observe`] is the seam between the parts that do the work (receivers, the run
//! worker) and the parts that report on it (metrics, log): the workers call an
//! [`observe::Observer`], the metrics implement it. [`config`] reads
//! `manifests/serve.toml`; [`hooks`] authenticates ([`verify`]) and queues deliveries
//! ([`queue`]); [`worker`] fetches ([`repo`]), checks signatures ([`signing`]) and runs;
//! [`audit`] is the scheduled read-only plan.
//!
//! Wiring the status pages: [`run`] serves `Router::new().merge(hooks).merge(extra)`.
//! The pages' router is built before the call from what they read: the run history at
//! `Settings::history_path()` (runs, and per run `Store::run_triggers` and
//! `Store::decision_of_run`; `Store::deliveries` and `Store::decisions` for lists) and
//! the same `Arc<dyn Observer>` passed here (the metrics), so one line merges them:
//! `serve::run(options, |ready| pages::router(...), metrics)`: the closure gets the
//! "repository fetchable" check of the configured remote for `/readyz`.

pub mod audit;
pub mod auth;
pub mod config;
pub mod hooks;
pub mod html;
pub mod log;
pub mod metrics;
pub mod observe;
pub mod pages;
pub mod queue;
pub mod repo;
pub mod signing;
pub mod verify;
pub mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;

use crate::apply::Interrupt;
use crate::run::Settings;
use crate::store::{Store, StoreError};
use config::{Config, ConfigError};
use observe::Observer;

/// The default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8088";

/// What `tandem serve` is asked to do.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The operator's settings: the site holding `manifests/serve.toml` and `.tandem/`.
    pub settings: Settings,
    pub listen: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on `{addr}`: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("cannot listen for SIGTERM and SIGINT: {0}")]
    Signals(std::io::Error),
    #[error("the HTTP server failed: {0}")]
    Http(std::io::Error),
}

/// Serves until SIGTERM or SIGINT: then no new run starts, the running one lets its
/// in-flight nodes finish (within the configured grace) and is recorded, and the
/// server stops. Everything that can be wrong with the configuration is found before
/// the port is bound.
pub async fn run(
    options: ServeOptions,
    extra: impl FnOnce(pages::Readiness) -> Router,
    observer: Arc<dyn Observer>,
) -> Result<(), ServeError> {
    let mut settings = options.settings;
    let config = Config::load(&settings.site)?;
    // One pool for every run of the daemon: a push converges over connections kept
    // open since the last run (`keep_connections` bounds how long one idles).
    settings.pool = Some(crate::transport::pool::SessionPool::empty(
        config.keep_connections,
    ));
    let url = local_url(&settings, &config.url);
    let store = Store::open(&settings.history_path())?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ServeError::Signals)?;
    let mut interrupt_signal =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .map_err(ServeError::Signals)?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|error| ServeError::Bind {
            addr: options.listen,
            error,
        })?;

    let queue = Arc::new(queue::Queue::default());
    let stopping = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let interrupt = Interrupt::with_grace(config.grace);
    let grace = config.grace;
    let hooks = hooks::router(
        hooks::HookState {
            branch: config.branch.clone(),
            secrets: Arc::new(config.receivers.values().cloned().collect()),
            store: Arc::new(Mutex::new(store)),
            queue: queue.clone(),
            observer: observer.clone(),
            stopping: stopping.clone(),
        },
        config.body_limit,
    );
    let mirror = repo::Mirror::new(&config.state_dir, &url, config.ssh.clone());
    let probe = mirror.clone();
    let readiness: pages::Readiness =
        Arc::new(move || probe.reachable().map_err(|err| err.to_string()));
    let extra = extra(readiness);
    let worker = Arc::new(worker::Worker {
        mirror,
        config,
        settings,
        queue,
        observer,
        interrupt: interrupt.clone(),
        stop: stop_rx,
    });
    eprintln!("serve: listening on http://{}", options.listen);

    let app = Router::new().merge(hooks).merge(extra);
    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = drained_rx.await;
    });
    let server = tokio::spawn(async move { server.await });
    let mut stopped = stop_tx.subscribe();
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt_signal.recv() => {}
        }
        eprintln!("serve: stopping: no new run starts; a running one finishes its nodes in flight");
        stopping.store(true, Ordering::SeqCst);
        let _ = stop_tx.send(true);
        interrupt.request();
    });
    // The worker runs on this task: a run's future is not `Send` (the executor keeps
    // its records in `RefCell`s), so it is never spawned. Bounded after the stop: the
    // apply abandons its in-flight nodes after the grace, a plan or a fetch is bounded
    // by its own timeouts; past that the process exits regardless (the next start finds
    // the run's record and marks it interrupted).
    let bound = grace + Duration::from_secs(60);
    tokio::select! {
        _ = worker.serve() => {}
        _ = async {
            let _ = stopped.wait_for(|s| *s).await;
            tokio::time::sleep(bound).await;
        } => eprintln!("serve: the running run did not end within {bound:?}; exiting"),
    }
    let _ = drained_tx.send(());
    match server.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(ServeError::Http(err)),
        Err(err) => Err(ServeError::Http(std::io::Error::other(err.to_string()))),
    }
}

/// A relative local path in the configuration is relative to the site.
fn local_url(settings: &Settings, url: &str) -> String {
    if url.contains("://") {
        return url.to_string();
    }
    let path = PathBuf::from(url);
    if path.is_absolute() {
        url.to_string()
    } else {
        settings.site.join(path).display().to_string()
    }
}
