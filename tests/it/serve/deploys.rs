//! The daemon deploying to real SSH hosts (tini fleet): a burst of pushes during a
//! running apply becomes one more run, of the newest head, and the skipped commits are
//! recorded as superseded; a force push that rewinds master is refused and recorded;
//! SIGTERM during a run lets the node in flight finish whole, starts no other, records
//! the run `interrupted` and exits 0.

use std::time::Duration;

use super::*;
use crate::support::fleet::{Fleet, Mode};
use tandem::store::Decision;

const CONF: &str = "/etc/serve-test.conf";

fn fleet_env(fleet: &Fleet) -> Vec<(&'static str, String)> {
    vec![
        (
            "TANDEM_INVENTORY",
            fleet.inventory_path().display().to_string(),
        ),
        (
            "TANDEM_KNOWN_HOSTS",
            fleet.known_hosts_path().display().to_string(),
        ),
        ("TANDEM_IDENTITY", fleet.key_path().display().to_string()),
    ]
}

fn operator_site(dir: &Path, url: &str) -> PathBuf {
    let site = dir.join("operator");
    write(
        &site.join("manifests/serve.toml"),
        &format!(
            "[repository]\nurl = \"{url}\"\n\n[deploy]\ngrace = \"60s\"\n\n\
             [receivers.github]\nsecret_env = \"TANDEM_GITHUB_SECRET\"\n"
        ),
    );
    site
}

fn content(fleet: &Fleet, host: &str) -> Option<String> {
    let out = fleet.exec(host, &format!("cat {CONF}"));
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_burst_during_a_run_is_one_run_of_the_newest_head_and_a_rewind_is_refused() {
    let fleet = Fleet::up("serve-burst", "dc1:web:2", Mode::Tini);
    let hosts: Vec<String> = fleet.nodes().iter().map(|n| n.name.to_string()).collect();
    let git_server = GitServer::start(&site_files(CONF, "c0", 3));
    let dir = tempfile::tempdir().unwrap();
    let site = operator_site(dir.path(), &git_server.url());
    let daemon = Daemon::start(&site, &fleet_env(&fleet));
    let store = daemon.store();

    let commit = |n: usize| {
        git_server.commit(
            "modules/web/module.toml",
            &module(CONF, &format!("c{n}"), 3),
            &format!("c{n}"),
        )
    };
    let c1 = commit(1);
    assert_eq!(daemon.github_push("d1", "master").0, 202);
    wait_until(Duration::from_secs(60), "the first run to start", || {
        store
            .runs(10)
            .unwrap()
            .first()
            .is_some_and(|r| r.status.as_str() == "running")
    })
    .unwrap_or_else(|t| panic!("{t}\n{}", daemon.log()));
    // What triggered the run is linked while it runs (for the status pages).
    let running = store.runs(1).unwrap()[0].clone();
    wait_until(
        Duration::from_secs(30),
        "the first run's trigger to be linked",
        || store.run_triggers(running.id).unwrap().len() == 1,
    )
    .unwrap_or_else(|t| panic!("{t}\n{}", daemon.log()));
    assert_eq!(
        store.run(running.id).unwrap().run.status.as_str(),
        "running"
    );
    let mut burst = Vec::new();
    for n in 2..=6 {
        burst.push(commit(n));
        let (status, body) = daemon.github_push(&format!("d{n}"), "master");
        assert_eq!(status, 202, "{body}");
    }
    // An operator's apply meanwhile is refused, naming the daemon's run as the holder.
    let operator = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("--site")
        .arg(&site)
        .arg("apply")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&operator.stderr);
    assert_ne!(operator.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("site is locked by") && stderr.contains("tandem serve: apply of"),
        "{stderr}"
    );
    let first = store.runs(10).unwrap();
    assert_eq!(
        (first.len(), first[0].status.as_str()),
        (1, "running"),
        "the burst must land during the first run for this test to mean anything"
    );
    assert_eq!(first[0].commit.as_deref(), Some(c1.as_str()));

    let newest = burst.last().unwrap().clone();
    let second = daemon.wait_run(2, Duration::from_secs(180));
    let runs = store.runs(10).unwrap();
    assert_eq!(runs.len(), 2, "{runs:#?}\n{}", daemon.log());
    assert_eq!(second.commit.as_deref(), Some(newest.as_str()));
    assert_eq!(second.status.as_str(), "succeeded", "{}", daemon.log());
    for host in &hosts {
        assert_eq!(content(&fleet, host).as_deref(), Some("c6\n"), "{host}");
    }
    // Every burst delivery was served by the second run; nothing is left pending.
    let deliveries = store.deliveries(100).unwrap();
    for d in &deliveries {
        let want = if d.id == "d1" { runs[1].id } else { second.id };
        assert_eq!(d.run, Some(want), "{d:?}");
    }
    let superseded: Vec<String> = store
        .decisions(100)
        .unwrap()
        .into_iter()
        .filter(|d| d.decision == Decision::Superseded)
        .inspect(|d| assert_eq!(d.superseded_by.as_deref(), Some(newest.as_str())))
        .map(|d| d.commit)
        .collect();
    // Recorded newest first, so read back (newest record first) oldest first.
    assert_eq!(superseded, burst[..4].to_vec());

    // A force push that rewinds master past the deployed commit.
    git(&git_server.work(), &["reset", "-q", "--hard", &burst[1]]);
    let rewound = git_server.commit(
        "modules/web/module.toml",
        &module(CONF, "rewound", 3),
        "rewound",
    );
    assert_eq!(daemon.github_push("d7", "master").0, 202);
    let refused = wait_for(Duration::from_secs(60), "the rewind to be refused", || {
        store
            .decisions(1)
            .unwrap()
            .into_iter()
            .find(|d| d.commit == rewound)
    })
    .unwrap_or_else(|t| panic!("{t}\n{}", daemon.log()));
    assert_eq!(refused.decision, Decision::Refused);
    assert!(
        refused
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("rewind") && r.contains(&newest)),
        "{refused:?}"
    );
    assert_eq!(store.runs(10).unwrap().len(), 2);
    for host in &hosts {
        assert_eq!(content(&fleet, host).as_deref(), Some("c6\n"), "{host}");
    }
    let written = written_bytes(&daemon);
    assert!(!contains(&written, GITHUB_SECRET));
}

#[test]
fn sigterm_lets_the_node_in_flight_finish_and_exits_zero() {
    let fleet = Fleet::up("serve-term", "dc1:web:3", Mode::Tini);
    let hosts: Vec<String> = fleet.nodes().iter().map(|n| n.name.to_string()).collect();
    let git_server = GitServer::start(&site_files(CONF, "c0", 4));
    let dir = tempfile::tempdir().unwrap();
    let site = operator_site(dir.path(), &git_server.url());
    let mut daemon = Daemon::start(&site, &fleet_env(&fleet));
    git_server.commit("modules/web/module.toml", &module(CONF, "c1", 4), "c1");
    assert_eq!(daemon.github_push("t1", "master").0, 202);
    wait_until(
        Duration::from_secs(90),
        "the first node to get its file",
        || hosts.iter().any(|h| content(&fleet, h).is_some()),
    )
    .unwrap_or_else(|t| panic!("{t}\n{}", daemon.log()));
    let code = daemon.terminate(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{}", daemon.log());

    let store = daemon.store();
    let runs = store.runs(10).unwrap();
    assert_eq!(runs.len(), 1);
    let detail = store.run(runs[0].id).unwrap();
    assert_eq!(
        detail.run.status.as_str(),
        "interrupted",
        "{}",
        daemon.log()
    );
    let changed: Vec<&str> = detail
        .nodes
        .iter()
        .filter(|n| n.outcome.as_str() == "changed")
        .map(|n| n.node.as_str())
        .collect();
    assert_eq!(changed.len(), 1, "{:?}", detail.nodes);
    for node in &detail.nodes {
        let name = node.node.as_str();
        let want = (node.outcome.as_str() == "changed").then(|| "c1\n".to_string());
        assert_eq!(content(&fleet, name), want, "{name}: {:?}", node.outcome);
        let staged = fleet.exec_ok(
            name,
            "ls -a /etc | grep -c '^.serve-test.conf.tandem-' || true",
        );
        assert_eq!(staged.trim(), "0", "staged files left on {name}");
    }
    let log = daemon.log();
    assert!(log.contains("serve: stopping"), "{log}");
}
