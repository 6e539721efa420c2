//! Store round trips, migrations, and crash detection with a real killed process.

use std::time::SystemTime;

use super::*;
use crate::lock::tests::{spawn_helper, wait_for_line};
use crate::lock::Wait;
use crate::node::{DatacenterName, NodeName};
use crate::outcome::Outcome;
use crate::secret::Secret;

fn apply_run() -> NewRun {
    NewRun {
        kind: RunKind::Apply,
        started_by: "alice@build-1".into(),
        command: "tandem apply --on dc:aws-useast1".into(),
        commit: Some("3f2a9c1".into()),
        dirty: false,
        site_digest: None,
    }
}

#[test]
fn a_run_round_trips_with_nodes_and_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_site(dir.path()).unwrap();
    assert!(dir.path().join(DEFAULT_PATH).exists());
    let id = store.begin(&apply_run()).unwrap();
    assert_eq!(store.run(id).unwrap().run.status, RunStatus::Running);

    let started = SystemTime::now();
    let fe1 = NodeRun::new(
        NodeName::new("fe-1").unwrap(),
        Some(DatacenterName::new("aws-useast1").unwrap()),
        Outcome::Changed,
        started,
        Duration::from_millis(1234),
    );
    let fe2 = NodeRun::new(
        NodeName::new("fe-2").unwrap(),
        None,
        Outcome::Unreachable,
        started,
        Duration::from_secs(10),
    )
    .with_error("connect to `10.9.0.2:22` timed out after 10s");
    store.record_node(id, &fe2).unwrap();
    store.record_node(id, &fe1).unwrap();
    let change = ResourceChange {
        node: NodeName::new("fe-1").unwrap(),
        resource: "file:/etc/nginx/nginx.conf".parse().unwrap(),
        action: ChangeAction::Modify,
        summary: "content: 2 lines changed".into(),
    };
    store.record_change(id, &change).unwrap();
    store
        .finish(id, RunStatus::Unreachable, Some("1 node unreachable"))
        .unwrap();

    let detail = store.run(id).unwrap();
    assert_eq!(detail.run.status, RunStatus::Unreachable);
    assert_eq!(detail.run.started_by, "alice@build-1");
    assert_eq!(detail.run.commit.as_deref(), Some("3f2a9c1"));
    assert_eq!(detail.run.pid, std::process::id());
    assert_eq!(detail.run.error.as_deref(), Some("1 node unreachable"));
    assert!(detail.run.finished_at.is_some() && detail.run.duration_ms.unwrap() >= 0);
    assert_eq!(detail.nodes, vec![fe1, fe2], "nodes come back by name");
    assert_eq!(detail.changes, vec![change]);

    let json = serde_json::to_value(&detail).unwrap();
    assert_eq!(json["status"], "unreachable");
    assert_eq!(json["nodes"][1]["outcome"], "unreachable");
    assert_eq!(json["changes"][0]["resource"], "file:/etc/nginx/nginx.conf");
}

#[test]
fn runs_list_newest_first_with_a_limit_and_unknown_ids_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("h.sqlite")).unwrap();
    let ids: Vec<RunId> = (0..5).map(|_| store.begin(&apply_run()).unwrap()).collect();
    let listed: Vec<RunId> = store.runs(3).unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(listed, vec![ids[4], ids[3], ids[2]]);
    let err = store.run(RunId(99)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("no run `99` in the run history `"),
        "{err}"
    );
    assert!(matches!(
        store.finish(RunId(99), RunStatus::Succeeded, None),
        Err(StoreError::NoSuchRun { .. })
    ));
}

#[test]
fn secrets_are_redacted_before_they_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut secrets = SecretStore::default();
    secrets.insert(Secret::new("mongo_password", "hunter2-very-secret"));
    let store = Store::open(&dir.path().join("h.sqlite"))
        .unwrap()
        .with_secrets(secrets);
    let mut run = apply_run();
    run.command = "tandem apply --var pw=hunter2-very-secret".into();
    let id = store.begin(&run).unwrap();
    let node = NodeRun::new(
        NodeName::new("db-1").unwrap(),
        None,
        Outcome::Failed,
        SystemTime::now(),
        Duration::ZERO,
    )
    .with_error("mongod refused password hunter2-very-secret");
    store.record_node(id, &node).unwrap();
    store
        .record_change(
            id,
            &ResourceChange {
                node: NodeName::new("db-1").unwrap(),
                resource: "file:/etc/mongod.conf".parse().unwrap(),
                action: ChangeAction::Modify,
                summary: "password: hunter2-very-secret".into(),
            },
        )
        .unwrap();
    store
        .finish(id, RunStatus::Failed, Some("db-1: hunter2-very-secret"))
        .unwrap();
    drop(store);
    let raw = std::fs::read(dir.path().join("h.sqlite")).unwrap();
    let wal = std::fs::read(dir.path().join("h.sqlite-wal")).unwrap_or_default();
    for bytes in [raw, wal] {
        assert!(!String::from_utf8_lossy(&bytes).contains("hunter2-very-secret"));
    }
    let detail = Store::open(&dir.path().join("h.sqlite"))
        .unwrap()
        .run(id)
        .unwrap();
    assert!(
        detail.run.command.contains("[secret"),
        "{}",
        detail.run.command
    );
    assert!(!detail.changes[0].summary.contains("hunter2"));
}

#[test]
fn the_schema_is_versioned_and_a_newer_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    let id = store.begin(&apply_run()).unwrap();
    store.finish(id, RunStatus::Succeeded, None).unwrap();
    drop(store);
    // Reopening migrates nothing and keeps the data.
    let store = Store::open(&path).unwrap();
    assert_eq!(store.runs(10).unwrap().len(), 1);
    let mode: String = store
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    store.conn.pragma_update(None, "user_version", 99).unwrap();
    drop(store);
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
    assert!(err.to_string().contains("upgrade tandem"));
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", -3).unwrap();
    drop(conn);
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::BadVersion { found: -3, .. })
    ));
}

#[test]
fn open_existing_does_not_create_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.sqlite");
    assert!(Store::open_existing(&path).unwrap().is_none());
    assert!(!path.exists());
}

#[test]
fn a_reused_pid_does_not_keep_a_dead_run_running() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite");
    let store = Store::open(&path).unwrap();
    let id = store.begin(&apply_run()).unwrap();
    // Same pid, other start time: the process that began the run is gone.
    store
        .conn
        .execute(
            "UPDATE runs SET pid_start = pid_start + 1 WHERE id = ?1",
            [id.0],
        )
        .unwrap();
    let live = store.begin(&apply_run()).unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.run(id).unwrap().run.status, RunStatus::Interrupted);
    assert_eq!(
        store.run(live).unwrap().run.status,
        RunStatus::Running,
        "this process is alive"
    );
}

#[test]
fn the_lock_holder_interrupts_runs_of_other_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_site(dir.path()).unwrap();
    let id = store.begin(&apply_run()).unwrap();
    store
        .conn
        .execute("UPDATE runs SET host = 'build-2' WHERE id = ?1", [id.0])
        .unwrap();
    let mut plan = apply_run();
    plan.kind = RunKind::Plan;
    let plan_id = store.begin(&plan).unwrap();
    drop(store);
    let store = Store::open_site(dir.path()).unwrap();
    assert_eq!(
        store.run(id).unwrap().run.status,
        RunStatus::Running,
        "another host's pid says nothing here"
    );
    let lock = SiteLock::acquire(dir.path(), "tandem apply", Wait::FailFast).unwrap();
    assert_eq!(store.interrupt_orphans(&lock).unwrap(), 1);
    assert_eq!(store.run(id).unwrap().run.status, RunStatus::Interrupted);
    assert_eq!(
        store.run(plan_id).unwrap().run.status,
        RunStatus::Running,
        "plans do not take the lock"
    );
}

#[test]
#[ignore = "helper process for the crash test"]
fn run_recorder_process() {
    let Ok(path) = std::env::var("TANDEM_TEST_STORE") else {
        return;
    };
    let store = Store::open(Path::new(&path)).unwrap();
    let id = store.begin(&apply_run()).unwrap();
    let node = NodeRun::new(
        NodeName::new("fe-1").unwrap(),
        None,
        Outcome::Changed,
        SystemTime::now(),
        Duration::from_millis(5),
    );
    store.record_node(id, &node).unwrap();
    println!("STARTED {id}");
    std::thread::sleep(Duration::from_secs(30));
    store.finish(id, RunStatus::Succeeded, None).unwrap();
}

#[test]
fn a_killed_run_shows_as_interrupted_and_a_live_one_as_running() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite");
    let (mut child, lines) = spawn_helper(
        "store::tests::run_recorder_process",
        &[("TANDEM_TEST_STORE", path.display().to_string())],
    );
    let line = wait_for_line(&lines, "STARTED");
    let id: RunId = line.trim_start_matches("STARTED ").parse().unwrap();

    let store = Store::open(&path).unwrap();
    let detail = store.run(id).unwrap();
    assert_eq!(detail.run.status, RunStatus::Running);
    assert_eq!(detail.run.pid, child.id());
    drop(store);

    child.kill().unwrap();
    child.wait().unwrap();
    let store = Store::open(&path).unwrap();
    let detail = store.run(id).unwrap();
    assert_eq!(detail.run.status, RunStatus::Interrupted);
    let error = detail.run.error.unwrap();
    assert!(
        error.starts_with(&format!("process {} on `", child.id())),
        "{error}"
    );
    assert_eq!(
        detail.nodes.len(),
        1,
        "what was recorded before the crash is kept"
    );
    assert_eq!(detail.run.finished_at, None);
}

#[tokio::test]
async fn a_halted_rollout_records_its_reason_and_the_nodes_never_attempted() {
    use crate::datacenter::{DatacenterSpec, ProviderConfig};
    use crate::rollout::{self, RolloutPolicy};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_site(dir.path()).unwrap();
    let id = store.begin(&apply_run()).unwrap();
    let datacenters = [DatacenterSpec {
        name: DatacenterName::new("aws-useast1").unwrap(),
        primary: false,
        provider: ProviderConfig::Static,
    }];
    let nodes = ["fe-1", "fe-2", "fe-3"].map(|name| crate::node::Node {
        name: NodeName::new(name).unwrap(),
        datacenter: DatacenterName::new("aws-useast1").unwrap(),
        role: crate::node::RoleName::new("frontend").unwrap(),
        address: "127.0.0.1".into(),
        port: 22,
        user: None,
        facts: Default::default(),
        vars: Default::default(),
    });
    let policy = RolloutPolicy::default();
    let plan = rollout::plan(nodes.to_vec(), &datacenters, &policy).unwrap();
    let apply = |batch: Vec<crate::node::Node>| {
        std::future::ready(
            batch
                .into_iter()
                .map(|n| (n.name, Outcome::Failed))
                .collect::<Vec<_>>(),
        )
    };
    let no_command = |_: crate::node::Node, _: String, _: Duration| std::future::ready(Ok(()));
    let report = rollout::run(plan, &policy, apply, no_command, |_| {}).await;
    // The executor records what it ran; the store adds the rest.
    let started = SystemTime::now();
    store
        .record_node(
            id,
            &NodeRun::new(
                NodeName::new("fe-1").unwrap(),
                None,
                Outcome::Failed,
                started,
                Duration::from_millis(20),
            ),
        )
        .unwrap();
    store.finish_rollout(id, &report).unwrap();
    let detail = store.run(id).unwrap();
    assert_eq!(detail.run.status, RunStatus::Halted);
    assert_eq!(
        detail.run.error.as_deref(),
        Some("halted after batch 1: 1 failed nodes exceed max_failed 0")
    );
    let outcomes: Vec<(&str, Outcome)> = detail
        .nodes
        .iter()
        .map(|n| (n.node.as_str(), n.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("fe-1", Outcome::Failed),
            ("fe-2", Outcome::NotAttempted),
            ("fe-3", Outcome::NotAttempted)
        ]
    );
}

#[test]
#[ignore = "helper process for the concurrent writers test"]
fn run_writer_process() {
    let Ok(path) = std::env::var("TANDEM_TEST_STORE_WRITER") else {
        return;
    };
    let store = Store::open(Path::new(&path)).unwrap();
    println!("WRITING");
    for _ in 0..100 {
        let id = store.begin(&apply_run()).unwrap();
        store.finish(id, RunStatus::Succeeded, None).unwrap();
    }
    println!("WROTE");
}

#[test]
fn two_processes_write_at_once_without_losing_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite");
    drop(Store::open(&path).unwrap());
    let (mut child, lines) = spawn_helper(
        "store::tests::run_writer_process",
        &[("TANDEM_TEST_STORE_WRITER", path.display().to_string())],
    );
    wait_for_line(&lines, "WRITING");
    let store = Store::open(&path).unwrap();
    for _ in 0..100 {
        let id = store.begin(&apply_run()).unwrap();
        store.finish(id, RunStatus::Failed, None).unwrap();
    }
    wait_for_line(&lines, "WROTE");
    assert!(child.wait().unwrap().success());
    let runs = store.runs(1_000).unwrap();
    assert_eq!(runs.len(), 200);
    let mine = runs.iter().filter(|r| r.pid == std::process::id()).count();
    assert_eq!(mine, 100);
    assert!(runs.iter().all(|r| r.status != RunStatus::Running));
}
