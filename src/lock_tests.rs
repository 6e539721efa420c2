//! Lock tests across real processes: the test binary re-runs itself as the holder (an
//! ignored helper test that only acts when its environment variable is set).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use super::*;

/// Spawns this test binary running only the helper test `name`, with `env`.
pub(crate) fn spawn_helper(name: &str, env: &[(&str, String)]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// The first line from the helper holding `marker`, from the marker on (the harness
/// prints `test NAME ... ` before it), waiting at most 20 s.
pub(crate) fn wait_for_line(lines: &mpsc::Receiver<String>, marker: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => match line.find(marker) {
                Some(at) => return line[at..].to_string(),
                None => continue,
            },
            Err(err) => panic!("helper never printed `{marker}`: {err}"),
        }
    }
}

const HOLDER_COMMAND: &str = "tandem apply --on web-*";

#[test]
#[ignore = "helper process for the cross-process lock tests"]
fn lock_holder_process() {
    let Ok(site) = std::env::var("TANDEM_TEST_LOCK_SITE") else {
        return;
    };
    let hold_ms: u64 =
        std::env::var("TANDEM_TEST_LOCK_HOLD_MS").map_or(30_000, |v| v.parse().unwrap());
    let lock = SiteLock::acquire(Path::new(&site), HOLDER_COMMAND, Wait::FailFast).unwrap();
    // A long-lived child, as ssh would be: it must not inherit the lock.
    let child = std::env::var("TANDEM_TEST_LOCK_SPAWN")
        .ok()
        .map(|_| Command::new("sleep").arg("30").spawn().unwrap());
    println!("LOCKED {}", std::process::id());
    if let Some(child) = child {
        println!("CHILD {}", child.id());
    }
    std::thread::sleep(Duration::from_millis(hold_ms));
    drop(lock);
}

fn spawn_holder(site: &Path, hold_ms: u64) -> (Child, mpsc::Receiver<String>) {
    spawn_holder_with(site, hold_ms, &[])
}

fn spawn_holder_with(
    site: &Path,
    hold_ms: u64,
    extra: &[(&str, String)],
) -> (Child, mpsc::Receiver<String>) {
    let mut env = vec![
        ("TANDEM_TEST_LOCK_SITE", site.display().to_string()),
        ("TANDEM_TEST_LOCK_HOLD_MS", hold_ms.to_string()),
    ];
    env.extend(extra.iter().cloned());
    let (child, lines) = spawn_helper("lock::tests::lock_holder_process", &env);
    wait_for_line(&lines, "LOCKED");
    (child, lines)
}

#[test]
fn fail_fast_names_the_holder_and_a_killed_holder_releases_the_lock() {
    let site = tempfile::tempdir().unwrap();
    let (mut child, _lines) = spawn_holder(site.path(), 30_000);

    let err = SiteLock::acquire(site.path(), "tandem apply", Wait::FailFast).unwrap_err();
    let LockError::Held {
        holder: Some(holder),
        ..
    } = &err
    else {
        panic!("expected a named holder, got {err:?}");
    };
    assert_eq!(holder.pid, child.id());
    assert_eq!(holder.command, HOLDER_COMMAND);
    assert_eq!(holder.host, current_host());
    assert_eq!(holder.user, current_user());
    let message = err.to_string();
    let expected = format!(
        "site is locked by `{}@{}` (pid {}, `{HOLDER_COMMAND}`) since ",
        holder.user,
        holder.host,
        child.id()
    );
    assert!(message.starts_with(&expected), "{message}");
    assert!(
        holder.since.ends_with('Z') && holder.since.len() == 20,
        "{}",
        holder.since
    );

    // SIGKILL: no destructor runs, the kernel alone releases the flock.
    child.kill().unwrap();
    child.wait().unwrap();
    let lock = SiteLock::acquire(site.path(), "tandem apply", Wait::FailFast).unwrap();
    assert_eq!(lock.holder().pid, std::process::id());
    assert_eq!(
        SiteLock::peek(&site.path().join(LOCK_FILE))
            .unwrap()
            .command,
        "tandem apply"
    );
}

#[test]
fn waiting_times_out_naming_the_holder_then_succeeds_once_it_exits() {
    let site = tempfile::tempdir().unwrap();
    let (mut child, _lines) = spawn_holder(site.path(), 1_500);

    let started = Instant::now();
    let err = SiteLock::acquire(
        site.path(),
        "tandem apply",
        Wait::For(Duration::from_millis(300)),
    )
    .unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(err, LockError::Timeout { holder: Some(ref h), .. } if h.pid == child.id()),
        "{err:?}"
    );
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_millis(1_400),
        "{waited:?}"
    );
    assert!(
        err.to_string()
            .starts_with("site is still locked after waiting 0s, by `"),
        "{err}"
    );

    let lock = SiteLock::acquire(
        site.path(),
        "tandem apply",
        Wait::For(Duration::from_secs(15)),
    )
    .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "the holder exits cleanly after its hold"
    );
    assert_eq!(lock.holder().command, "tandem apply");
}

#[test]
fn children_of_a_killed_holder_do_not_keep_the_lock() {
    let site = tempfile::tempdir().unwrap();
    let (mut child, lines) = spawn_holder_with(
        site.path(),
        30_000,
        &[("TANDEM_TEST_LOCK_SPAWN", "1".into())],
    );
    let grandchild: i32 = wait_for_line(&lines, "CHILD")
        .trim_start_matches("CHILD ")
        .parse()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    // SAFETY: signal 0 only asks whether the process exists.
    let alive = unsafe { libc::kill(grandchild, 0) } == 0;
    let result = SiteLock::acquire(
        site.path(),
        "tandem apply",
        Wait::For(Duration::from_secs(2)),
    );
    // SAFETY: the `sleep` the helper spawned; its parent is dead so nobody else waits on it.
    unsafe { libc::kill(grandchild, libc::SIGKILL) };
    assert!(
        alive,
        "the holder's child outlives it, as an ssh session could"
    );
    assert!(
        result.is_ok(),
        "the lock fd must be close-on-exec: {result:?}"
    );
}

#[tokio::test]
async fn acquire_async_waits_without_blocking_the_runtime() {
    let site = tempfile::tempdir().unwrap();
    let held = SiteLock::acquire(site.path(), "tandem apply", Wait::FailFast).unwrap();
    let waiter = tokio::spawn(SiteLock::acquire_async(
        site.path().to_path_buf(),
        "tandem plan".into(),
        Wait::For(Duration::from_secs(10)),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished());
    drop(held);
    let lock = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(lock.holder().command, "tandem plan");
}

#[test]
fn the_user_is_the_account_name() {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let name = passwd
        .lines()
        .find(|l| l.split(':').nth(2) == Some(&uid.to_string()))
        .and_then(|l| l.split(':').next())
        .unwrap();
    assert_eq!(account_name(uid).as_deref(), Some(name));
}

#[test]
fn dropping_the_lock_releases_it_and_clears_the_label() {
    let site = tempfile::tempdir().unwrap();
    let path = site.path().join(LOCK_FILE);
    let first = SiteLock::acquire(site.path(), "tandem apply", Wait::FailFast).unwrap();
    assert_eq!(SiteLock::peek(&path).as_ref(), Some(first.holder()));
    // A second open file description in the same process conflicts too.
    assert!(matches!(
        SiteLock::acquire(site.path(), "tandem plan", Wait::FailFast),
        Err(LockError::Held { .. })
    ));
    drop(first);
    assert_eq!(SiteLock::peek(&path), None);
    assert!(SiteLock::acquire(site.path(), "tandem plan", Wait::FailFast).is_ok());
}

#[test]
fn an_unlabelled_holder_is_still_reported() {
    let site = tempfile::tempdir().unwrap();
    let path = site.path().join(LOCK_FILE);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // Hold the flock without writing a label, as a run between lock and write would.
    let raw = File::create(&path).unwrap();
    assert!(try_flock(&raw).unwrap());
    let err = SiteLock::acquire(site.path(), "tandem apply", Wait::FailFast).unwrap_err();
    assert!(
        err.to_string().contains("has not written its name"),
        "{err}"
    );
}

/// `main` prints an error with its whole chain (`{:#}`), so a link that holds its cause
/// as `source()` must not print it too: asserts that no link's message contains its
/// source's, and that `cause` shows exactly once in what `main` would print.
pub(crate) fn assert_cause_printed_once(
    err: impl std::error::Error + Send + Sync + 'static,
    cause: &str,
) {
    let mut link: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(current) = link {
        if let Some(source) = current.source() {
            assert!(
                !current.to_string().contains(&source.to_string()),
                "`{current}` prints its source `{source}` as well"
            );
        }
        link = current.source();
    }
    let printed = format!("{:#}", anyhow::Error::new(err));
    assert_eq!(
        printed.matches(cause).count(),
        1,
        "`{cause}` in `{printed}`"
    );
}

#[test]
fn errors_print_their_cause_once_in_a_chain() {
    use crate::apply::deploy::DeployError;
    use crate::rollout::RolloutError;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    // The lock's directory would be a regular file: it cannot be created.
    let err = SiteLock::acquire_file(&file.join("run.lock"), "test", Wait::FailFast).unwrap_err();
    let LockError::Open { error, .. } = &err else {
        panic!("expected an open error, got {err}");
    };
    let cause = error.to_string();
    assert!(
        err.to_string().starts_with("cannot open the run lock `"),
        "{err}"
    );
    assert_cause_printed_once(DeployError::from(err), &cause);

    let node = crate::node::NodeName::new("fe-1").unwrap();
    let rollout = DeployError::from(RolloutError::DuplicateNode { node });
    assert_cause_printed_once(rollout, "`fe-1` appears twice");

    // The other errors that carry a cause, from real failures where one is at hand.
    let store = crate::store::Store::open(&file.join("history.db")).unwrap_err();
    assert_cause_printed_once(store, &cause);
    let absent = dir.path().join("absent");
    let missing = std::fs::read(&absent).unwrap_err().to_string();
    let saved = crate::plan::saved::SavedPlan::load(&absent).unwrap_err();
    assert_cause_printed_once(saved, &missing);
    let facts = crate::apply::NodeError::Facts {
        node: crate::node::NodeName::new("fe-1").unwrap(),
        error: crate::fact::FactError::Incomplete,
    };
    assert_cause_printed_once(facts, "no end marker");
    let template = crate::catalog::CompileError::Template {
        file: "manifests/roles/frontend.toml".into(),
        line: 3,
        key: "content".into(),
        error: Box::new(crate::template::TemplateError::UnknownVariable {
            path: "templates/a.hbs".into(),
            line: 1,
            variable: "port".into(),
        }),
    };
    assert_cause_printed_once(template, "unknown variable `port`");
}
