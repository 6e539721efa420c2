//! Interrupted applies: SIGINT mid-run, an interrupt during a pause and in the middle
//! of a batch. Nodes in flight finish whole; nothing new starts; the run is recorded as
//! interrupted.

use super::*;

#[tokio::test]
async fn sigint_finishes_the_node_in_flight_and_starts_no_other() {
    let site = Site::new();
    let mut catalogs = Vec::new();
    for n in ["n1", "n2", "n3", "n4"] {
        let disk = site.disk(n);
        let cmd = format!(
            "touch {}; sleep 1; echo whole > {}",
            disk.join("started").display(),
            disk.join("done").display()
        );
        catalogs.push(catalog(
            n,
            vec![
                exec(cmd, &disk.join("done")),
                file(&disk.join("a.conf"), "a\n"),
            ],
        ));
    }
    let mut options = site.options();
    let interrupt = Interrupt::new();
    // The real signal path, as the CLI installs it: SIGINT to this process.
    interrupt.on_signals().unwrap();
    options.interrupt = interrupt.clone();
    let run = site.deploy(
        jobs(catalogs),
        &options,
        one_by_one(0),
        "tandem apply",
        Wait::FailFast,
    );
    let signal = async {
        wait_for(&site.disk("n1").join("started"), Duration::from_secs(10)).await;
        let sent = Command::new("kill")
            .args(["-INT", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    let (report, ()) = tokio::join!(run, signal);
    let report = report.unwrap();
    assert!(interrupt.is_requested());
    assert!(report.interrupted);
    assert_eq!(
        outcomes(&report),
        vec![
            ("n1".into(), Outcome::Changed),
            ("n2".into(), Outcome::NotAttempted),
            ("n3".into(), Outcome::NotAttempted),
            ("n4".into(), Outcome::NotAttempted),
        ]
    );
    // The node in flight finished whole; the others were never started.
    assert_eq!(
        std::fs::read_to_string(site.disk("n1").join("done")).unwrap(),
        "whole\n"
    );
    assert!(site.disk("n1").join("a.conf").exists());
    for n in ["n2", "n3", "n4"] {
        assert!(!site.disk(n).join("started").exists(), "{n} was started");
    }
    assert_eq!(report.exit_status(), Status::Failed);
    let text = tandem::apply::render::text(&report, true);
    assert!(
        text.contains("interrupted: no new node was started"),
        "{text}"
    );
    assert!(
        text.contains("done: n1\n") && text.contains("not attempted: n2, n3, n4"),
        "{text}"
    );
    let (status, nodes) = site.run_status(&report);
    assert_eq!(status, RunStatus::Interrupted);
    assert!(
        nodes.contains(&("n1".into(), Outcome::Changed)),
        "{nodes:?}"
    );
    assert!(
        nodes.contains(&("n4".into(), Outcome::NotAttempted)),
        "{nodes:?}"
    );
}

/// The site lock as an operator meets it through the CLI: the holder is named, a wait
/// is bounded, Ctrl-C stops a wait, and a killed holder leaves nothing stuck.

#[tokio::test]
async fn an_interrupt_cuts_the_pause_between_batches_short() {
    let site = Site::new();
    let catalogs: Vec<Catalog> = ["n1", "n2"]
        .iter()
        .map(|n| catalog(n, vec![file(&site.disk(n).join("a.conf"), "a\n")]))
        .collect();
    let policy = RolloutPolicy {
        pause_seconds: 60,
        ..one_by_one(0)
    };
    let options = site.options();
    let started = Instant::now();
    let run = site.deploy(
        jobs(catalogs),
        &options,
        policy,
        "tandem apply",
        Wait::FailFast,
    );
    let stop = async {
        wait_for(&site.disk("n1").join("a.conf"), Duration::from_secs(10)).await;
        options.interrupt.request();
    };
    let (report, ()) = tokio::join!(run, stop);
    let report = report.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the pause ran out: {:?}",
        started.elapsed()
    );
    assert_eq!(
        outcomes(&report),
        vec![
            ("n1".into(), Outcome::Changed),
            ("n2".into(), Outcome::NotAttempted)
        ]
    );
    assert!(!site.disk("n2").join("a.conf").exists());
    assert_eq!(site.run_status(&report).0, RunStatus::Interrupted);
}

#[tokio::test]
async fn an_interrupt_mid_batch_lets_started_nodes_finish_and_starts_no_queued_one() {
    let site = Site::new();
    let names = ["n1", "n2", "n3", "n4"];
    let mut catalogs = Vec::new();
    for n in names {
        let disk = site.disk(n);
        let cmd = format!(
            "touch {}; sleep 1; echo whole > {}",
            disk.join("started").display(),
            disk.join("done").display()
        );
        catalogs.push(catalog(n, vec![exec(cmd, &disk.join("done"))]));
    }
    // One batch of all four, two at a time.
    let policy = RolloutPolicy {
        canary: 0,
        batch: BatchSize::Percent(100),
        ..one_by_one(0)
    };
    let mut options = site.options();
    options.parallel = 2;
    let run = site.deploy(
        jobs(catalogs),
        &options,
        policy,
        "tandem apply",
        Wait::FailFast,
    );
    let stop = async {
        // One of n1 and n2 runs and the other holds the second slot (with the local
        // transport it waits for the node lock both share); n3 and n4 wait for a slot.
        wait_until_async(Duration::from_secs(10), "n1 or n2 to start", || {
            ["n1", "n2"]
                .iter()
                .any(|n| site.disk(n).join("started").exists())
        })
        .await
        .unwrap();
        options.interrupt.request();
    };
    let (report, ()) = tokio::join!(run, stop);
    let report = report.unwrap();
    let started: Vec<&str> = names
        .into_iter()
        .filter(|n| site.disk(n).join("started").exists())
        .collect();
    assert_eq!(started, vec!["n1", "n2"], "a queued node was started");
    for n in ["n1", "n2"] {
        assert_eq!(
            std::fs::read_to_string(site.disk(n).join("done")).unwrap(),
            "whole\n"
        );
    }
    assert_eq!(
        outcomes(&report),
        vec![
            ("n1".into(), Outcome::Changed),
            ("n2".into(), Outcome::Changed),
            ("n3".into(), Outcome::NotAttempted),
            ("n4".into(), Outcome::NotAttempted),
        ]
    );
    assert!(report.interrupted);
    assert_eq!(site.run_status(&report).0, RunStatus::Interrupted);
}
