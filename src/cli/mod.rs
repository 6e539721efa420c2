//! Command-line interface: one file per subcommand, orchestration only. Each file owns
//! its `Args` and a `run` that returns the exit status.

pub mod apply;
pub mod catalog;
pub mod check;
pub mod drift;
pub mod explain;
pub mod inventory;
pub mod plan;
pub mod promote;
pub mod runs;
pub mod secrets;
pub mod serve;
pub mod show;
pub mod status;
pub mod trust;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exit::Status;
use crate::run::{Connection, Settings, TransportKind};

#[derive(Debug, Parser)]
#[command(
    name = "tandem",
    version,
    about = "Keep two clouds identical to what git declares"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand understands.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The site repository (holding manifests/, modules/, templates/)
    #[arg(long, global = true, env = "TANDEM_SITE", default_value = ".")]
    pub site: PathBuf,
    /// A static node list (nodes.toml format) used instead of discovery; the local
    /// fleet writes one
    #[arg(long, global = true, env = "TANDEM_INVENTORY")]
    pub inventory: Option<PathBuf>,
    /// tandem's own known_hosts file; unknown or changed host keys get no command
    #[arg(long, global = true, env = "TANDEM_KNOWN_HOSTS")]
    pub known_hosts: Option<PathBuf>,
    /// SSH private key (default: ssh-agent)
    #[arg(long, global = true, env = "TANDEM_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// SSH login user (default: root)
    #[arg(long, global = true, env = "TANDEM_USER")]
    pub user: Option<String>,
    /// Bound on each step of connecting to a node (TCP, key exchange, authentication)
    #[arg(long, global = true, env = "TANDEM_CONNECT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub connect_timeout: std::time::Duration,
    /// An SSH keepalive after this long without traffic; a node that leaves
    /// `--keepalive-count` of them unanswered is unreachable
    #[arg(long, global = true, env = "TANDEM_KEEPALIVE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub keepalive: std::time::Duration,
    /// Unanswered keepalives before a connection counts as lost
    #[arg(long, global = true, env = "TANDEM_KEEPALIVE_COUNT", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub keepalive_count: u32,
    /// SSH handshakes in flight at once, whatever `--parallel` says: more at once on a
    /// loaded control node time out on `--connect-timeout`; a waiting turn is not counted
    #[arg(long, global = true, env = "TANDEM_MAX_CONNECTING", default_value_t = crate::transport::ssh::MAX_CONNECTING as u32, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_connecting: u32,
    /// Bound on a node's whole probe or apply; its remote command is killed past it
    #[arg(long, global = true, env = "TANDEM_COMMAND_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub command_timeout: std::time::Duration,
    /// Output format: text or json (`tandem drift` also: html, junit)
    #[arg(long = "format", id = "format", global = true, default_value = "text",
          value_parser = ["text", "json", "html", "junit"])]
    pub format_name: String,
    /// `--format` for every command but `drift` (set by `run`).
    #[arg(skip = Format::Text)]
    pub format: Format,
}

impl Global {
    /// The plain settings every run takes: what the flags and `TANDEM_*` variables say.
    /// `TANDEM_TRANSPORT=local` runs node commands on this machine (tests, or running on
    /// a node itself); there is no implicit local mode.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let transport = match std::env::var("TANDEM_TRANSPORT").as_deref() {
            Ok("local") => TransportKind::Local,
            Ok("ssh") | Err(_) => TransportKind::Ssh,
            Ok(other) => anyhow::bail!(
                "unknown transport `{other}` in TANDEM_TRANSPORT (known: `ssh`, `local`)"
            ),
        };
        let command: Vec<String> = std::env::args().collect();
        Ok(Settings {
            site: self.site.clone(),
            inventory: self.inventory.clone(),
            connection: Connection {
                transport,
                connect_timeout: self.connect_timeout,
                keepalive: self.keepalive,
                keepalive_count: self.keepalive_count,
                max_connecting: self.max_connecting as usize,
                command_timeout: self.command_timeout,
                known_hosts: self.known_hosts.clone(),
                identity: self.identity.clone(),
                user: self.user.clone(),
            },
            history: None,
            started_by: None,
            command: command.join(" "),
            pool: None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate manifests, modules and templates, compile every catalog, check parity
    Check(check::Args),
    /// Print a node's resources and rendered files (secrets redacted)
    Catalog(catalog::Args),
    /// Show a variable's value for a node and every layer that set it
    Explain(explain::Args),
    /// List the nodes of every datacenter
    Inventory(inventory::Args),
    /// Pin a node's SSH host key in tandem's known_hosts
    Trust(trust::Args),
    /// Read actual state over SSH and show what would change
    Plan(plan::Args),
    /// Converge nodes to their catalogs, or apply a saved plan exactly
    Apply(apply::Args),
    /// Render a saved plan as `plan` printed it
    Show(show::Args),
    /// List recorded runs, or show one with `runs show ID`
    Runs(runs::Args),
    /// Set, remove and list the secrets of the encrypted secrets file
    Secrets(secrets::Args),
    /// Deploy on every push: the webhook daemon (configured by manifests/serve.toml)
    Serve(serve::Args),
    /// Audit every node against git and the datacenters against each other (read-only)
    Drift(drift::Args),
    /// Make a standby datacenter the primary: demote the old primary first, then promote
    Promote(promote::Args),
    /// Primary datacenter, failover epoch, last promote, nodes by side and epoch
    Status(status::Args),
}

/// Most threads the runtime may start for blocking work: libssh2 is blocking, so every
/// node in flight holds one while it connects and while its command runs.
pub const MAX_BLOCKING_THREADS: usize = 4096;

/// Blocking threads beyond `--parallel` and `--max-connecting`: the site lock's wait, a
/// git fetch, a store read, and a node thread that is still seeing its cancellation.
const SPARE_BLOCKING_THREADS: usize = 64;

impl Cli {
    /// Threads the runtime may start for blocking work. A command that takes
    /// `--parallel` never has more than that many nodes in flight, so it gets that many
    /// plus spares: tokio starts a new thread whenever no idle one is counted, and on a
    /// loaded control node a woken thread is late to count itself, so without a bound a
    /// 1,000-node run at `--parallel 250` started 1,420. At the bound a task waits in
    /// tokio's queue for the next free thread instead; no blocking task here waits on
    /// another one, so that only delays it. Other commands (`serve`, `trust`) keep the
    /// ceiling.
    pub fn blocking_threads(&self) -> usize {
        let parallel = match &self.command {
            Command::Plan(args) => args.parallel,
            Command::Apply(args) => args.parallel,
            Command::Drift(args) => args.parallel,
            Command::Promote(args) => args.parallel,
            Command::Status(args) => args.parallel,
            _ => return MAX_BLOCKING_THREADS,
        };
        parallel
            .max(1)
            .saturating_add(self.global.max_connecting as usize)
            .saturating_add(SPARE_BLOCKING_THREADS)
            .min(MAX_BLOCKING_THREADS)
    }
}

pub async fn run(mut cli: Cli) -> anyhow::Result<Status> {
    cli.global.format = match (cli.global.format_name.as_str(), &cli.command) {
        ("json", _) => Format::Json,
        ("text", _) | (_, Command::Drift(_)) => Format::Text,
        (other, _) => anyhow::bail!("`--format {other}` is only for `tandem drift`"),
    };
    let global = &cli.global;
    match cli.command {
        Command::Check(args) => check::run(global, args).await,
        Command::Catalog(args) => catalog::run(global, args).await,
        Command::Explain(args) => explain::run(global, args).await,
        Command::Inventory(args) => inventory::run(global, args).await,
        Command::Trust(args) => trust::run(global, args).await,
        Command::Plan(args) => plan::run(global, args).await,
        Command::Apply(args) => apply::run(global, args).await,
        Command::Show(args) => show::run(global, args).await,
        Command::Runs(args) => runs::run(global, args).await,
        Command::Secrets(args) => secrets::run(global, args).await,
        Command::Serve(args) => serve::run(global, args).await,
        Command::Drift(args) => drift::run(global, args).await,
        Command::Promote(args) => promote::run(global, args).await,
        Command::Status(args) => status::run(global, args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threads(args: &[&str]) -> usize {
        let argv = std::iter::once("tandem").chain(args.iter().copied());
        Cli::try_parse_from(argv).unwrap().blocking_threads()
    }

    #[test]
    fn blocking_threads_follow_parallel_and_max_connecting() {
        assert_eq!(threads(&["apply", "--parallel", "250"]), 250 + 64 + 64);
        assert_eq!(
            threads(&["--max-connecting", "8", "plan", "--parallel", "1"]),
            1 + 8 + 64
        );
        assert_eq!(threads(&["drift"]), 50 + 64 + 64);
        assert_eq!(
            threads(&["apply", "--parallel", "100000"]),
            MAX_BLOCKING_THREADS
        );
        assert_eq!(threads(&["serve"]), MAX_BLOCKING_THREADS);
    }
}
