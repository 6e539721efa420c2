//! Reading the nodes for a drift report: per node one connection and ONE command, the
//! plan probe of its catalog plus the node state file (`fact::applied`) and the OS and
//! kernel release (`fact::system`). Every command the probe runs only reads (`stat`,
//! `sha256sum`, `head`, `diff` against stdin, the package query, `systemctl show`, shell
//! builtins); nothing here builds or sends an apply script.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::catalog::Catalog;
use crate::fact::{applied, system, NodeFacts, Token};
use crate::path::RemotePath;
use crate::plan::{self, NodePlan};
use crate::secret::SecretStore;
use crate::transport::{Connector, TransportError};

/// How one node was read.
#[derive(Debug)]
pub enum Read {
    /// The probe ran: what it read and the plan against the current catalog.
    Read {
        facts: Box<NodeFacts>,
        plan: NodePlan,
        host_key: Option<String>,
    },
    /// No connection, or it was lost.
    Unreachable(String),
    /// The node presented a host key tandem's known_hosts does not hold for it: no
    /// command was sent.
    HostKey(String),
    /// Connected, but the probe's output could not be used.
    NotChecked(String),
}

/// What a drift read needs besides the catalogs.
#[derive(Clone)]
pub struct ReadOptions {
    pub parallel: usize,
    pub command_timeout: Duration,
    pub state_dir: RemotePath,
    pub secrets: Arc<SecretStore>,
}

/// The probe script of a drift read and its stdin.
pub fn script(catalog: &Catalog, token: Token, state_dir: &RemotePath) -> (String, Vec<u8>) {
    let cache = crate::fact::script::PackageCache::Read(state_dir.clone());
    let (mut script, stdin) = plan::probe_script_with(catalog, token, cache);
    // The probe ends with its `end` section: what is added goes before it.
    let end = crate::fact::Section::End.emit();
    let at = script.rfind(&end).unwrap_or(script.len());
    let extra = format!(
        "{}{}",
        applied::probe_shell(state_dir),
        system::probe_shell()
    );
    script.insert_str(at, &extra);
    (script, stdin)
}

/// Reads every catalog's node, at most `options.parallel` at once; results in input
/// order.
pub async fn read_nodes(
    catalogs: &[Catalog],
    connector: Arc<dyn Connector>,
    options: &ReadOptions,
) -> Vec<Read> {
    let semaphore = Arc::new(Semaphore::new(options.parallel.max(1)));
    let mut tasks = Vec::with_capacity(catalogs.len());
    for catalog in catalogs {
        let (catalog, connector, options) = (catalog.clone(), connector.clone(), options.clone());
        let semaphore = semaphore.clone();
        tasks.push(tokio::spawn(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _permit = semaphore.acquire_owned().await;
            read_node(&catalog, &*connector, &options).await
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok(read) => out.push(read),
            // A panicking node task is a bug: re-raise it.
            Err(err) => std::panic::resume_unwind(err.into_panic()),
        }
    }
    out
}

async fn read_node(catalog: &Catalog, connector: &dyn Connector, options: &ReadOptions) -> Read {
    let mut session = match connector.connect(&catalog.node).await {
        Ok(s) => s,
        Err(err) => return transport_failure(err),
    };
    let token = Token::random();
    let (command, stdin) = script(catalog, token.clone(), &options.state_dir);
    let out = match session
        .exec(&command, &stdin, options.command_timeout)
        .await
    {
        Ok(out) => out,
        Err(err) => return transport_failure(err),
    };
    if !out.success() {
        return Read::NotChecked(format!(
            "the probe exited with status {:?}: {}",
            out.status,
            options
                .secrets
                .redact(String::from_utf8_lossy(&out.stderr).trim())
        ));
    }
    let facts = match NodeFacts::parse(&out.stdout, &token) {
        Ok(f) => f,
        Err(err) => return Read::NotChecked(err.to_string()),
    };
    match plan::plan_node(catalog, &facts, &options.secrets) {
        Ok(plan) => Read::Read {
            facts: Box::new(facts),
            plan,
            host_key: session.host_key(),
        },
        Err(err) => Read::NotChecked(err.to_string()),
    }
}

fn transport_failure(err: TransportError) -> Read {
    match err {
        TransportError::HostKey { .. } => Read::HostKey(err.to_string()),
        TransportError::Unreachable { .. }
        | TransportError::Auth { .. }
        | TransportError::Lost { .. }
        | TransportError::NotSent { .. }
        | TransportError::Timeout { .. } => Read::Unreachable(err.to_string()),
        #[allow(unreachable_patterns)]
        _ => Read::NotChecked(err.to_string()),
    }
}
