//! Nodes that cannot be read are never reported in sync: a partitioned node is
//! `unreachable` and a node presenting another host key is `host_key` (and gets no
//! command); either makes the run exit 4, over drift. A datacenter that was not
//! discovered fails the report too.

use super::{connection_ends, drift_json, sshd_journal, sshd_journal_after, verbose_sshd};
use crate::support::site::SiteFleet;

#[test]
fn partitioned_and_rekeyed_nodes_are_not_assessed_and_get_no_command() {
    let sf = SiteFleet::up(
        "drift-unreach",
        "azure-westus:frontend:1,aws-useast1:frontend:2",
    );
    let fleet = &sf.fleet;
    sf.tandem(&["apply"]).expect_code(0);
    let rekeyed = "frontend-aws-2";
    verbose_sshd(fleet, rekeyed);
    fleet.exec_ok(
        rekeyed,
        "rm -f /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub \
         && ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key \
         && systemctl restart ssh && systemctl is-active ssh",
    );
    // Drift on the reachable standby too: not assessed still takes precedence.
    fleet.exec_ok(
        "frontend-aws-1",
        "echo '# by hand' >> /etc/nginx/nginx.conf",
    );
    fleet.partition("frontend-azure-1");
    let journal = sshd_journal(fleet, rekeyed);
    let ends = connection_ends(&journal);
    let commands = journal.matches("Starting session").count();

    let (run, report) = drift_json(&sf, &["--connect-timeout", "3s"]);
    run.expect_code(4);
    let status = |node: &str| {
        report["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == node)
            .unwrap()
            .clone()
    };
    let azure = status("frontend-azure-1");
    assert_eq!(azure["status"], "unreachable", "{run}");
    assert_eq!(azure["assessed"], false);
    let aws2 = status(rekeyed);
    assert_eq!(aws2["status"], "host_key", "{run}");
    assert!(
        aws2["reason"].as_str().unwrap().contains("host key"),
        "{aws2}"
    );
    // Every resource of a node not assessed carries the node's status, none in sync.
    for node in [&azure, &aws2] {
        for r in node["resources"].as_array().unwrap() {
            assert_eq!(r["status"], node["status"], "{r}");
        }
    }
    assert_eq!(status("frontend-aws-1")["status"], "drifted");
    assert_eq!(report["coverage"]["expected"], 3);
    assert_eq!(report["coverage"]["assessed"], 1);
    assert_eq!(report["coverage"]["not_assessed"], 2);
    assert_eq!(report["result"]["passed"], false);
    let reasons = report["result"]["reasons"].to_string();
    assert!(
        reasons.contains("2 of 3 nodes were not assessed"),
        "{reasons}"
    );
    // The rekeyed host saw a connection (key exchange) but no command.
    let journal = sshd_journal_after(fleet, rekeyed, ends);
    assert_eq!(
        journal.matches("Starting session").count(),
        commands,
        "a node with a changed host key must get no command\n{journal}"
    );

    // Nothing assessed at all is a failure, never a clean report.
    let (run, report) = drift_json(
        &sf,
        &["--on", "frontend-azure-1", "--connect-timeout", "3s"],
    );
    run.expect_code(4);
    assert!(
        report["result"]["reasons"]
            .to_string()
            .contains("no node was assessed"),
        "{run}"
    );
    fleet.heal("frontend-azure-1");
}
