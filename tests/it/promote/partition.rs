//! The old primary cut off (its hosts' links down: connections time out): the promote
//! refuses without `--old-primary-unreachable` and changes nothing; with it the standby
//! is promoted and the cut-off nodes are fence pending; once they are back, the next
//! apply demotes them before anything else, and says so.

use super::{commit_all, host_state, hosts, mtime_ns, promote_site, read_only};

#[test]
fn an_unreachable_old_primary_is_fenced_and_demoted_first_when_it_returns() {
    let sf = promote_site(
        "promote-partition",
        "azure-westus:frontend:2,aws-useast1:frontend:2",
    );
    let fleet = &sf.fleet;
    let (az, aws) = (
        hosts(fleet, "azure-westus", "frontend"),
        hosts(fleet, "aws-useast1", "frontend"),
    );
    for host in &az {
        fleet.partition(host);
    }
    let before: Vec<String> = fleet
        .nodes()
        .iter()
        .map(|n| host_state(fleet, n.name.as_str()))
        .collect();
    let promote = [
        "--connect-timeout",
        "2s",
        "promote",
        "aws-useast1",
        "--reason",
        "azure is down",
        "--yes",
    ];
    let refused = sf.tandem(&promote);
    refused.expect_code(1);
    assert!(
        refused
            .stderr
            .contains(&format!("old primary node `{}`", az[0]))
            && refused.stderr.contains("--old-primary-unreachable"),
        "the refusal should name the unreachable old-primary nodes\n{refused}"
    );
    let after: Vec<String> = fleet
        .nodes()
        .iter()
        .map(|n| host_state(fleet, n.name.as_str()))
        .collect();
    assert_eq!(before, after, "a refused promote changed a host");

    let mut with_flag = promote.to_vec();
    with_flag.push("--old-primary-unreachable");
    let run = sf.tandem(&with_flag);
    run.expect_code(0);
    for host in &aws {
        assert!(!read_only(fleet, host), "{host} should be promoted\n{run}");
    }
    for host in &az {
        assert!(
            run.stdout.contains(&format!("fence pending: `{host}`")),
            "{host} should be fence pending\n{run}"
        );
        // Cut off, it was not touched: still writable until it returns.
        assert!(!read_only(fleet, host));
    }
    let status = sf.tandem(&["--connect-timeout", "2s", "status"]);
    status.expect_code(4);
    assert!(
        status
            .stdout
            .contains(&format!("fence pending: `{}` (azure-westus)", az[0])),
        "{status}"
    );

    // Back on the network, with an unrelated change pending everywhere: the fence-pending
    // nodes are demoted in a step of their own before the site's rollout touches any
    // other node (their dashboard config is older than every other node's new nginx.conf).
    for host in &az {
        fleet.heal(host);
    }
    sf.edit_site(
        "manifests/roles/frontend.toml",
        "nginx_worker_connections = 2048",
        "nginx_worker_connections = 4096",
    );
    commit_all(&sf, "more connections");
    let apply = sf.tandem(&["apply"]);
    apply.expect_code(0);
    for host in &az {
        assert!(
            apply.stdout.contains("fence pending: demoted first") && apply.stdout.contains(host),
            "the run should report the demotion of {host}\n{apply}"
        );
        assert!(read_only(fleet, host), "{host} should be demoted\n{apply}");
    }
    let demoted = az
        .iter()
        .map(|h| mtime_ns(fleet, h, "/etc/dashboard/dashboard.toml"))
        .max()
        .unwrap();
    let others = aws
        .iter()
        .map(|h| mtime_ns(fleet, h, "/etc/nginx/nginx.conf"))
        .min()
        .unwrap();
    assert!(
        demoted < others,
        "a fence-pending node was demoted after the rollout began"
    );
    let status = sf.tandem(&["status"]);
    status.expect_code(0);
    assert!(status.stdout.contains("fence pending: none"), "{status}");
    assert!(
        status
            .stdout
            .contains("azure-westus (standby): 2 nodes: 2 standby epoch 1"),
        "{status}"
    );
}
