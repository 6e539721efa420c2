//! Reusing connections: a [`SessionPool`] is a [`Connector`] around another one that
//! hands out an idle open session to the same target when it has one, and takes each
//! session back when the caller drops it (unless the connection broke). One apply run
//! wraps its connector in a pool, so its settle probe, apply and health checks share
//! one connection per node; the daemon keeps one pool across its runs, so a push
//! converges over connections kept open since the last run.
//!
//! Safety of reuse: a kept session is keyed by everything that decides where and as
//! whom it connects (node name, address, port, user, and the connector's route: default
//! user and bastion). Idle sessions older than the pool's idle bound are closed. When a
//! session fails with [`TransportError::NotSent`] (the connection was already gone
//! before the command was handed over, so certainly nothing ran), the pool connects
//! afresh, verifying the host key as every connect does, and sends the command there,
//! once. Any other failure is returned as it is: a command that may have started is
//! never sent again. [`SessionPool::refresh`] closes kept sessions whose verified keys
//! the current known_hosts no longer trusts; [`SessionPool::keepalive`] keeps idle
//! connections alive and drops dead ones.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::known_hosts::KnownHosts;
use super::{Connector, Output, Session, TransportError};
use crate::node::Node;

/// How long an idle connection is kept: ten minutes covers a working session of pushes
/// and the audits between them, while a node nobody deployed to for that long gives
/// back its sshd process (and we our socket); keepalives, not the bound, are what keep
/// a kept connection through NAT and firewall idle timers.
pub const DEFAULT_MAX_IDLE: Duration = Duration::from_secs(600);

/// Idle sessions kept per target: a node has one in the common case, a second only
/// while a health check overlapped a command.
const PER_KEY: usize = 2;

/// Idle keepalives sent at once.
const KEEPALIVE_PARALLEL: usize = 64;

/// Everything that identifies where a session leads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: Option<String>,
    /// The connector's [`Connector::route`]: default user, bastion.
    pub route: String,
}

impl Key {
    pub fn of(node: &Node, route: String) -> Key {
        Key {
            name: node.name.as_str().to_string(),
            address: node.address.clone(),
            port: node.port,
            user: node.user.clone(),
            route,
        }
    }
}

struct Idle {
    session: Box<dyn Session>,
    since: Instant,
}

/// How many connections the pool opened and how often it reused or reconnected one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub opened: u64,
    pub reused: u64,
    pub reconnected: u64,
    /// Kept sessions closed at the start of a run: their host key no longer trusted by
    /// known_hosts, or idle past the bound.
    pub dropped: u64,
}

struct Shared {
    inner: Mutex<Option<Arc<dyn Connector>>>,
    idle: Mutex<HashMap<Key, Vec<Idle>>>,
    max_idle: Duration,
    opened: AtomicU64,
    reused: AtomicU64,
    reconnected: AtomicU64,
    dropped: AtomicU64,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves a map that is still consistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn inner(&self, node: &Node) -> Result<Arc<dyn Connector>, TransportError> {
        locked(&self.inner)
            .clone()
            .ok_or_else(|| TransportError::Unreachable {
                node: node.name.clone(),
                reason: "the session pool was given no connector".into(),
            })
    }

    /// The newest live idle session for `key`; expired and closed ones are dropped.
    fn take(&self, key: &Key) -> Option<Box<dyn Session>> {
        let mut idle = locked(&self.idle);
        let list = idle.get_mut(key)?;
        let mut found = None;
        while let Some(entry) = list.pop() {
            if entry.since.elapsed() < self.max_idle && entry.session.is_open() {
                found = Some(entry.session);
                break;
            }
        }
        if list.is_empty() {
            idle.remove(key);
        }
        found
    }

    fn put(&self, key: Key, session: Box<dyn Session>) {
        if !session.is_open() || self.max_idle.is_zero() {
            return;
        }
        let mut idle = locked(&self.idle);
        let list = idle.entry(key).or_default();
        if list.len() < PER_KEY {
            list.push(Idle {
                session,
                since: Instant::now(),
            });
        }
    }

    /// Drops idle sessions for which `keep` is false or that are past the idle bound.
    fn retain(&self, keep: impl Fn(&dyn Session) -> bool) -> usize {
        let mut idle = locked(&self.idle);
        let mut closed = 0;
        idle.retain(|_, list| {
            let before = list.len();
            list.retain(|e| {
                e.since.elapsed() < self.max_idle && e.session.is_open() && keep(&*e.session)
            });
            closed += before - list.len();
            !list.is_empty()
        });
        closed
    }
}

/// A [`Connector`] that reuses open sessions; cloning shares the pool.
#[derive(Clone)]
pub struct SessionPool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SessionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionPool")
            .field("idle", &self.idle_count())
            .field("max_idle", &self.shared.max_idle)
            .field("stats", &self.stats())
            .finish()
    }
}

impl SessionPool {
    /// A pool around `inner` keeping idle sessions up to `max_idle`.
    pub fn new(inner: Arc<dyn Connector>, max_idle: Duration) -> SessionPool {
        let pool = SessionPool::empty(max_idle);
        pool.set_connector(inner);
        pool
    }

    /// A pool with no connector yet (the daemon's, given one by [`Self::refresh`] at the
    /// start of each run).
    pub fn empty(max_idle: Duration) -> SessionPool {
        SessionPool {
            shared: Arc::new(Shared {
                inner: Mutex::new(None),
                idle: Mutex::new(HashMap::new()),
                max_idle,
                opened: AtomicU64::new(0),
                reused: AtomicU64::new(0),
                reconnected: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    pub fn set_connector(&self, inner: Arc<dyn Connector>) {
        *locked(&self.shared.inner) = Some(inner);
    }

    /// At the start of a run: new connections go through `inner` (its known_hosts read
    /// afresh), and kept sessions whose verified keys `known_hosts` no longer trusts, or
    /// that idled past the bound, are closed. Returns how many were closed.
    pub fn refresh(&self, inner: Arc<dyn Connector>, known_hosts: Option<&KnownHosts>) -> usize {
        self.set_connector(inner);
        let closed = self
            .shared
            .retain(|session| known_hosts.is_none_or(|k| session.still_trusted(k)));
        self.shared
            .dropped
            .fetch_add(closed as u64, Ordering::Relaxed);
        closed
    }

    /// Closes idle sessions past the idle bound; returns how many.
    pub fn expire(&self) -> usize {
        self.shared.retain(|_| true)
    }

    /// Sends each idle session a keepalive and closes those found dead (and expired
    /// ones). Returns how many were closed.
    pub async fn keepalive(&self) -> usize {
        let closed = self.expire();
        let mut taken: Vec<(Key, Idle)> = std::mem::take(&mut *locked(&self.shared.idle))
            .into_iter()
            .flat_map(|(key, list)| list.into_iter().map(move |idle| (key.clone(), idle)))
            .collect();
        let before = taken.len();
        let mut alive = Vec::with_capacity(before);
        while !taken.is_empty() {
            let chunk = taken.split_off(taken.len().saturating_sub(KEEPALIVE_PARALLEL));
            let mut set = tokio::task::JoinSet::new();
            for (key, mut idle) in chunk {
                set.spawn(async move { idle.session.keepalive().await.ok().map(|()| (key, idle)) });
            }
            while let Some(done) = set.join_next().await {
                alive.extend(done.ok().flatten());
            }
        }
        let dead = before - alive.len();
        let mut idle = locked(&self.shared.idle);
        for (key, entry) in alive {
            let list = idle.entry(key).or_default();
            if list.len() < PER_KEY {
                list.push(entry);
            }
        }
        closed + dead
    }

    /// Idle sessions held now.
    pub fn idle_count(&self) -> usize {
        locked(&self.shared.idle).values().map(Vec::len).sum()
    }

    /// One line for the daemon's log: what the pool did since it was made.
    pub fn summary(&self) -> String {
        let stats = self.stats();
        format!(
            "connections since start: {} opened, {} reused, {} reconnected, {} closed at a run's start (host key no longer trusted, or idle too long); {} kept open",
            stats.opened,
            stats.reused,
            stats.reconnected,
            stats.dropped,
            self.idle_count()
        )
    }

    pub fn stats(&self) -> Stats {
        Stats {
            opened: self.shared.opened.load(Ordering::Relaxed),
            reused: self.shared.reused.load(Ordering::Relaxed),
            reconnected: self.shared.reconnected.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
        }
    }
}

#[async_trait]
impl Connector for SessionPool {
    async fn connect(&self, node: &Node) -> Result<Box<dyn Session>, TransportError> {
        let inner = self.shared.inner(node)?;
        let key = Key::of(node, inner.route());
        let (session, reused) = match self.shared.take(&key) {
            Some(session) => {
                self.shared.reused.fetch_add(1, Ordering::Relaxed);
                (session, true)
            }
            None => {
                let session = inner.connect(node).await?;
                self.shared.opened.fetch_add(1, Ordering::Relaxed);
                (session, false)
            }
        };
        Ok(Box::new(Pooled {
            shared: self.shared.clone(),
            key,
            node: node.clone(),
            session: Some(session),
            used: reused,
            round_trips: 0,
        }))
    }

    fn route(&self) -> String {
        locked(&self.shared.inner)
            .as_ref()
            .map_or(String::new(), |inner| inner.route())
    }
}

/// A session handed out by the pool; goes back to it when dropped, if still open.
struct Pooled {
    shared: Arc<Shared>,
    key: Key,
    node: Node,
    /// `Some` until dropped.
    session: Option<Box<dyn Session>>,
    /// The connection carried commands before this one (kept from an earlier use, or an
    /// earlier command of this hand-out): a `NotSent` on it is a connection that died
    /// since, worth one fresh connect.
    used: bool,
    round_trips: u32,
}

/// After a `NotSent` on a kept connection (nothing ran): a fresh connection (the host
/// key verified as always), used only when it is to the same machine the hand-out was
/// verified as (`before`), or nothing is sent. Once per command.
async fn reconnect(
    shared: &Shared,
    node: &Node,
    before: Option<&str>,
) -> Result<Box<dyn Session>, TransportError> {
    let inner = shared.inner(node)?;
    let fresh = inner.connect(node).await?;
    shared.opened.fetch_add(1, Ordering::Relaxed);
    shared.reconnected.fetch_add(1, Ordering::Relaxed);
    if fresh.host_key().as_deref() != before {
        return Err(TransportError::HostKey {
            node: node.name.clone(),
            reason: format!(
                "on reconnecting, the node presented {} where this run had verified {}; nothing was sent",
                fresh.host_key().as_deref().unwrap_or("no key"),
                before.unwrap_or("no key")
            ),
        });
    }
    Ok(fresh)
}

impl Pooled {
    fn session(&mut self) -> Result<&mut Box<dyn Session>, TransportError> {
        self.session.as_mut().ok_or_else(|| TransportError::Lost {
            node: self.node.name.clone(),
            reason: "the pooled session was already given back".into(),
        })
    }
}

#[async_trait]
impl Session for Pooled {
    async fn exec(
        &mut self,
        command: &str,
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<Output, TransportError> {
        self.round_trips += 1;
        let used = std::mem::replace(&mut self.used, true);
        let session = self.session()?;
        let before = session.host_key();
        match session.exec(command, stdin, timeout).await {
            Err(TransportError::NotSent { .. }) if used => {
                let mut fresh = reconnect(&self.shared, &self.node, before.as_deref()).await?;
                let result = fresh.exec(command, stdin, timeout).await;
                self.session = Some(fresh);
                result
            }
            other => other,
        }
    }

    async fn hold(
        &mut self,
        command: &str,
        stdin: &[u8],
        until: &[u8],
        timeout: Duration,
        whole: Duration,
    ) -> Result<Option<Output>, TransportError> {
        let used = std::mem::replace(&mut self.used, true);
        let session = self.session()?;
        let before = session.host_key();
        let result = match session.hold(command, stdin, until, timeout, whole).await {
            Err(TransportError::NotSent { .. }) if used => {
                let mut fresh = reconnect(&self.shared, &self.node, before.as_deref()).await?;
                let result = fresh.hold(command, stdin, until, timeout, whole).await;
                self.session = Some(fresh);
                result
            }
            other => other,
        };
        match result {
            // Nothing was run.
            Ok(None) => self.used = used,
            _ => self.round_trips += 1,
        }
        result
    }

    async fn resume(&mut self, stdin: &[u8], timeout: Duration) -> Result<Output, TransportError> {
        self.session()?.resume(stdin, timeout).await
    }

    fn holding(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.holding())
    }

    fn round_trips(&self) -> u32 {
        self.round_trips
    }

    fn host_key(&self) -> Option<String> {
        self.session.as_ref().and_then(|s| s.host_key())
    }

    fn is_open(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.is_open())
    }

    fn still_trusted(&self, known_hosts: &KnownHosts) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.still_trusted(known_hosts))
    }

    async fn keepalive(&mut self) -> Result<(), TransportError> {
        self.session()?.keepalive().await
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.shared.put(self.key.clone(), session);
        }
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
