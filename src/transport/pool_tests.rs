//! The pool's own logic over the local transport (real `sh` commands): keying, idle
//! expiry, what is kept and what is not, and the one reconnect on `NotSent`.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use super::*;
use crate::node::{DatacenterName, NodeName, RoleName};
use crate::transport::local::LocalConnector;

fn node(name: &str, address: &str, port: u16, user: Option<&str>) -> Node {
    Node {
        name: NodeName::new(name).unwrap(),
        datacenter: DatacenterName::new("dc").unwrap(),
        role: RoleName::new("web").unwrap(),
        address: address.into(),
        port,
        user: user.map(str::to_string),
        facts: Default::default(),
        vars: Default::default(),
    }
}

/// The local transport, counting connections and keeping a "kill switch" per session
/// it opened; `route` is what it reports.
#[derive(Default)]
struct Counting {
    connects: AtomicU32,
    killed: Mutex<Vec<Arc<AtomicBool>>>,
    /// Sessions opened from now on are dead from the start.
    dead_on_arrival: AtomicBool,
    route: Mutex<String>,
}

impl Counting {
    /// The connection of the `n`th session opened dies, unseen until it is used.
    fn kill(&self, n: usize) {
        locked(&self.killed)[n].store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl Connector for Counting {
    async fn connect(&self, node: &Node) -> Result<Box<dyn Session>, TransportError> {
        self.connects.fetch_add(1, Ordering::SeqCst);
        let inner = LocalConnector.connect(node).await?;
        let dead = Arc::new(AtomicBool::new(self.dead_on_arrival.load(Ordering::SeqCst)));
        locked(&self.killed).push(dead.clone());
        Ok(Box::new(Flaky { inner, dead }))
    }

    fn route(&self) -> String {
        locked(&self.route).clone()
    }
}

/// A local session whose connection can die: then a command is refused before it
/// starts, as SSH refuses it when no channel opens.
struct Flaky {
    inner: Box<dyn Session>,
    dead: Arc<AtomicBool>,
}

#[async_trait]
impl Session for Flaky {
    async fn exec(&mut self, c: &str, i: &[u8], t: Duration) -> Result<Output, TransportError> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(TransportError::NotSent {
                node: NodeName::new("n").unwrap(),
                reason: "cannot open a channel".into(),
            });
        }
        self.inner.exec(c, i, t).await
    }
    async fn resume(&mut self, i: &[u8], t: Duration) -> Result<Output, TransportError> {
        self.inner.resume(i, t).await
    }
    fn round_trips(&self) -> u32 {
        self.inner.round_trips()
    }
    /// Known dead once a command found it so (as `SshSession` after `NotSent`).
    fn is_open(&self) -> bool {
        !self.dead.load(Ordering::SeqCst)
    }
}

const T: Duration = Duration::from_secs(10);

#[test]
fn keys_tell_apart_every_part_of_the_target() {
    let base = Key::of(&node("a", "10.0.0.1", 22, None), "ssh as root".into());
    assert_eq!(
        base,
        Key::of(&node("a", "10.0.0.1", 22, None), "ssh as root".into())
    );
    for other in [
        Key::of(&node("b", "10.0.0.1", 22, None), "ssh as root".into()),
        Key::of(&node("a", "10.0.0.2", 22, None), "ssh as root".into()),
        Key::of(&node("a", "10.0.0.1", 2222, None), "ssh as root".into()),
        Key::of(
            &node("a", "10.0.0.1", 22, Some("deploy")),
            "ssh as root".into(),
        ),
        Key::of(
            &node("a", "10.0.0.1", 22, None),
            "ssh as root via root@[10.0.0.9]:22".into(),
        ),
    ] {
        assert_ne!(base, other);
    }
}

#[tokio::test]
async fn a_dropped_session_is_handed_out_again_to_the_same_target_only() {
    let inner = Arc::new(Counting::default());
    let pool = SessionPool::new(inner.clone(), DEFAULT_MAX_IDLE);
    let a = node("a", "10.0.0.1", 22, None);
    let mut s = pool.connect(&a).await.unwrap();
    s.exec("true", b"", T).await.unwrap();
    assert_eq!(s.round_trips(), 1);
    drop(s);
    assert_eq!(pool.idle_count(), 1);
    let mut s = pool.connect(&a).await.unwrap();
    // Round trips count per hand-out, as the apply report reads them.
    assert_eq!(s.round_trips(), 0);
    assert_eq!(s.exec("echo hi", b"", T).await.unwrap().stdout, b"hi\n");
    assert_eq!(inner.connects.load(Ordering::SeqCst), 1);
    drop(s);
    // Another port, another user, another route: a new connection each.
    pool.connect(&node("a", "10.0.0.1", 2222, None))
        .await
        .unwrap();
    pool.connect(&node("a", "10.0.0.1", 22, Some("deploy")))
        .await
        .unwrap();
    *locked(&inner.route) = "via bastion".into();
    pool.connect(&a).await.unwrap();
    assert_eq!(inner.connects.load(Ordering::SeqCst), 4);
    assert_eq!(
        pool.stats(),
        Stats {
            opened: 4,
            reused: 1,
            reconnected: 0,
            dropped: 0
        }
    );
}

#[tokio::test]
async fn idle_sessions_past_the_bound_are_closed_not_reused() {
    let inner = Arc::new(Counting::default());
    let pool = SessionPool::new(inner.clone(), Duration::from_millis(200));
    let a = node("a", "10.0.0.1", 22, None);
    drop(pool.connect(&a).await.unwrap());
    assert_eq!(pool.idle_count(), 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool.expire() == 0 {
        assert!(Instant::now() < deadline, "never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pool.idle_count(), 0);
    drop(pool.connect(&a).await.unwrap());
    assert_eq!(inner.connects.load(Ordering::SeqCst), 2);
    // A zero bound keeps nothing.
    let none = SessionPool::new(inner.clone(), Duration::ZERO);
    drop(none.connect(&a).await.unwrap());
    assert_eq!(none.idle_count(), 0);
}

#[tokio::test]
async fn a_reused_session_refused_before_sending_reconnects_once() {
    let inner = Arc::new(Counting::default());
    let pool = SessionPool::new(inner.clone(), DEFAULT_MAX_IDLE);
    let a = node("a", "10.0.0.1", 22, None);
    // A fresh connection refused on its first command: nothing to fall back on.
    let mut s = pool.connect(&a).await.unwrap();
    inner.kill(0);
    let err = s.exec("true", b"", T).await.unwrap_err();
    assert!(matches!(err, TransportError::NotSent { .. }), "{err}");
    drop(s);
    // A kept connection that died while idle: one fresh connect, the command runs
    // there, exactly once.
    drop(pool.connect(&a).await.unwrap());
    let mut s = pool.connect(&a).await.unwrap();
    assert_eq!(inner.connects.load(Ordering::SeqCst), 2);
    inner.kill(1);
    let marker = std::env::temp_dir().join(format!("tandem-pool-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let command = format!("echo x >> {0}; cat {0}", marker.display());
    let out = s.exec(&command, b"", T).await.unwrap();
    assert_eq!(out.stdout, b"x\n", "sent exactly once");
    assert_eq!(s.round_trips(), 1);
    assert_eq!(inner.connects.load(Ordering::SeqCst), 3);
    assert_eq!(pool.stats().reconnected, 1);
    // The fresh connection dying too is not retried again within the same command.
    inner.kill(2);
    inner.dead_on_arrival.store(true, Ordering::SeqCst);
    let err = s.exec("true", b"", T).await.unwrap_err();
    assert!(matches!(err, TransportError::NotSent { .. }), "{err}");
    assert_eq!(
        inner.connects.load(Ordering::SeqCst),
        4,
        "one reconnect per command"
    );
    let _ = std::fs::remove_file(&marker);
}
