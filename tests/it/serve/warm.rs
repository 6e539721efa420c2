//! Connections reused, counted on the hosts: every authenticated SSH connection makes
//! the host's sshd log one `Accepted publickey` line (the tini fleet's sshd logs to its
//! console), so the count of those lines is how many connections tandem opened. An
//! apply with changes and a health check opens one per node; a second daemon push opens
//! none; a kept connection killed on the host is reconnected and the run succeeds; a
//! node whose pinned key changed in known_hosts between runs is refused, and nothing is
//! sent to it.

use std::time::Duration;

use super::*;
use crate::support::fleet::{Fleet, Mode};
use tandem::outcome::Outcome;

/// Lines of the host's console (its sshd's log) that hold `what`.
fn logged(fleet: &Fleet, host: &str, what: &str) -> usize {
    let log = fleet.dir().join("hosts.d").join(host).join("console.log");
    std::fs::read_to_string(&log)
        .unwrap_or_else(|err| panic!("cannot read `{}`: {err}", log.display()))
        .matches(what)
        .count()
}

/// Connections the host's sshd accepted so far.
fn accepted(fleet: &Fleet, host: &str) -> usize {
    logged(fleet, host, "Accepted publickey for root")
}

fn accepted_all(fleet: &Fleet) -> Vec<usize> {
    fleet
        .nodes()
        .iter()
        .map(|n| accepted(fleet, n.name.as_str()))
        .collect()
}

/// The witness sees connections: one plain `ssh` to each host adds exactly one line.
fn check_witness(fleet: &Fleet) {
    let before = accepted_all(fleet);
    for node in fleet.nodes() {
        let out = fleet
            .ssh(node.name.as_str(), 10)
            .arg("true")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let after = wait_for(
        Duration::from_secs(10),
        "sshd to log the connections",
        || {
            let now = accepted_all(fleet);
            (now.iter().zip(&before).all(|(n, b)| *n == b + 1)).then_some(now)
        },
    );
    after.unwrap_or_else(|t| panic!("{t}: {:?} -> {:?}", before, accepted_all(fleet)));
}

/// A one-role site writing `/etc/warm.conf` with `content`, with a command health check
/// after each batch (another connection to the node when not pooled).
fn warm_files(content: &str) -> Vec<(&'static str, String)> {
    let mut files = site_files("/etc/warm.conf", content, 0);
    files[0].1 = "[site]\nname = \"t\"\n\n[rollout]\nbatch = 1\n\n[rollout.health]\n\
                  command = \"test -s /etc/warm.conf\"\ntimeout_seconds = 10\n\n\
                  [datacenters.dc1]\nprimary = true\nprovider = \"static\"\n"
        .into();
    files
}

fn conf(fleet: &Fleet, host: &str) -> String {
    fleet.exec_ok(host, "cat /etc/warm.conf 2>/dev/null || true")
}

#[test]
fn an_apply_with_changes_opens_one_connection_per_node() {
    let fleet = Fleet::up("warm-apply", "dc1:web:3", Mode::Tini);
    check_witness(&fleet);
    let site = tempfile::tempdir().unwrap();
    for (rel, text) in warm_files("one") {
        write(&site.path().join(rel), &text);
    }
    let before = accepted_all(&fleet);
    let commands_before = commands_all(&fleet);
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["apply"])
        .env("TANDEM_SITE", site.path())
        .env("TANDEM_INVENTORY", fleet.inventory_path())
        .env("TANDEM_KNOWN_HOSTS", fleet.known_hosts_path())
        .env("TANDEM_IDENTITY", fleet.key_path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env_remove("TANDEM_TRANSPORT")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    for node in fleet.nodes() {
        assert_eq!(conf(&fleet, node.name.as_str()), "one\n", "{text}");
    }
    // Settle probe, apply and health check, all over one connection per node.
    let after = accepted_all(&fleet);
    let opened: Vec<usize> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(opened, vec![1; fleet.nodes().len()], "{text}");
    // Commands (sshd logs each one it starts). One node per batch: the first batch's
    // node runs its script down its held settling probe, then the health check (2);
    // the second ends its settling probe unused, runs a fresh probe at its turn that
    // carries its script, then the health check (3); the last batch is the same but
    // has no health check after it (2). Before probes were held: 3, 4 and 3.
    let mut ran: Vec<usize> = commands_all(&fleet)
        .iter()
        .zip(&commands_before)
        .map(|(a, b)| a - b)
        .collect();
    ran.sort_unstable();
    assert_eq!(ran, vec![2, 2, 3], "{text}");
    // No held shell is left waiting on any host.
    for node in fleet.nodes() {
        let left = fleet.exec_ok(
            node.name.as_str(),
            "ps -eo args | grep -c '[t]andem_go' || true",
        );
        assert_eq!(
            left.trim(),
            "0",
            "a held probe outlived the run on {}",
            node.name
        );
    }
}

/// Commands the host's sshd started so far (`LogLevel VERBOSE`, see `scripts/fleet`).
fn commands_all(fleet: &Fleet) -> Vec<usize> {
    fleet
        .nodes()
        .iter()
        .map(|n| logged(fleet, n.name.as_str(), "Starting session: command for root"))
        .collect()
}

/// The daemon with SSH to `fleet`, `keepalive` apart; the operator site at `site`.
fn daemon(fleet: &Fleet, site: &Path, git: &GitServer, keepalive: &str) -> Daemon {
    write(
        &site.join("manifests/serve.toml"),
        &format!(
            "[repository]\nurl = \"{}\"\n\n[receivers.github]\nsecret_env = \"TANDEM_GITHUB_SECRET\"\n",
            git.url()
        ),
    );
    let env = vec![
        (
            "TANDEM_INVENTORY",
            fleet.inventory_path().display().to_string(),
        ),
        (
            "TANDEM_KNOWN_HOSTS",
            fleet.known_hosts_path().display().to_string(),
        ),
        ("TANDEM_IDENTITY", fleet.key_path().display().to_string()),
        ("TANDEM_KEEPALIVE", keepalive.to_string()),
    ];
    Daemon::start(site, &env)
}

fn push(daemon: &Daemon, id: &str, runs: usize) -> tandem::store::RunDetail {
    assert_eq!(daemon.github_push(id, "master").0, 202);
    let run = daemon.wait_run(runs, Duration::from_secs(120));
    daemon.store().run(run.id).unwrap()
}

#[test]
fn a_second_push_converges_over_the_connections_kept_since_the_first() {
    let fleet = Fleet::up("warm-push", "dc1:web:3", Mode::Tini);
    check_witness(&fleet);
    let git = GitServer::start(&warm_files("first"));
    let site = tempfile::tempdir().unwrap();
    let daemon = daemon(&fleet, site.path(), &git, "5s");
    let before = accepted_all(&fleet);
    let first = push(&daemon, "w1", 1);
    assert_eq!(first.run.status.as_str(), "succeeded", "{}", daemon.log());
    let after_first = accepted_all(&fleet);
    let opened: Vec<usize> = after_first
        .iter()
        .zip(&before)
        .map(|(a, b)| a - b)
        .collect();
    assert_eq!(opened, vec![1; fleet.nodes().len()], "{}", daemon.log());

    // Past a keepalive interval, so the idle connections were kept alive, not just kept.
    let log_mark = daemon.log().len();
    std::thread::sleep(Duration::from_secs(6));
    let files = warm_files("second");
    git.commit("modules/web/module.toml", &files[2].1, "second");
    let second = push(&daemon, "w2", 2);
    assert_eq!(second.run.status.as_str(), "succeeded", "{}", daemon.log());
    for node in fleet.nodes() {
        assert_eq!(conf(&fleet, node.name.as_str()), "second\n");
    }
    assert!(
        second.nodes.iter().all(|n| n.outcome == Outcome::Changed),
        "{:?}",
        second.nodes
    );
    assert_eq!(
        accepted_all(&fleet),
        after_first,
        "the second run opened a connection"
    );
    assert!(
        daemon.log()[log_mark..].contains("0 reconnected"),
        "{}",
        daemon.log()
    );
}

/// The PIDs of the sshd processes serving established connections on `host`.
fn connection_pids(fleet: &Fleet, host: &str) -> Vec<String> {
    let out = fleet.exec_ok(host, "ss -Htnp state established '( sport = :22 )'");
    out.split("pid=")
        .skip(1)
        .filter_map(|rest| rest.split(',').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn a_killed_connection_is_reconnected_and_a_changed_key_refused() {
    let fleet = Fleet::up("warm-kill", "dc1:web:2", Mode::Tini);
    let (a, b) = (
        fleet.nodes()[0].name.as_str().to_string(),
        fleet.nodes()[1].name.as_str().to_string(),
    );
    let git = GitServer::start(&warm_files("first"));
    let site = tempfile::tempdir().unwrap();
    // Keepalives a minute apart: the killed connection is found dead by the next
    // command, not by a keepalive in between.
    let daemon = daemon(&fleet, site.path(), &git, "60s");
    assert_eq!(
        push(&daemon, "k1", 1).run.status.as_str(),
        "succeeded",
        "{}",
        daemon.log()
    );
    let kept = accepted(&fleet, &a);

    // The per-connection sshd of `a`'s kept connection is killed on the host.
    let pids = connection_pids(&fleet, &a);
    assert!(!pids.is_empty(), "no established connection on `{a}`");
    fleet.exec_ok(&a, &format!("kill -KILL {}", pids.join(" ")));
    let files = warm_files("second");
    git.commit("modules/web/module.toml", &files[2].1, "second");
    let second = push(&daemon, "k2", 2);
    assert_eq!(second.run.status.as_str(), "succeeded", "{}", daemon.log());
    assert_eq!(conf(&fleet, &a), "second\n");
    assert_eq!(
        accepted(&fleet, &a),
        kept + 1,
        "one fresh, verified connection"
    );
    assert!(daemon.log().contains("1 reconnected"), "{}", daemon.log());

    // `b`'s pinned key is replaced in known_hosts between runs: its kept connection is
    // closed, the fresh one refused before authentication, nothing sent.
    let other = site.path().join("other_key");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(made.status.success());
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let other_key: Vec<&str> = other_pub.split_whitespace().take(2).collect();
    let address = fleet.nodes()[1].address.clone();
    let known = std::fs::read_to_string(fleet.known_hosts_path()).unwrap();
    let replaced: String = known
        .lines()
        .map(|l| match l.split_whitespace().next() {
            Some(host) if host == address => format!("{host} {}\n", other_key.join(" ")),
            _ => format!("{l}\n"),
        })
        .collect();
    assert_ne!(known, replaced, "no line for `{address}`");
    std::fs::write(fleet.known_hosts_path(), replaced).unwrap();
    let b_accepted = accepted(&fleet, &b);
    let files = warm_files("third");
    git.commit("modules/web/module.toml", &files[2].1, "third");
    let third = push(&daemon, "k3", 3);
    let b_run = third
        .nodes
        .iter()
        .find(|n| n.node.as_str() == b)
        .unwrap_or_else(|| panic!("no `{b}` in {:?}", third.nodes));
    assert_eq!(
        b_run.outcome,
        Outcome::HostKey,
        "{b_run:?}\n{}",
        daemon.log()
    );
    assert!(
        daemon
            .log()
            .contains("1 closed at a run's start (host key no longer trusted"),
        "the daemon's log names the kept connection it closed\n{}",
        daemon.log()
    );
    assert_eq!(conf(&fleet, &b), "second\n", "nothing was sent to `{b}`");
    assert_eq!(
        accepted(&fleet, &b),
        b_accepted,
        "`{b}` saw no authentication"
    );
}

#[test]
fn an_idle_connection_found_dead_by_a_keepalive_is_dropped_before_the_next_run() {
    let fleet = Fleet::up("warm-idle", "dc1:web:1", Mode::Tini);
    let host = fleet.nodes()[0].name.as_str().to_string();
    let git = GitServer::start(&warm_files("first"));
    let site = tempfile::tempdir().unwrap();
    let daemon = daemon(&fleet, site.path(), &git, "1s");
    assert_eq!(
        push(&daemon, "i1", 1).run.status.as_str(),
        "succeeded",
        "{}",
        daemon.log()
    );
    let kept = accepted(&fleet, &host);
    let pids = connection_pids(&fleet, &host);
    assert!(!pids.is_empty(), "no established connection on `{host}`");
    fleet.exec_ok(&host, &format!("kill -KILL {}", pids.join(" ")));
    // The idle worker's keepalive finds it dead and closes it.
    wait_for(
        Duration::from_secs(20),
        "the keepalive to drop the dead connection",
        || {
            daemon
                .log()
                .contains("closed 1 kept connection(s): dead")
                .then_some(())
        },
    )
    .unwrap_or_else(|t| panic!("{t}\n{}", daemon.log()));
    let files = warm_files("second");
    git.commit("modules/web/module.toml", &files[2].1, "second");
    let second = push(&daemon, "i2", 2);
    assert_eq!(second.run.status.as_str(), "succeeded", "{}", daemon.log());
    assert_eq!(conf(&fleet, &host), "second\n");
    assert_eq!(
        accepted(&fleet, &host),
        kept + 1,
        "a fresh, verified connection"
    );
    assert!(daemon.log().contains("0 reconnected"), "{}", daemon.log());
}
