//! Faults during a run: a partitioned node, a config that fails validation, a changed
//! host key. Each affects only its node (or its resource), and leaves files as they were.

use std::time::Duration;

use super::{nginx_pids, nginx_reloads, nginx_reloads_settled, sha256};
use crate::support::site::SiteFleet;
use crate::support::wait::wait_for;

#[test]
fn partitioned_node_is_unreachable_and_the_others_converge() {
    let sf = SiteFleet::up(
        "e2e-partition",
        "azure-westus:frontend:1,aws-useast1:frontend:1,aws-useast1:store:1",
    );
    sf.tolerate_failures();
    let fleet = &sf.fleet;
    fleet.partition("frontend-aws-1");

    let apply = sf.tandem_within(&["apply"], Duration::from_secs(90));
    apply.expect_code(4);
    let line = apply
        .stdout
        .lines()
        .find(|l| l.starts_with("frontend-aws-1 "))
        .unwrap_or_else(|| panic!("no report for the partitioned node\n{apply}"));
    assert!(line.contains("unreachable"), "{line}\n{apply}");
    for host in ["frontend-azure-1", "store-aws-1"] {
        let line = apply.stdout.lines().find(|l| l.starts_with(host));
        assert!(
            line.is_some_and(|l| l.contains("changed")),
            "{host} should have converged\n{apply}"
        );
    }
    eprintln!("apply with one partitioned node took {:.1?}", apply.elapsed);

    // The reachable nodes are in sync; the partitioned one got nothing.
    sf.tandem(&["plan", "--on", "frontend-azure-1,store-aws-1"])
        .expect_code(0);
    fleet.heal("frontend-aws-1");
    assert!(
        fleet
            .exec("frontend-aws-1", "test -e /etc/dashboard")
            .status
            .code()
            == Some(1),
        "the partitioned node must not have been changed"
    );
    let plan = sf.tandem(&["plan", "--on", "frontend-aws-1"]);
    plan.expect_code(2);
}

#[test]
fn failing_validation_keeps_the_old_file_and_does_not_reload() {
    let sf = SiteFleet::up(
        "e2e-validate",
        "azure-westus:frontend:1,aws-useast1:frontend:1",
    );
    sf.tolerate_failures();
    let fleet = &sf.fleet;
    sf.tandem(&["apply"]).expect_code(0);

    // An invalid nginx directive in the conf.d template, and an unrelated change to the
    // dashboard's config, which does not depend on nginx.
    sf.edit_site(
        "modules/nginx/templates/apps.conf.hbs",
        "    server_name _;\n",
        "    server_name _;\n    this_is_not_a_directive on;\n",
    );
    sf.edit_site(
        "modules/app-service/templates/dashboard.toml.hbs",
        "base_path = \"{{app.path}}\"\n",
        "base_path = \"{{app.path}}\"\nsession_timeout_minutes = 30\n",
    );
    let hosts = ["frontend-azure-1", "frontend-aws-1"];
    let conf = "/etc/nginx/conf.d/tandem-apps.conf";
    let before: Vec<_> = hosts
        .iter()
        .map(|h| {
            (
                sha256(fleet, h, conf),
                nginx_pids(fleet, h),
                nginx_reloads_settled(fleet, h, 1),
            )
        })
        .collect();

    let apply = sf.tandem(&["apply"]);
    apply.expect_code(3);
    for (host, (sum, pids, reloads)) in hosts.iter().zip(&before) {
        let line = apply.stdout.lines().find(|l| l.starts_with(host)).unwrap();
        assert!(line.contains("failed"), "{host} should fail\n{apply}");
        assert_eq!(&sha256(fleet, host, conf), sum, "{conf} on {host} changed");
        assert_eq!(
            &nginx_pids(fleet, host),
            pids,
            "nginx on {host} was touched"
        );
        assert_eq!(
            nginx_reloads(fleet, host),
            *reloads,
            "nginx on {host} reloaded after a failed validation"
        );
        assert_eq!(
            fleet.exec(host, "systemctl is-active nginx").stdout,
            b"active\n"
        );
        assert!(
            fleet
                .exec_ok(host, "cat /etc/dashboard/dashboard.toml")
                .contains("session_timeout_minutes = 30"),
            "the dashboard config, independent of nginx, should still converge on {host}\n{apply}"
        );
        // No staged leftovers next to the live config.
        let listing = fleet.exec_ok(host, "ls -a /etc/nginx/conf.d");
        assert_eq!(
            listing.split_whitespace().collect::<Vec<_>>(),
            [".", "..", "tandem-apps.conf"],
            "{host}"
        );
    }
    assert!(
        apply.stdout.contains(&format!("FAILED modify file:{conf}")),
        "the report should name the failing resource\n{apply}"
    );
    assert!(
        apply.stdout.contains("skipped reload service:nginx"),
        "the nginx reload should be skipped\n{apply}"
    );
}

#[test]
fn changed_host_key_gets_no_command() {
    let sf = SiteFleet::up(
        "e2e-hostkey",
        "azure-westus:frontend:1,aws-useast1:frontend:1",
    );
    sf.tolerate_failures();
    let fleet = &sf.fleet;
    let host = "frontend-aws-1";
    fleet.exec_ok(
        host,
        "rm -f /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub \
         && ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key \
         && systemctl restart ssh && systemctl is-active ssh",
    );
    let conf_before = sha256(fleet, host, "/etc/nginx/nginx.conf");
    let sessions = |log: &str| {
        log.lines()
            .filter(|l| l.contains("Accepted publickey") || l.contains("Starting session"))
            .count()
    };
    let journal_before = fleet.exec_ok(host, "journalctl -u ssh --no-pager -o cat");

    let apply = sf.tandem(&["apply"]);
    // A refused host key fails that node (exit 3: no command was sent, and it is not a
    // network condition to retry); the other one converges.
    apply.expect_code(3);
    let line = apply.stdout.lines().find(|l| l.starts_with(host)).unwrap();
    assert!(line.contains("host-key"), "{line}\n{apply}");
    assert!(
        apply
            .stdout
            .contains("frontend-azure-1 (azure-westus): changed"),
        "{apply}"
    );
    assert!(apply.stdout.contains("tandem trust"), "{apply}");

    // sshd logs the end of a connection last, from the process that logged the rest of
    // it; once the end of tandem's connection is in the journal (synced first, so what
    // was logged before it is there too), nothing of that connection is still to come.
    let ends = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| {
                [
                    "Connection closed by",
                    "Disconnected from",
                    "Connection reset by",
                ]
                .iter()
                .any(|end| l.contains(end))
            })
            .map(str::to_string)
            .collect()
    };
    let ended_before = ends(&journal_before).len();
    let journal_after = wait_for(
        Duration::from_secs(10),
        &format!("sshd on {host} to log the end of tandem's connection"),
        || {
            let journal = fleet.exec_ok(
                host,
                "journalctl --sync && journalctl -u ssh --no-pager -o cat",
            );
            (ends(&journal).len() > ended_before).then_some(journal)
        },
    )
    .unwrap();
    let new_ends = ends(&journal_after).split_off(ended_before);
    assert!(
        new_ends.iter().all(|l| l.ends_with("[preauth]")),
        "tandem's connection to {host} should end before authentication: {new_ends:?}"
    );
    assert_eq!(
        sessions(&journal_after),
        sessions(&journal_before),
        "sshd on {host} saw an authentication or session despite the changed key:\n{journal_after}"
    );
    assert_eq!(sha256(fleet, host, "/etc/nginx/nginx.conf"), conf_before);
    assert_eq!(
        fleet.exec(host, "test -e /etc/dashboard").status.code(),
        Some(1),
        "{host} must not have been changed"
    );
}
