//! The rollout policy on real hosts: a failing health check after the canary halts the
//! run, and so does an unreachable node with `max_failed = 0`; the nodes after the halt
//! get nothing, and the output and the history say so.

use std::time::Duration;

use super::{fingerprint, last_apply, node_line, outcomes};
use crate::support::site::SiteFleet;

const HOSTS: [&str; 4] = [
    "frontend-azure-1",
    "frontend-azure-2",
    "frontend-azure-3",
    "frontend-azure-4",
];

/// The names after `not attempted: ` in a run's output.
fn not_attempted(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("not attempted: "))
        .map(|l| l.split(", ").map(String::from).collect())
        .unwrap_or_default()
}

#[test]
fn failing_health_check_and_unreachable_node_halt_the_rollout() {
    let sf = SiteFleet::up("fs-rollout", "azure-westus:frontend:4");
    let fleet = &sf.fleet;
    sf.edit_site("manifests/site.toml", "batch = \"25%\"", "batch = 1");
    // Nothing listens on port 9 of the hosts: the health check after the canary fails.
    sf.edit_site(
        "manifests/site.toml",
        "http = \"http://{address}/healthz\"",
        "http = \"http://{address}:9/healthz\"",
    );
    let untouched: Vec<String> = HOSTS.iter().map(|h| fingerprint(fleet, h)).collect();

    let apply = sf.tandem(&["apply"]);
    apply.expect_code(3);
    assert!(
        apply
            .stdout
            .contains("halted after batch 1: health check failed"),
        "{apply}"
    );
    let skipped = not_attempted(&apply.stdout);
    assert_eq!(skipped.len(), 3, "only the canary should run\n{apply}");
    let canary = HOSTS
        .iter()
        .find(|h| !skipped.iter().any(|s| s == *h))
        .unwrap();
    assert!(
        node_line(&apply.stdout, canary).is_some_and(|l| l.contains("changed")),
        "{apply}"
    );
    for (host, before) in HOSTS.iter().zip(&untouched) {
        if host != canary {
            assert_eq!(
                &fingerprint(fleet, host),
                before,
                "{host} was touched after the halt"
            );
        }
    }
    let detail = last_apply(&sf);
    assert_eq!(detail["status"], "halted", "{detail}");
    for (node, outcome) in outcomes(&detail) {
        let want = if node == *canary {
            "changed"
        } else {
            "not-attempted"
        };
        assert_eq!(outcome, want, "{node}: {detail}");
    }

    // No health check now; one node after the canary is cut off. max_failed = 0: the
    // rollout stops after that node's batch and the rest is not attempted.
    sf.edit_site(
        "manifests/site.toml",
        "[rollout.health]\nhttp = \"http://{address}:9/healthz\"\ntimeout_seconds = 5\n\
         # Only the front ends serve HTTP; store nodes are judged by their own convergence.\n\
         roles = [\"frontend\"]\n",
        "",
    );
    // The first node the halted run did not attempt comes right after the canary.
    let cut = skipped[0].as_str();
    fleet.partition(cut);
    let before: Vec<String> = HOSTS.iter().map(|h| fingerprint(fleet, h)).collect();
    let apply = sf.tandem_within(&["apply"], Duration::from_secs(150));
    fleet.heal(cut);
    apply.expect_code(3);
    assert!(
        node_line(&apply.stdout, cut).is_some_and(|l| l.contains("unreachable")),
        "{apply}"
    );
    assert!(
        apply.stdout.contains("failed nodes exceed max_failed 0"),
        "the output should state the rule\n{apply}"
    );
    let skipped = not_attempted(&apply.stdout);
    assert!(!skipped.is_empty(), "{apply}");
    assert!(!skipped.iter().any(|s| s == cut || s == canary), "{apply}");
    assert!(!skipped.is_empty() && skipped.len() <= 2, "{apply}");
    for (host, before) in HOSTS.iter().zip(&before) {
        if skipped.iter().any(|s| s == host) || *host == cut {
            assert_eq!(&fingerprint(fleet, host), before, "{host} was touched");
        }
    }
    let detail = last_apply(&sf);
    assert_eq!(detail["status"], "halted", "{detail}");
    let outcomes = outcomes(&detail);
    eprintln!("threshold halt: {outcomes:?}");
    assert!(
        outcomes.contains(&(cut.to_string(), "unreachable".into())),
        "{detail}"
    );
    for s in &skipped {
        assert!(
            outcomes.contains(&(s.clone(), "not-attempted".into())),
            "{detail}"
        );
    }
}
