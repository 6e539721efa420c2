//! A host that hangs mid-apply. A one-resource site whose `exec` step runs for minutes on
//! the node; the test waits (polling the host, not sleeping) until the step is running,
//! then either partitions the host (its veth down: packets vanish, nothing is refused)
//! or signals tandem. The run must notice a dead connection within the keepalive budget
//! (5 s x 3 by default) and report the node unreachable with exit 4; and after SIGTERM,
//! a node still in flight must be abandoned at the end of the grace period and recorded
//! as interrupted.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{finish, signal, wait_until};
use crate::support::fleet::{Fleet, Mode};

const HOST: &str = "hang-azure-1";
const STARTED: &str = "/tmp/tandem-hang-started";

/// A site with one role whose only resource is an `exec` that takes ten minutes.
fn hang_site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "manifests/site.toml",
        "[site]\nname = \"hangs\"\n\n[datacenters.azure-westus]\nprimary = true\nprovider = \"static\"\n",
    );
    write("manifests/roles/hang.toml", "modules = [\"hang\"]\n");
    write(
        "modules/hang/module.toml",
        &format!(
            "[[resource]]\ntype = \"exec\"\nname = \"hang\"\n\
             command = \"touch {STARTED}; sleep 600; touch /tmp/tandem-hang-done\"\n\
             creates = \"/tmp/tandem-hang-done\"\n"
        ),
    );
    dir
}

fn spawn(fleet: &Fleet, site: &std::path::Path, args: &[&str], logs: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .env("TANDEM_SITE", site)
        .env("TANDEM_INVENTORY", fleet.inventory_path())
        .env("TANDEM_KNOWN_HOSTS", fleet.known_hosts_path())
        .env("TANDEM_IDENTITY", fleet.key_path())
        .env_remove("TANDEM_AGE_IDENTITY")
        .env_remove("TANDEM_TRANSPORT")
        .env_remove("TANDEM_USER")
        .env_remove("TANDEM_KEEPALIVE")
        .env_remove("TANDEM_KEEPALIVE_COUNT")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(logs.join("apply.out")).unwrap())
        .stderr(std::fs::File::create(logs.join("apply.err")).unwrap())
        .spawn()
        .expect("cannot start the tandem binary")
}

/// The node's outcome in the newest apply of the site's history.
fn recorded_outcome(fleet: &Fleet, site: &std::path::Path) -> (String, String) {
    let logs = tempfile::tempdir().unwrap();
    let child = spawn(fleet, site, &["runs", "--format", "json"], logs.path());
    let (code, out, err) = finish(child, logs.path(), "apply", Duration::from_secs(30));
    assert_eq!(code, Some(0), "{out}{err}");
    let runs: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let id = runs
        .iter()
        .find(|r| r["kind"] == "apply")
        .unwrap_or_else(|| panic!("no apply in {out}"))["id"]
        .to_string();
    let child = spawn(
        fleet,
        site,
        &["runs", "show", &id, "--format", "json"],
        logs.path(),
    );
    let (code, out, err) = finish(child, logs.path(), "apply", Duration::from_secs(30));
    assert_eq!(code, Some(0), "{out}{err}");
    let detail: serde_json::Value = serde_json::from_str(&out).unwrap();
    let node = detail["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["node"] == HOST))
        .unwrap_or_else(|| panic!("no `{HOST}` in {detail}"));
    (
        node["outcome"].as_str().unwrap_or_default().to_string(),
        detail["status"].as_str().unwrap_or_default().to_string(),
    )
}

fn wait_for_step(fleet: &Fleet) {
    wait_until(
        Duration::from_secs(60),
        "the exec step to be running on the host",
        || {
            fleet
                .exec(HOST, &format!("test -e {STARTED}"))
                .status
                .success()
        },
    )
    .unwrap();
}

#[test]
fn a_partitioned_host_is_unreachable_within_the_keepalive_budget() {
    let fleet = Fleet::up("fs-hang-partition", "azure-westus:hang:1", Mode::Tini);
    let site = hang_site();
    let logs = tempfile::tempdir().unwrap();
    let child = spawn(&fleet, site.path(), &["apply"], logs.path());
    wait_for_step(&fleet);
    fleet.partition(HOST);
    let cut = Instant::now();
    let (code, out, err) = finish(child, logs.path(), "apply", Duration::from_secs(120));
    let took = cut.elapsed();
    fleet.heal(HOST);
    eprintln!("partitioned mid-apply: the run ended {took:.1?} after the cut");
    // Default keepalive budget 5 s x 3 = 15 s of silence, plus slack for a loaded machine.
    assert!(
        took < Duration::from_secs(25),
        "the run took {took:?} after the partition\n{out}{err}"
    );
    assert_eq!(
        code,
        Some(4),
        "a lost node is unreachable (exit 4)\n{out}{err}"
    );
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{HOST} (")))
        .unwrap_or_else(|| panic!("no line for {HOST}\n{out}{err}"));
    eprintln!("{line}");
    assert!(line.contains("unreachable"), "{line}\n{out}{err}");
    assert!(out.contains("connection lost"), "{out}{err}");
    assert_eq!(recorded_outcome(&fleet, site.path()).0, "unreachable");
}

#[test]
fn sigterm_abandons_a_hung_node_at_the_end_of_the_grace_period() {
    let fleet = Fleet::up("fs-hang-sigterm", "azure-westus:hang:1", Mode::Tini);
    let site = hang_site();
    let logs = tempfile::tempdir().unwrap();
    let grace = Duration::from_secs(5);
    let child = spawn(
        &fleet,
        site.path(),
        &["apply", "--grace", "5s"],
        logs.path(),
    );
    wait_for_step(&fleet);
    signal(&child, "-TERM");
    let sent = Instant::now();
    let (code, out, err) = finish(child, logs.path(), "apply", Duration::from_secs(120));
    let took = sent.elapsed();
    eprintln!(
        "SIGTERM with a hung node: the run ended {took:.1?} after the signal (grace {grace:?})"
    );
    assert!(
        took >= grace && took < grace + Duration::from_secs(5),
        "the run took {took:?} after SIGTERM with a {grace:?} grace period\n{out}{err}"
    );
    assert_eq!(code, Some(3), "an interrupted run exits 3\n{out}{err}");
    assert!(err.contains("SIGTERM: stopping"), "{err}");
    let (outcome, status) = recorded_outcome(&fleet, site.path());
    assert_eq!(outcome, "interrupted", "{out}{err}");
    assert_eq!(status, "interrupted", "{out}{err}");
}
