//! Saved plans, the site lock, the rollout threshold and health check; helpers live in
//! the parent module.

use super::*;

/// Two files per node, `a.conf` and `b.conf`, under the node's disk.
fn two_files(site: &Site, name: &str) -> Catalog {
    let disk = site.disk(name);
    catalog(
        name,
        vec![
            file(&disk.join("a.conf"), &format!("a of {name}\n")),
            file(&disk.join("b.conf"), &format!("b of {name}\n")),
        ],
    )
}

#[tokio::test]
async fn stale_saved_plan_refuses_the_moved_resource_and_converges_the_others() {
    let site = Site::new();
    let catalogs: Vec<Catalog> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| two_files(&site, n))
        .collect();
    let options = site.options();
    let connector = site.connector.clone();
    let results = apply::plan_nodes(catalogs.clone(), connector, &options).await;
    let plan_file = site.root().join("plan.json");
    SavedPlan::new(
        &tandem::manifest::source::SiteSource::read(site.root()).unwrap(),
        &catalogs,
        &results,
    )
    .unwrap()
    .write(&plan_file)
    .unwrap();

    // Someone edits a managed file on n2 after the plan was reviewed.
    let edited = site.disk("n2").join("a.conf");
    std::fs::write(&edited, "hand edit\n").unwrap();

    let saved = SavedPlan::load(&plan_file).unwrap();
    saved.check_site(site.root()).unwrap();
    let jobs = saved.jobs(catalogs).unwrap();
    let policy = RolloutPolicy {
        batch: BatchSize::Percent(100),
        max_failed: 3,
        ..RolloutPolicy::default()
    };
    let report = site
        .deploy(
            jobs,
            &options,
            policy,
            "tandem apply plan.json",
            Wait::FailFast,
        )
        .await
        .unwrap();

    let by = |n: &str| report.nodes.iter().find(|r| r.node.as_str() == n).unwrap();
    let n2 = by("n2");
    assert_eq!(n2.outcome, Outcome::Failed, "{n2:?}");
    let edited_id = format!("file:{}", edited.display());
    assert_eq!(
        n2.refused.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        vec![edited_id.clone()],
        "exactly the moved resource is refused"
    );
    let err = n2.error.as_deref().unwrap();
    assert!(
        err.contains(&format!("`{edited_id}`")) && err.contains("changed since the plan"),
        "{err}"
    );
    assert!(err.contains("planned: create"), "says what changed: {err}");
    // n2 untouched: the edit stays, the other file was not created.
    assert_eq!(std::fs::read_to_string(&edited).unwrap(), "hand edit\n");
    assert!(!site.disk("n2").join("b.conf").exists());
    for n in ["n1", "n3"] {
        assert_eq!(by(n).outcome, Outcome::Changed, "{:?}", by(n));
        let text = std::fs::read_to_string(site.disk(n).join("b.conf")).unwrap();
        assert_eq!(text, format!("b of {n}\n"));
    }
    assert_eq!(report.exit_status(), Status::Failed);
    let text = tandem::apply::render::text(&report, true);
    assert!(text.contains(&format!("REFUSED {edited_id}")), "{text}");

    let (status, nodes) = site.run_status(&report);
    assert_eq!(status, RunStatus::Failed);
    assert!(nodes.contains(&("n2".into(), Outcome::Failed)), "{nodes:?}");
    let store = Store::open(&site.history()).unwrap();
    let changes = store.run(report.run).unwrap().changes;
    assert!(
        changes
            .iter()
            .any(|c| c.action == tandem::store::ChangeAction::Refused
                && c.resource.to_string() == edited_id),
        "{changes:?}"
    );

    // The CLI shows the saved plan as plan printed it, and refuses it once the site moved.
    let plan_arg = plan_file.to_str().unwrap();
    let (code, out, err) = tandem_bin(site.root(), &["show", plan_arg]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.contains("format version 2") && out.contains("matches the site"),
        "{out}"
    );
    assert!(
        out.contains("n1")
            && out.contains(&format!("{}", site.disk("n3").join("b.conf").display())),
        "{out}"
    );
    std::fs::write(
        site.root().join("manifests/site.toml"),
        format!("[site]\nname = \"moved\"\n\n[datacenters.{DC}]\nprimary = true\nprovider = \"static\"\n"),
    )
    .unwrap();
    let (code, out, err) = tandem_bin(site.root(), &["apply", plan_arg]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("the site changed since the plan was made"),
        "{err}"
    );
    let (_, out, _) = tandem_bin(site.root(), &["show", plan_arg]);
    assert!(out.contains("would refuse this plan"), "{out}");
}

#[tokio::test]
async fn saved_plan_holds_no_secret_in_clear() {
    let site = Site::new();
    let disk = site.disk("n1");
    let secret = "hunter2-very-secret-value";
    let mut secret_file = file(&disk.join("db.conf"), &format!("password = {secret}\n"));
    if let Spec::File(f) = &mut secret_file.spec {
        let content = f.content.as_mut().unwrap();
        content.secrets = vec![tandem::secret::Fingerprint::of(secret.as_bytes())];
    }
    let catalogs = vec![catalog("n1", vec![secret_file])];
    let connector = site.connector.clone();
    let results = apply::plan_nodes(catalogs.clone(), connector, &site.options()).await;
    let plan_file = site.root().join("plan.json");
    SavedPlan::new(
        &tandem::manifest::source::SiteSource::read(site.root()).unwrap(),
        &catalogs,
        &results,
    )
    .unwrap()
    .write(&plan_file)
    .unwrap();
    let text = std::fs::read_to_string(&plan_file).unwrap();
    assert!(!text.contains(secret), "the secret is in the plan file");
    assert!(text.contains("db.conf"), "{text}");
    // The desired state still pins the content: a re-render must match its digest.
    let saved = SavedPlan::load(&plan_file).unwrap();
    assert_eq!(saved.jobs(catalogs).unwrap().len(), 1);
}

#[tokio::test]
async fn threshold_zero_halts_before_the_next_batch() {
    let site = Site::new();
    let mut catalogs = Vec::new();
    for n in ["n1", "n2", "n3"] {
        let disk = site.disk(n);
        let mut resources = vec![file(&disk.join("a.conf"), "a\n")];
        if n == "n1" {
            resources.push(exec("echo broken >&2; exit 1".into(), &disk.join("never")));
        }
        catalogs.push(catalog(n, resources));
    }
    let report = site
        .deploy(
            jobs(catalogs),
            &site.options(),
            one_by_one(0),
            "tandem apply",
            Wait::FailFast,
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes(&report),
        vec![
            ("n1".into(), Outcome::Failed),
            ("n2".into(), Outcome::NotAttempted),
            ("n3".into(), Outcome::NotAttempted),
        ]
    );
    assert!(matches!(
        report.rollout.halt,
        Some(Halt::Threshold {
            after_batch: 1,
            failed: 1,
            max_failed: 0
        })
    ));
    assert!(!site.disk("n2").join("a.conf").exists(), "n2 was touched");
    assert_eq!(report.exit_status(), Status::Failed);
    let text = tandem::apply::render::text(&report, true);
    assert!(
        text.contains("halted after batch 1: 1 failed nodes exceed max_failed 0"),
        "{text}"
    );
    assert!(text.contains("not attempted: n2, n3"), "{text}");
    assert!(
        text.contains("count against max_failed"),
        "the rule is stated: {text}"
    );
    let (status, nodes) = site.run_status(&report);
    assert_eq!(status, RunStatus::Halted);
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    assert!(
        nodes.contains(&("n3".into(), Outcome::NotAttempted)),
        "{nodes:?}"
    );
}

#[tokio::test]
async fn a_failing_health_check_halts() {
    let site = Site::new();
    let catalogs: Vec<Catalog> = ["n1", "n2"]
        .iter()
        .map(|n| catalog(n, vec![file(&site.disk(n).join("a.conf"), "a\n")]))
        .collect();
    let policy = RolloutPolicy {
        health: Some(HealthCheck {
            probe: HealthProbe::Command("echo not serving >&2; exit 7".into()),
            timeout_seconds: 5,
            roles: Vec::new(),
        }),
        ..one_by_one(5)
    };
    let report = site
        .deploy(
            jobs(catalogs),
            &site.options(),
            policy,
            "tandem apply",
            Wait::FailFast,
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes(&report),
        vec![
            ("n1".into(), Outcome::Changed),
            ("n2".into(), Outcome::NotAttempted)
        ]
    );
    let Some(Halt::Health { failures, .. }) = &report.rollout.halt else {
        panic!("no health halt: {:?}", report.rollout.halt)
    };
    assert_eq!(failures[0].node.as_str(), "n1");
    assert!(
        failures[0].reason.contains("status 7") && failures[0].reason.contains("not serving"),
        "{failures:?}"
    );
    assert_eq!(report.exit_status(), Status::Failed);
    assert_eq!(site.run_status(&report).0, RunStatus::Halted);
}

#[tokio::test]
async fn concurrent_applies_one_fails_naming_the_holder_one_waits() {
    let site = Site::new();
    let disk = site.disk("slow");
    let started = disk.join("started");
    let slow = catalog(
        "slow",
        vec![exec(
            format!(
                "touch {}; sleep 2; touch {}",
                started.display(),
                disk.join("done").display()
            ),
            &disk.join("done"),
        )],
    );
    let quick = || {
        catalog(
            "quick",
            vec![file(&site.disk("quick").join("a.conf"), "a\n")],
        )
    };
    let options = site.options();
    let first = site.deploy(
        jobs(vec![slow]),
        &options,
        one_by_one(0),
        "tandem apply --first",
        Wait::FailFast,
    );
    let others = async {
        wait_for(&started, Duration::from_secs(10)).await;
        let refused = site
            .deploy(
                jobs(vec![quick()]),
                &options,
                one_by_one(0),
                "tandem apply --second",
                Wait::FailFast,
            )
            .await;
        let waited = site
            .deploy(
                jobs(vec![quick()]),
                &options,
                one_by_one(0),
                "tandem apply --third",
                Wait::For(Duration::from_secs(30)),
            )
            .await;
        (refused, waited)
    };
    let (first, (refused, waited)) = tokio::join!(first, others);
    let first = first.unwrap();
    assert_eq!(outcomes(&first), vec![("slow".into(), Outcome::Changed)]);
    let err = refused.unwrap_err().to_string();
    assert!(err.starts_with("site is locked by"), "{err}");
    assert!(
        err.contains("`tandem apply --first`") && err.contains("since"),
        "names the holder: {err}"
    );
    let waited = waited.unwrap();
    assert_eq!(outcomes(&waited), vec![("quick".into(), Outcome::Changed)]);
    // The refused run left no record; the other two are there, in order.
    let store = Store::open(&site.history()).unwrap();
    let runs = store.runs(10).unwrap();
    let commands: Vec<&str> = runs.iter().map(|r| r.command.as_str()).collect();
    assert_eq!(
        commands,
        vec!["tandem apply --third", "tandem apply --first"]
    );
    assert!(
        runs.iter().all(|r| r.status == RunStatus::Succeeded),
        "{runs:?}"
    );
}

#[test]
fn cli_apply_names_the_lock_holder_waits_and_stops_on_sigint() {
    use std::io::BufRead;
    use tandem::lock::SiteLock;

    let site = Site::new();
    let held = SiteLock::acquire(site.root(), "tandem apply --on web-1", Wait::FailFast).unwrap();
    let (code, out, err) = tandem_bin(site.root(), &["apply"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("site is locked by"), "{err}");
    assert!(
        err.contains("`tandem apply --on web-1`"),
        "names the command: {err}"
    );
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "names the pid: {err}"
    );

    let started = Instant::now();
    let (code, _, err) = tandem_bin(site.root(), &["apply", "--lock-wait", "1s"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("site is still locked after waiting 1s"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // A waiting apply, interrupted: it stops waiting at once and does nothing.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("--site")
        .arg(site.root())
        .args(["apply", "--lock-wait", "60s"])
        .env("TANDEM_TRANSPORT", "local")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert!(
        first.contains("waiting up to 60s for the site lock held by"),
        "{first}"
    );
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = crate::support::wait::wait_for(
        Duration::from_secs(10),
        "SIGINT to stop the wait for the lock",
        || child.try_wait().unwrap(),
    )
    .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(status.code(), Some(1), "{rest}");
    assert!(
        rest.contains("interrupted while waiting for the site lock; nothing was done"),
        "{rest}"
    );
    assert!(
        !site.history().exists(),
        "a run that never got the lock recorded something"
    );
    drop(held);

    // A holder killed with SIGKILL holds nothing: the kernel dropped its flock.
    let lock_file = site.root().join(".tandem/run.lock");
    // `sh` locks fd 9 and becomes `sleep` holding it: one process, killed below.
    let mut holder = Command::new("sh")
        .arg("-c")
        .arg("exec 9>>\"$1\"; flock 9; exec sleep 30")
        .arg("sh")
        .arg(&lock_file)
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(10), "`flock` to take the lock", || {
        SiteLock::acquire(site.root(), "probe", Wait::FailFast).is_err()
    })
    .unwrap();
    holder.kill().unwrap();
    holder.wait().unwrap();
    let (code, _, err) = tandem_bin(site.root(), &["apply"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        !err.contains("locked"),
        "the killed holder still blocks: {err}"
    );
    // Past the lock, the run found no node in this empty site.
    assert!(err.contains("no node matches"), "{err}");
}

#[tokio::test]
async fn a_plan_is_recorded_with_its_proposed_changes() {
    let site = Site::new();
    let in_sync = site.disk("n1").join("a.conf");
    std::fs::write(&in_sync, "a\n").unwrap();
    std::fs::set_permissions(
        &in_sync,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let catalogs = vec![
        catalog("n1", vec![file(&in_sync, "a\n")]),
        catalog("n2", vec![file(&site.disk("n2").join("a.conf"), "a\n")]),
    ];
    let connector = site.connector.clone();
    let started = std::time::SystemTime::now();
    let results = apply::plan_nodes(catalogs, connector, &site.options()).await;
    let store = Store::open(&site.history()).unwrap();
    let run = store
        .begin(&NewRun {
            kind: RunKind::Plan,
            started_by: "tester@ci".into(),
            command: "tandem plan".into(),
            commit: None,
            dirty: false,
            site_digest: None,
        })
        .unwrap();
    tandem::run::plan::record_plan(&store, run, &results, started).unwrap();
    let status = apply::plan_status(&results);
    assert_eq!(status, Status::Pending);
    store
        .finish(run, RunStatus::from_exit(status), None)
        .unwrap();
    let detail = store.run(run).unwrap();
    assert_eq!(detail.run.status, RunStatus::Pending);
    let nodes: Vec<(String, Outcome)> = detail
        .nodes
        .iter()
        .map(|n| (n.node.to_string(), n.outcome))
        .collect();
    assert_eq!(
        nodes,
        vec![
            ("n1".into(), Outcome::Unchanged),
            ("n2".into(), Outcome::Changed)
        ]
    );
    assert_eq!(detail.changes.len(), 1, "{:?}", detail.changes);
    assert_eq!(detail.changes[0].node.as_str(), "n2");
    assert!(
        detail.changes[0].summary.starts_with("proposed: create"),
        "{:?}",
        detail.changes[0]
    );
    // Nothing was written by planning.
    assert!(!site.disk("n2").join("a.conf").exists());
}

/// Batches, health checks and pauses are spent on nodes that change: with a canary and
/// one node per batch, a run where one of four nodes has a change rolls out one batch,
/// pauses never, and reports the other three unchanged (verified by their probe).
#[tokio::test]
async fn a_rollout_batches_only_the_nodes_that_change() {
    let site = Site::new();
    let names = ["n1", "n2", "n3", "n4"];
    let catalogs = |changed: Option<&str>| -> Vec<Catalog> {
        names
            .iter()
            .map(|n| {
                let text = if Some(*n) == changed { "b\n" } else { "a\n" };
                catalog(n, vec![file(&site.disk(n).join("a.conf"), text)])
            })
            .collect()
    };
    let flat = RolloutPolicy::default();
    let first = site
        .deploy(
            jobs(catalogs(None)),
            &site.options(),
            flat,
            "tandem apply",
            Wait::FailFast,
        )
        .await
        .unwrap();
    assert_eq!(first.exit_status(), Status::Ok);

    let mut policy = one_by_one(0);
    policy.pause_seconds = 30;
    let lock = deploy::lock_site(
        site.root(),
        "tandem apply",
        Wait::FailFast,
        &Interrupt::new(),
        |_| {},
    )
    .await
    .unwrap();
    let mut events = Vec::new();
    let started = Instant::now();
    let report = deploy::deploy(
        jobs(catalogs(Some("n3"))),
        site.connector.clone(),
        &site.options(),
        site.context(policy, "tandem apply"),
        lock,
        |event| events.push(event.to_string()),
    )
    .await
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a 30 s pause was spent: {events:?}"
    );
    assert_eq!(report.exit_status(), Status::Ok);
    let mut got = outcomes(&report);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("n1".into(), Outcome::Unchanged),
            ("n2".into(), Outcome::Unchanged),
            ("n3".into(), Outcome::Changed),
            ("n4".into(), Outcome::Unchanged),
        ]
    );
    let rolled: Vec<&str> = report
        .rollout
        .nodes
        .iter()
        .map(|n| n.node.as_str())
        .collect();
    assert_eq!(rolled, ["n3"], "only the changing node is rolled out");
    assert!(
        events
            .iter()
            .any(|e| e.contains("3 in sync") && e.contains("1 to roll out")),
        "{events:?}"
    );
    assert!(!events.iter().any(|e| e.contains("pausing")), "{events:?}");
    assert_eq!(
        std::fs::read_to_string(site.disk("n3").join("a.conf")).unwrap(),
        "b\n"
    );
    let (status, nodes) = site.run_status(&report);
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(nodes.len(), 4, "every node is recorded: {nodes:?}");

    // Nothing to change anywhere: every node is verified, none is rolled out.
    let mut policy = one_by_one(0);
    policy.pause_seconds = 30;
    let report = site
        .deploy(
            jobs(catalogs(Some("n3"))),
            &site.options(),
            policy,
            "tandem apply",
            Wait::FailFast,
        )
        .await
        .unwrap();
    assert!(report.nodes.iter().all(|n| n.outcome == Outcome::Unchanged));
    let text = tandem::apply::render::text(&report, false);
    assert!(
        text.contains("rollout: no node had a change to roll out"),
        "{text}"
    );
    assert!(text.contains("site: 4 nodes: 4 unchanged"), "{text}");
}
