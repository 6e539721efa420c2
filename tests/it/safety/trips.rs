//! Round trips of an apply run, counted at the transport: every command any session of
//! the run sends to a node, whoever sends it (settling, the rollout, health checks).
//! A node that changes in the rollout's first batch costs one command: the settling
//! probe, held open, carries its apply script (`apply::held`). A node of a later batch
//! is probed again when its turn comes, since health checks and pauses came between,
//! and that probe carries the script: two commands.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use tandem::transport::{Output, Session, TransportError};

use super::*;

/// The local transport, counting each node's commands over all its sessions; with a
/// lag set, every command (and a held one's resumption) starts that much later, as over
/// a slow link.
#[derive(Default)]
struct Counting {
    commands: Arc<Mutex<HashMap<String, u32>>>,
    lag: Arc<Mutex<Duration>>,
}

impl Counting {
    fn set_lag(&self, lag: Duration) {
        *self.lag.lock().unwrap() = lag;
    }

    fn commands(&self, node: &str) -> u32 {
        self.commands
            .lock()
            .unwrap()
            .get(node)
            .copied()
            .unwrap_or(0)
    }
}

#[async_trait]
impl Connector for Counting {
    async fn connect(&self, node: &Node) -> Result<Box<dyn Session>, TransportError> {
        Ok(Box::new(CountingSession {
            inner: LocalConnector.connect(node).await?,
            node: node.name.to_string(),
            commands: self.commands.clone(),
            lag: self.lag.clone(),
        }))
    }
}

struct CountingSession {
    inner: Box<dyn Session>,
    node: String,
    commands: Arc<Mutex<HashMap<String, u32>>>,
    lag: Arc<Mutex<Duration>>,
}

impl CountingSession {
    fn lag(&self) -> tokio::time::Sleep {
        tokio::time::sleep(*self.lag.lock().unwrap())
    }
}

#[async_trait]
impl Session for CountingSession {
    async fn exec(
        &mut self,
        command: &str,
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<Output, TransportError> {
        *self
            .commands
            .lock()
            .unwrap()
            .entry(self.node.clone())
            .or_default() += 1;
        self.lag().await;
        self.inner.exec(command, stdin, timeout).await
    }

    /// A held command is one command, whatever its resumption carries.
    async fn hold(
        &mut self,
        command: &str,
        stdin: &[u8],
        until: &[u8],
        timeout: Duration,
        whole: Duration,
    ) -> Result<Option<Output>, TransportError> {
        self.lag().await;
        let held = self.inner.hold(command, stdin, until, timeout, whole).await;
        if !matches!(held, Ok(None)) {
            *self
                .commands
                .lock()
                .unwrap()
                .entry(self.node.clone())
                .or_default() += 1;
        }
        held
    }

    async fn resume(&mut self, stdin: &[u8], timeout: Duration) -> Result<Output, TransportError> {
        self.lag().await;
        self.inner.resume(stdin, timeout).await
    }

    fn holding(&self) -> bool {
        self.inner.holding()
    }

    fn round_trips(&self) -> u32 {
        self.inner.round_trips()
    }
}

fn counted_site() -> (Site, Arc<Counting>) {
    let mut site = Site::new();
    let counting = Arc::new(Counting::default());
    site.connector = counting.clone();
    (site, counting)
}

/// `tandem apply` of `jobs` with the default rollout (every node in one batch).
async fn in_one_batch(site: &Site, jobs: Vec<Job>) -> DeployReport {
    site.deploy(
        jobs,
        &site.options(),
        RolloutPolicy::default(),
        "tandem apply",
        Wait::FailFast,
    )
    .await
    .unwrap()
}

fn files(site: &Site, names: &[&str], text: &str) -> Vec<Job> {
    jobs(
        names
            .iter()
            .map(|n| catalog(n, vec![file(&site.disk(n).join("a.conf"), text)]))
            .collect(),
    )
}

#[tokio::test]
async fn a_change_in_a_single_batch_costs_one_command() {
    let (site, counting) = counted_site();
    let first = in_one_batch(&site, files(&site, &["n1", "n2"], "a\n")).await;
    assert_eq!(first.exit_status(), Status::Ok);
    let before = (counting.commands("n1"), counting.commands("n2"));

    // n2 changes; n1 stays in sync.
    let mut jobs = files(&site, &["n1"], "a\n");
    jobs.extend(files(&site, &["n2"], "b\n"));
    let report = in_one_batch(&site, jobs).await;
    assert_eq!(report.exit_status(), Status::Ok);
    let mut got = outcomes(&report);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("n1".into(), Outcome::Unchanged),
            ("n2".into(), Outcome::Changed)
        ]
    );
    assert_eq!(
        std::fs::read_to_string(site.disk("n2").join("a.conf")).unwrap(),
        "b\n"
    );
    assert_eq!(
        counting.commands("n1") - before.0,
        1,
        "in sync: the probe only"
    );
    assert_eq!(
        counting.commands("n2") - before.1,
        1,
        "changed: the settling probe, held, carried the apply script (which verifies)"
    );
    let n2 = report
        .nodes
        .iter()
        .find(|n| n.node.as_str() == "n2")
        .unwrap();
    assert_eq!(n2.round_trips, 1, "the report counts the one command");
}

/// A node's reported time is its own: for a node in sync, its settling probe (not 0
/// because it was done before the rollout); for a changed one, that probe and its
/// script; never the run's whole time. In the report and in the run history
/// (`tandem runs show`).
#[tokio::test]
async fn each_node_reports_the_time_its_own_commands_took() {
    const LAG: Duration = Duration::from_millis(300);
    let (site, counting) = counted_site();
    let first = in_one_batch(&site, files(&site, &["n1", "n2"], "a\n")).await;
    assert_eq!(first.exit_status(), Status::Ok);

    // Behind a slow link: n1 in sync, n2 changes.
    counting.set_lag(LAG);
    let mut jobs = files(&site, &["n1"], "a\n");
    jobs.extend(files(&site, &["n2"], "b\n"));
    let started = std::time::Instant::now();
    let report = in_one_batch(&site, jobs).await;
    let wall = started.elapsed();
    assert_eq!(report.exit_status(), Status::Ok);
    let took = |name: &str| {
        let n = report
            .nodes
            .iter()
            .find(|n| n.node.as_str() == name)
            .unwrap();
        (n.outcome, Duration::from_millis(n.elapsed_ms as u64))
    };
    let (n1, n2) = (took("n1"), took("n2"));
    assert_eq!((n1.0, n2.0), (Outcome::Unchanged, Outcome::Changed));
    assert!(
        n1.1 >= LAG && n1.1 <= wall,
        "in sync: its probe, {n1:?} of {wall:?}"
    );
    assert!(
        n2.1 >= 2 * LAG && n2.1 <= wall,
        "changed: its probe and its script, {n2:?} of {wall:?}"
    );
    let store = Store::open(&site.history()).unwrap();
    let detail = store.run(report.run).unwrap();
    for n in &detail.nodes {
        let want = report.nodes.iter().find(|r| r.node == n.node).unwrap();
        assert_eq!(n.duration_ms as u128, want.elapsed_ms, "{}", n.node);
    }
}

#[tokio::test]
async fn a_later_batch_is_probed_again_when_its_turn_comes() {
    let (site, counting) = counted_site();
    let report = site
        .deploy(
            files(&site, &["n1", "n2"], "a\n"),
            &site.options(),
            one_by_one(0),
            "tandem apply",
            Wait::FailFast,
        )
        .await
        .unwrap();
    assert_eq!(report.exit_status(), Status::Ok);
    let batches: Vec<(usize, String)> = report
        .rollout
        .nodes
        .iter()
        .map(|n| (n.batch, n.node.to_string()))
        .collect();
    assert_eq!(batches.len(), 2, "{batches:?}");
    assert_ne!(
        batches[0].0, batches[1].0,
        "one node per batch: {batches:?}"
    );
    let (first, second) = (&batches[0].1, &batches[1].1);
    assert_eq!(
        counting.commands(first),
        1,
        "first batch: the settling probe, carrying the script"
    );
    assert_eq!(
        counting.commands(second),
        2,
        "later batch: the settling probe, then a fresh probe at its turn carrying the script"
    );
    for n in ["n1", "n2"] {
        assert_eq!(
            std::fs::read_to_string(site.disk(n).join("a.conf")).unwrap(),
            "a\n"
        );
    }
}
