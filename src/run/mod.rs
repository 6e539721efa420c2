//! The run pipeline: what every command that works on nodes does, as library code that
//! the CLI, the daemon, drift and promote call alike. [`Settings`] is plain data (the
//! CLI fills it from flags and environment; no clap type comes below `cli/`);
//! [`Workspace::open`] loads the site, decrypts its secrets and reads its source (commit,
//! dirtiness, digest) once; [`Workspace::targets`] discovers and compiles the selected
//! nodes; [`Workspace::connector`] builds the transport. `plan` and `apply` are the two
//! runs built on these, each recorded in the run history.

pub mod apply;
pub mod fence;
pub mod plan;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::catalog::{Catalog, CompileError, Compiler};
use crate::exit::Status;
use crate::inventory::{Inventory, InventoryError};
use crate::manifest::source::{SiteSource, SourceError};
use crate::manifest::{ManifestError, Site};
use crate::plan::saved::SavedPlanError;
use crate::secret::{SecretError, SecretStore};
use crate::selector::{Selector, SelectorError};
use crate::store::{NewRun, RunKind, Store, StoreError, DEFAULT_PATH};
use crate::transport::known_hosts::{KnownHosts, KnownHostsError};
use crate::transport::local::LocalConnector;
use crate::transport::pool::{SessionPool, DEFAULT_MAX_IDLE};
use crate::transport::ssh::{known_hosts_path, SshConfig, SshConnector};
use crate::transport::Connector;

pub use apply::{apply, Applied, ApplyRequest};
pub use plan::{plan, PlanRequest, Planned};

/// A connector just built and the known_hosts it verifies against.
type Fresh = (Arc<dyn Connector>, Option<Arc<KnownHosts>>);

/// Everything a run needs to know besides what it is asked to do.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The site repository (holding manifests/, modules/, templates/).
    pub site: PathBuf,
    /// A static node list used instead of discovery.
    pub inventory: Option<PathBuf>,
    pub connection: Connection,
    /// The run history file (default: `.tandem/history.sqlite` in the site).
    pub history: Option<PathBuf>,
    /// Who or what starts runs, as the history shows it (default: `user@host`).
    pub started_by: Option<String>,
    /// The command line as typed, for the history and the site lock's label.
    pub command: String,
    /// Sessions kept open across runs (the daemon's): when set, [`Settings::connector`]
    /// hands out the pool, refreshed for the run.
    pub pool: Option<SessionPool>,
}

/// How nodes are reached.
#[derive(Debug, Clone)]
pub struct Connection {
    pub transport: TransportKind,
    /// Bound on each step of connecting (TCP, key exchange, authentication).
    pub connect_timeout: Duration,
    /// An SSH keepalive after this long without traffic; `keepalive_count` of them
    /// unanswered make the node unreachable.
    pub keepalive: Duration,
    pub keepalive_count: u32,
    /// SSH handshakes in flight at once (`SshConfig::max_connecting`).
    pub max_connecting: usize,
    /// Bound on a node's whole probe or apply; its remote command is killed past it.
    pub command_timeout: Duration,
    /// tandem's own known_hosts (default: `.tandem/known_hosts` in the site).
    pub known_hosts: Option<PathBuf>,
    /// SSH private key (default: ssh-agent).
    pub identity: Option<PathBuf>,
    /// SSH login user when the node names none (default: root).
    pub user: Option<String>,
}

impl Default for Connection {
    /// SSH; 10 s to connect; a keepalive every 5 s, 3 unanswered make a node
    /// unreachable (15 s of silence); 10 minutes per node.
    fn default() -> Self {
        Connection {
            transport: TransportKind::Ssh,
            connect_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(5),
            keepalive_count: 3,
            max_connecting: crate::transport::ssh::MAX_CONNECTING,
            command_timeout: Duration::from_secs(600),
            known_hosts: None,
            identity: None,
            user: None,
        }
    }
}

/// SSH, or commands run on this machine (only when asked for explicitly: a deploy tool
/// must never fall back silently to running "remote" commands locally).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TransportKind {
    #[default]
    Ssh,
    Local,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot load the site at `{path}`")]
    Site {
        path: PathBuf,
        #[source]
        source: ManifestError,
    },
    #[error(transparent)]
    Secrets(#[from] SecretError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Selector(#[from] SelectorError),
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error("no node matches `{selector}`")]
    NoNodes { selector: String },
    #[error("cannot load known hosts `{path}`")]
    KnownHosts {
        path: PathBuf,
        #[source]
        source: KnownHostsError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    SavedPlan(#[from] SavedPlanError),
    #[error(transparent)]
    Deploy(#[from] crate::apply::deploy::DeployError),
    #[error("the saved plan `{path}` holds no node that could be planned")]
    EmptySavedPlan { path: PathBuf },
}

impl Settings {
    /// Settings for the site at `site` with every default.
    pub fn new(site: impl Into<PathBuf>) -> Settings {
        Settings {
            site: site.into(),
            inventory: None,
            connection: Connection::default(),
            history: None,
            started_by: None,
            command: String::new(),
            pool: None,
        }
    }

    pub fn history_path(&self) -> PathBuf {
        self.history
            .clone()
            .unwrap_or_else(|| self.site.join(DEFAULT_PATH))
    }

    pub fn known_hosts_path(&self) -> PathBuf {
        known_hosts_path(self.connection.known_hosts.as_deref(), &self.site)
    }

    /// The SSH configuration these settings ask for.
    pub fn ssh_config(&self) -> SshConfig {
        let mut config = SshConfig::new(self.known_hosts_path());
        config.connect_timeout = self.connection.connect_timeout;
        config.keepalive_interval = self.connection.keepalive;
        config.keepalive_count = self.connection.keepalive_count;
        config.max_connecting = self.connection.max_connecting;
        config.command_timeout = self.connection.command_timeout;
        config.identity = self.connection.identity.clone();
        if let Some(user) = &self.connection.user {
            config.user = user.clone();
        }
        config
    }

    /// The connector for a run; the known_hosts file is read here, once. With a shared
    /// pool, the pool: its kept sessions whose keys that known_hosts no longer trusts
    /// are closed, and new connections go through the fresh connector.
    pub fn connector(&self) -> Result<Arc<dyn Connector>, RunError> {
        let (inner, known_hosts) = self.fresh_connector()?;
        match &self.pool {
            Some(pool) => {
                // Counted in the pool's stats, which the daemon logs after each run.
                pool.refresh(inner, known_hosts.as_deref());
                Ok(Arc::new(pool.clone()))
            }
            None => Ok(inner),
        }
    }

    /// [`Settings::connector`] for a run that connects to a node more than once (an
    /// apply: settle probe, apply, health checks): without a shared pool, a pool for
    /// this run alone, so each node is connected to once.
    pub fn pooled_connector(&self) -> Result<Arc<dyn Connector>, RunError> {
        if self.pool.is_some() {
            return self.connector();
        }
        let (inner, _) = self.fresh_connector()?;
        Ok(Arc::new(SessionPool::new(inner, DEFAULT_MAX_IDLE)))
    }

    /// A connector built now, and the known_hosts it read (none for the local transport).
    fn fresh_connector(&self) -> Result<Fresh, RunError> {
        match self.connection.transport {
            TransportKind::Local => Ok((Arc::new(LocalConnector), None)),
            TransportKind::Ssh => {
                let config = self.ssh_config();
                let path = config.known_hosts.clone();
                let connector = SshConnector::new(config)
                    .map_err(|source| RunError::KnownHosts { path, source })?;
                let known_hosts = connector.known_hosts();
                Ok((Arc::new(connector), Some(known_hosts)))
            }
        }
    }

    /// The history record of a run of `kind` of exactly `source`.
    pub fn new_run(&self, kind: RunKind, source: Option<&SiteSource>) -> NewRun {
        let mut run = NewRun::by_current_user(kind, self.command.clone(), None);
        if let Some(source) = source {
            run = run.with_source(source);
        }
        if let Some(who) = &self.started_by {
            run.started_by = who.clone();
        }
        run
    }
}

/// A loaded site: its manifests, its secrets (decrypted once per run) and the identity
/// of the content that was loaded.
pub struct Workspace {
    pub settings: Settings,
    pub site: Site,
    pub secrets: Arc<SecretStore>,
    pub source: SiteSource,
}

/// What a run operates on: the selected nodes' catalogs, and the datacenters whose
/// discovery failed (their nodes are in no catalog, so the run must not end as if
/// everything was in sync).
pub struct Targets {
    pub catalogs: Vec<Catalog>,
    pub failures: Vec<InventoryError>,
}

impl Workspace {
    /// Loads the site and its secrets, and reads its source. Touches no host.
    pub fn open(settings: Settings) -> Result<Workspace, RunError> {
        let site = Site::load(&settings.site).map_err(|source| RunError::Site {
            path: settings.site.clone(),
            source,
        })?;
        let secrets = Arc::new(SecretStore::load(&settings.site)?);
        let source = SiteSource::read(&settings.site)?;
        Ok(Workspace {
            settings,
            site,
            secrets,
            source,
        })
    }

    /// The site's nodes: the static list of the settings, or discovery.
    pub async fn inventory(&self) -> Result<Inventory, RunError> {
        Ok(crate::inventory::resolve(&self.site, self.settings.inventory.as_deref()).await?)
    }

    /// One compiler for all nodes: templates and what nodes share are prepared once.
    /// Runs record secret-bearing files in the site's ledger (see `secret::ledger`).
    pub fn compiler(&self) -> Result<Compiler<'_>, RunError> {
        Ok(Compiler::with_secrets(
            &self.site,
            self.secrets.clone(),
            true,
        )?)
    }

    /// The nodes `on` selects (all when `None`), compiled. Any error here comes before a
    /// host is touched. A datacenter that was not discovered is in `failures`.
    pub async fn targets(&self, on: Option<&str>) -> Result<Targets, RunError> {
        let inventory = self.inventory().await?;
        let selector = on.map(Selector::parse).transpose()?;
        let compiler = self.compiler()?;
        let mut catalogs = Vec::new();
        for node in inventory
            .nodes
            .iter()
            .filter(|n| selector.as_ref().is_none_or(|s| s.matches(n)))
        {
            catalogs.push(compiler.compile(node)?);
        }
        if catalogs.is_empty() {
            return Err(RunError::NoNodes {
                selector: on.unwrap_or("*").to_string(),
            });
        }
        Ok(Targets {
            catalogs,
            failures: inventory.failures,
        })
    }

    /// The run history, with the site's secrets redacted from what it stores.
    pub fn store(&self) -> Result<Store, RunError> {
        Ok(Store::open(&self.settings.history_path())?.with_secrets((*self.secrets).clone()))
    }

    /// The history record of a run of `kind` of this workspace's content.
    pub fn new_run(&self, kind: RunKind) -> NewRun {
        self.settings.new_run(kind, Some(&self.source))
    }

    pub fn root(&self) -> &Path {
        &self.settings.site
    }
}

/// `status` made non-zero when a datacenter was not discovered: its nodes were neither
/// read nor converged, which is what "unreachable" means to an operator. Failed nodes
/// still win (exit 3), as they do over unreachable ones.
pub fn with_undiscovered(status: Status, undiscovered: bool) -> Status {
    if !undiscovered || status == Status::Failed {
        status
    } else {
        Status::Unreachable
    }
}
