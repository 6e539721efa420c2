//! Promote with both datacenters reachable: the old primary is demoted and verified
//! before the new primary changes (read from modification times on the hosts and the
//! MongoDB stand-in's log), a watcher polling every dashboard never sees both
//! datacenters writable, and afterwards git, `status` and `plan` agree. Then an apply
//! from a checkout older than the promote is refused as a whole.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{dashboard_read_only, git, host_state, hosts, mtime_ns, promote_site, read_only};

/// What the watcher saw: rounds that read every dashboard, and any round in which a
/// dashboard of the new primary answered writable and THEN (later in the same round) one
/// of the old primary did too.
#[derive(Debug, Default)]
struct Watched {
    rounds: usize,
    both_writable: Vec<String>,
    first: Option<(bool, bool)>,
    last: Option<(bool, bool)>,
}

/// Polls the new primary's dashboards first, then the old primary's, until `stop`.
/// A dashboard only ever goes from writable to read-only on the old side (and the other
/// way on the new side) during a promote, so "new writable, then old writable" within a
/// round means both were writable at the moment of the new side's reading.
fn watch(new: Vec<String>, old: Vec<String>, stop: Arc<AtomicBool>) -> Watched {
    let mut seen = Watched::default();
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
        let new_writable = new
            .iter()
            .filter_map(|a| dashboard_read_only(a).map(|ro| (a, ro)))
            .filter(|(_, ro)| !ro)
            .map(|(a, _)| a.clone())
            .collect::<Vec<_>>();
        let old_writable = old
            .iter()
            .filter_map(|a| dashboard_read_only(a).map(|ro| (a, ro)))
            .filter(|(_, ro)| !ro)
            .map(|(a, _)| a.clone())
            .collect::<Vec<_>>();
        if !new_writable.is_empty() && !old_writable.is_empty() {
            seen.both_writable.push(format!(
                "round {}: new side writable {new_writable:?}, then old side writable {old_writable:?}",
                seen.rounds
            ));
        }
        let state = (!new_writable.is_empty(), !old_writable.is_empty());
        seen.first.get_or_insert(state);
        seen.last = Some(state);
        seen.rounds += 1;
    }
    seen
}

#[test]
fn promote_demotes_the_old_primary_first_and_never_leaves_two_writable() {
    let sf = promote_site(
        "promote-both",
        "azure-westus:frontend:2,aws-useast1:frontend:2,azure-westus:store:1,aws-useast1:store:1",
    );
    let fleet = &sf.fleet;
    let (az_fe, aws_fe) = (
        hosts(fleet, "azure-westus", "frontend"),
        hosts(fleet, "aws-useast1", "frontend"),
    );
    let (az_db, aws_db) = (
        hosts(fleet, "azure-westus", "store"),
        hosts(fleet, "aws-useast1", "store"),
    );
    for host in &az_fe {
        assert!(!read_only(fleet, host), "{host} should start writable");
    }
    for host in &aws_fe {
        assert!(read_only(fleet, host), "{host} should start read-only");
    }
    let head_before = git(sf.site(), &["rev-parse", "HEAD"]);

    let addresses = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .map(|n| fleet.node(n).address.clone())
            .collect()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (new, old, stop) = (addresses(&aws_fe), addresses(&az_fe), stop.clone());
        std::thread::spawn(move || watch(new, old, stop))
    };
    let run = sf.tandem(&[
        "promote",
        "aws-useast1",
        "--reason",
        "azure outage drill",
        "--yes",
    ]);
    stop.store(true, Ordering::SeqCst);
    let watched = watcher.join().unwrap();
    run.expect_code(0);
    eprintln!(
        "promote of 3+3 nodes took {:.1?}\n{}",
        run.elapsed, run.stdout
    );

    // Two writable primaries were never observed, and the watcher saw the switch.
    assert!(
        watched.both_writable.is_empty(),
        "both datacenters writable at once: {:?}",
        watched.both_writable
    );
    assert!(
        watched.rounds >= 5,
        "the watcher polled too little: {watched:?}"
    );
    assert_eq!(watched.first, Some((false, true)), "{watched:?}");
    assert_eq!(watched.last, Some((true, false)), "{watched:?}");

    // On the hosts: every old-primary change is older than every new-primary change.
    let changed = |names: &[&str], path: &str| -> Vec<(String, u128)> {
        names
            .iter()
            .map(|h| (h.to_string(), mtime_ns(fleet, h, path)))
            .collect()
    };
    let mut demoted = changed(&az_fe, "/etc/dashboard/dashboard.toml");
    demoted.extend(changed(&az_db, "/etc/mongodb/member.js"));
    let mut promoted = changed(&aws_fe, "/etc/dashboard/dashboard.toml");
    promoted.extend(changed(&aws_db, "/etc/mongodb/member.js"));
    let last_demoted = demoted.iter().max_by_key(|(_, t)| *t).unwrap();
    let first_promoted = promoted.iter().min_by_key(|(_, t)| *t).unwrap();
    assert!(
        last_demoted.1 < first_promoted.1,
        "an old-primary node changed after a new-primary node: {last_demoted:?} vs {first_promoted:?}"
    );
    for host in &az_fe {
        assert!(read_only(fleet, host), "{host} should be read-only now");
    }
    for host in &aws_fe {
        assert!(!read_only(fleet, host), "{host} should be writable now");
    }

    // MongoDB: the old primary's member got priority 0 before the new one's got 1, as
    // the stand-in mongosh recorded its calls (nanosecond timestamps, same clock).
    let last_call = |host: &str| -> (String, String) {
        let log = fleet.exec_ok(host, "cat /var/log/mongodb/standin-mongosh.log");
        let line = log.lines().last().unwrap_or_default().to_string();
        let stamp = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        (stamp, line)
    };
    let (az_stamp, az_line) = last_call(az_db[0]);
    let (aws_stamp, aws_line) = last_call(aws_db[0]);
    assert!(az_line.ends_with("(priority: 0)"), "{az_line}");
    assert!(aws_line.ends_with("(priority: 1)"), "{aws_line}");
    assert!(
        az_stamp < aws_stamp,
        "the new primary's member was made electable first: {aws_line} before {az_line}"
    );

    // Git: a new commit names the new primary and epoch; the work tree is clean.
    let head = git(sf.site(), &["rev-parse", "HEAD"]);
    assert_ne!(head, head_before);
    assert_eq!(git(sf.site(), &["rev-parse", "HEAD~1"]), head_before);
    let committed: toml::Table = git(sf.site(), &["show", "HEAD:manifests/site.toml"])
        .parse()
        .unwrap();
    let dcs = committed["datacenters"].as_table().unwrap();
    assert_eq!(dcs["aws-useast1"]["primary"].as_bool(), Some(true));
    assert!(dcs["azure-westus"].get("primary").is_none());
    assert_eq!(committed["failover"]["epoch"].as_integer(), Some(1));
    let message = git(sf.site(), &["log", "-1", "--format=%B"]);
    assert!(message.contains("azure outage drill"), "{message}");
    assert_eq!(git(sf.site(), &["status", "--porcelain"]), "");
    let text = git(sf.site(), &["show", "HEAD:manifests/site.toml"]);
    assert!(
        text.contains("# Hot standby: AWS us-east-1"),
        "comments were lost"
    );

    let status = sf.tandem(&["status"]);
    status.expect_code(0);
    for want in [
        "primary `aws-useast1`, failover epoch 1",
        "azure outage drill",
        "aws-useast1 (primary): 3 nodes: 3 primary epoch 1",
        "azure-westus (standby): 3 nodes: 3 standby epoch 1",
        "fence pending: none",
    ] {
        assert!(status.stdout.contains(want), "`{want}` missing\n{status}");
    }
    sf.tandem(&["plan"]).expect_code(0);

    // A checkout from before the promote: refused as a whole, nothing written anywhere.
    let old = tempfile::tempdir().unwrap();
    let old_site = old.path().join("site");
    let status = std::process::Command::new("git")
        .args(["clone", "-q"])
        .arg(sf.site())
        .arg(&old_site)
        .status()
        .unwrap();
    assert!(status.success());
    git(&old_site, &["checkout", "-q", &head_before]);
    let before: Vec<String> = fleet
        .nodes()
        .iter()
        .map(|n| host_state(fleet, n.name.as_str()))
        .collect();
    let stale = sf.tandem(&["--site", old_site.to_str().unwrap(), "apply"]);
    stale.expect_code(1);
    assert!(
        stale.stderr.contains("declares failover epoch 0")
            && stale.stderr.contains("carries epoch 1")
            && stale.stderr.contains(az_fe[0])
            && stale.stderr.contains(aws_fe[0]),
        "the refusal should name the nodes at the new epoch\n{stale}"
    );
    let plan = sf.tandem(&["--site", old_site.to_str().unwrap(), "plan"]);
    plan.expect_code(1);
    assert!(plan.stderr.contains("carries epoch 1"), "{plan}");
    let after: Vec<String> = fleet
        .nodes()
        .iter()
        .map(|n| host_state(fleet, n.name.as_str()))
        .collect();
    assert_eq!(before, after, "a refused run changed a host");
}
