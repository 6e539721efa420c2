//! The site lock and the node locks with the real binary on real hosts: a second apply
//! fails naming the holder or waits for it; a SIGKILLed holder leaves nothing behind
//! that blocks the next run; a held node lock fails only that node.

use std::time::Duration;

use super::{
    finish, hold_node_lock, last_apply, node_line, outcomes, release_node_lock, runs, signal,
    site_locked, spawn, wait_until,
};
use crate::support::site::SiteFleet;

#[test]
fn concurrent_applies_fail_naming_the_holder_or_wait_and_a_killed_holder_blocks_nothing() {
    let sf = SiteFleet::up("fs-locks", "azure-westus:frontend:1,aws-useast1:frontend:1");
    let logs = tempfile::tempdir().unwrap();
    // A first apply that stays a while: one node's lock is held on the host for 8 s.
    hold_node_lock(&sf.fleet, "frontend-aws-1", 8);
    let first = spawn(&sf, &["apply"], logs.path(), "first");
    wait_until(
        Duration::from_secs(30),
        "the first apply to take the site lock",
        || site_locked(&sf),
    )
    .unwrap();
    let refused = sf.tandem(&["apply"]);
    refused.expect_code(1);
    assert!(refused.stderr.contains("site is locked by"), "{refused}");
    assert!(
        refused.stderr.contains(&format!("pid {}", first.id())),
        "the holder's pid should be named\n{refused}"
    );
    let waiter = spawn(
        &sf,
        &["apply", "--lock-wait", "120s"],
        logs.path(),
        "waiter",
    );
    let (code, out, err) = finish(first, logs.path(), "first", Duration::from_secs(120));
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = finish(waiter, logs.path(), "waiter", Duration::from_secs(120));
    assert_eq!(
        code,
        Some(0),
        "the waiting apply should run after the first\n{out}{err}"
    );
    assert!(err.contains("waiting up to"), "{err}");
    let history = runs(&sf);
    assert_eq!(
        history.len(),
        2,
        "the refused run is not recorded: {history:?}"
    );
    assert!(
        history.iter().all(|r| r["status"] == "succeeded"),
        "{history:?}"
    );

    // A holder killed with SIGKILL mid-run: the kernel drops its flock, the next run
    // proceeds and the history says the killed run was interrupted.
    sf.edit_site(
        "modules/app-service/templates/dashboard.toml.hbs",
        "base_path = \"{{app.path}}\"\n",
        "base_path = \"{{app.path}}\"\nsession_timeout_minutes = 30\n",
    );
    hold_node_lock(&sf.fleet, "frontend-aws-1", 20);
    let killed = spawn(&sf, &["apply"], logs.path(), "killed");
    // Killed mid-run: once its run is in the history (so the next run must find it
    // and say it was interrupted), while the held node lock keeps it from finishing.
    wait_until(
        Duration::from_secs(30),
        "the apply to record its run as running",
        || {
            let history = runs(&sf);
            history.len() == 3 && history[0]["status"] == "running"
        },
    )
    .unwrap();
    assert!(site_locked(&sf), "the running apply holds the site lock");
    signal(&killed, "-KILL");
    let (code, _, _) = finish(killed, logs.path(), "killed", Duration::from_secs(10));
    assert_eq!(code, None, "killed by a signal");
    assert!(
        !site_locked(&sf),
        "the site lock outlived its SIGKILLed holder"
    );
    sf.fleet
        .exec_ok("frontend-aws-1", "pkill -x -f 'sleep 20' || true");
    let next = sf.tandem(&["apply"]);
    next.expect_code(0);
    for host in ["frontend-azure-1", "frontend-aws-1"] {
        assert!(
            sf.fleet
                .exec_ok(host, "cat /etc/dashboard/dashboard.toml")
                .contains("session_timeout_minutes = 30"),
            "{host} did not converge after the killed run\n{next}"
        );
    }
    let history = runs(&sf);
    let statuses: Vec<&str> = history
        .iter()
        .map(|r| r["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        statuses,
        ["succeeded", "interrupted", "succeeded", "succeeded"],
        "{history:?}"
    );
}

#[test]
fn held_node_lock_fails_that_node_by_name_and_the_others_converge() {
    let sf = SiteFleet::up(
        "fs-nodelock",
        "azure-westus:frontend:1,aws-useast1:frontend:1",
    );
    let fleet = &sf.fleet;
    let held = "frontend-aws-1";
    // One failed node may not halt the rollout here: the other one must still run.
    sf.edit_site("manifests/site.toml", "max_failed = 0", "max_failed = 1");
    hold_node_lock(fleet, held, 120);
    let apply = sf.tandem(&["apply"]);
    release_node_lock(fleet, held);
    assert_ne!(apply.code, Some(0), "{apply}");
    let line = node_line(&apply.stdout, held).unwrap_or_else(|| panic!("{apply}"));
    assert!(
        line.contains("failed")
            && line.starts_with(&format!("{held} ("))
            && line.contains("failed: node lock `/var/lib/tandem/lock` is held"),
        "the node lock failure should name the node and the lock: {line}\n{apply}"
    );
    assert!(
        node_line(&apply.stdout, "frontend-azure-1").is_some_and(|l| l.contains("changed")),
        "{apply}"
    );
    assert_eq!(
        fleet.exec(held, "test -e /etc/dashboard").status.code(),
        Some(1),
        "the locked node must not have been changed"
    );
    let detail = last_apply(&sf);
    assert_eq!(
        outcomes(&detail),
        [
            ("frontend-aws-1".to_string(), "failed".to_string()),
            ("frontend-azure-1".to_string(), "changed".to_string())
        ],
        "{detail}"
    );
}
