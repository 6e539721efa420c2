//! Integration tests: the local fleet itself (`scripts/fleet`, SPEC section 13). Each test
//! brings up its own hosts and talks to them with the OpenSSH client, trusting only the
//! key and known_hosts the fleet wrote, the way tandem will. Needs root.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::fleet::{Fleet, Mode};

fn ssh(fleet: &Fleet, host: &str, command: &str) -> Output {
    fleet
        .ssh(host, 2)
        .arg(command)
        .output()
        .expect("run the OpenSSH client")
}

fn ssh_ok(fleet: &Fleet, host: &str, command: &str) -> String {
    let out = ssh(fleet, host, command);
    assert!(
        out.status.success(),
        "`{command}` over ssh on `{host}` failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The fleet's own names as its meta file records them (slot, bridge, cgroup).
fn meta(fleet: &Fleet, key: &str) -> String {
    let text = std::fs::read_to_string(fleet.dir().join("fleet.env")).expect("fleet.env");
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("`{key}` missing from fleet.env"))
        .to_string()
}

fn stdout_of(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect(program);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Brings the fleet down and checks that nothing it created is left on the machine.
fn assert_down_leaves_nothing(fleet: Fleet) {
    let name = fleet.name().to_string();
    let dir = fleet.dir().to_path_buf();
    let slot = meta(&fleet, "FLEET_SLOT");
    let bridge = meta(&fleet, "FLEET_BRIDGE");
    let cgroup = meta(&fleet, "FLEET_CGROUP");
    fleet.down();

    assert!(!dir.exists(), "state dir `{}` left behind", dir.display());
    let netns = stdout_of("ip", &["netns", "list"]);
    let prefix = format!("tf{slot}-");
    assert!(
        !netns.lines().any(|l| l.starts_with(&prefix)),
        "network namespaces left behind:\n{netns}"
    );
    let links = stdout_of("ip", &["-o", "link", "show"]);
    assert!(
        !links.contains(&format!(" {bridge}:")) && !links.contains(&format!(" tf{slot}v")),
        "bridge or veths left behind:\n{links}"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains(dir.to_string_lossy().as_ref()),
        "mounts left behind under `{}`",
        dir.display()
    );
    if !cgroup.is_empty() {
        assert!(
            !Path::new(&cgroup).exists(),
            "cgroup `{cgroup}` left behind"
        );
    }
    let again = Command::new(crate::support::fleet::script())
        .args(["down", &name])
        .output()
        .expect("run fleet down");
    assert!(again.status.success(), "a second `down` must succeed too");
}

#[test]
fn tini_hosts_are_separate_ssh_hosts_that_partition_crash_and_restart() {
    let fleet = Fleet::up(
        "tini-hosts",
        "azure-westus:frontend:2,aws-useast1:store:1",
        Mode::Tini,
    );
    let names: Vec<&str> = fleet.nodes().iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        ["frontend-azure-1", "frontend-azure-2", "store-aws-1"]
    );
    let store = fleet.node("store-aws-1");
    assert_eq!(store.datacenter.as_str(), "aws-useast1");
    assert_eq!(store.role.as_str(), "store");

    for node in fleet.nodes() {
        let host = node.name.as_str();
        assert_eq!(ssh_ok(&fleet, host, "hostname"), host);
        assert!(
            !ssh_ok(&fleet, host, "pgrep -x nginx").is_empty(),
            "nginx does not run on `{host}`"
        );
        // No route out: only the fleet's own /24.
        let routes = ssh_ok(&fleet, host, "ip -4 route");
        assert!(
            !routes.contains("default"),
            "`{host}` has a route out: {routes}"
        );
    }

    // A file written in one host is visible nowhere else.
    let marker = format!("/root/fleet-marker-{}", std::process::id());
    ssh_ok(&fleet, "frontend-azure-1", &format!("echo here > {marker}"));
    assert_eq!(
        fleet
            .exec_ok("frontend-azure-1", &format!("cat {marker}"))
            .trim(),
        "here"
    );
    let other = fleet.exec("frontend-azure-2", &format!("test -e {marker}"));
    assert!(
        !other.status.success(),
        "`{marker}` leaked into another host"
    );
    assert!(
        !Path::new(&marker).exists(),
        "`{marker}` leaked onto the machine"
    );

    // Partition: the connection times out (not refused); heal: it works again.
    fleet.partition("frontend-azure-1");
    let started = Instant::now();
    let out = ssh(&fleet, "frontend-azure-1", "true");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ssh to a partitioned host succeeded");
    assert!(
        stderr.contains("timed out"),
        "expected a timeout, got: {stderr}"
    );
    assert!(started.elapsed() >= Duration::from_millis(1500));
    fleet.heal("frontend-azure-1");
    assert_eq!(
        ssh_ok(&fleet, "frontend-azure-1", "hostname"),
        "frontend-azure-1"
    );

    // Crash: refused at once; restart: back, with its files.
    fleet.crash("frontend-azure-1");
    let started = Instant::now();
    let out = ssh(&fleet, "frontend-azure-1", "true");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Connection refused"),
        "expected refusal, got: {stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    fleet.restart("frontend-azure-1");
    assert_eq!(
        ssh_ok(&fleet, "frontend-azure-1", &format!("cat {marker}")),
        "here"
    );

    assert_down_leaves_nothing(fleet);
}

#[test]
fn systemd_hosts_run_sshd_and_nginx_as_units() {
    let fleet = Fleet::up("systemd-hosts", "azure-westus:frontend:2", Mode::Systemd);
    for node in fleet.nodes() {
        let host = node.name.as_str();
        assert_eq!(ssh_ok(&fleet, host, "hostname"), host);
        assert_eq!(
            ssh_ok(&fleet, host, "readlink /proc/1/exe"),
            "/usr/lib/systemd/systemd"
        );
        assert_eq!(
            ssh_ok(&fleet, host, "systemctl is-system-running"),
            "running"
        );
        assert_eq!(
            ssh_ok(&fleet, host, "systemctl is-active nginx ssh"),
            "active\nactive"
        );
    }
    let host = "frontend-azure-1";
    let pid_before = ssh_ok(&fleet, host, "systemctl show -p MainPID --value nginx");
    ssh_ok(&fleet, host, "systemctl reload nginx");
    ssh_ok(&fleet, host, "systemctl daemon-reload");
    ssh_ok(&fleet, host, "systemctl enable nginx");
    assert_eq!(
        ssh_ok(&fleet, host, "systemctl is-enabled nginx"),
        "enabled"
    );
    assert_eq!(
        ssh_ok(&fleet, host, "systemctl show -p MainPID --value nginx"),
        pid_before,
        "a reload must keep nginx's main process"
    );
    assert!(ssh_ok(&fleet, host, "journalctl -u nginx --no-pager").contains("nginx"));
    // Units stopped in one host keep running in the other.
    ssh_ok(&fleet, host, "systemctl stop nginx");
    assert_eq!(
        ssh_ok(&fleet, "frontend-azure-2", "systemctl is-active nginx"),
        "active"
    );
    // The machine's kernel settings are out of reach.
    let out = ssh(&fleet, host, "echo 1 > /proc/sys/kernel/sysrq");
    assert!(!out.status.success(), "a host could write /proc/sys/kernel");

    fleet.crash(host);
    let out = ssh(&fleet, host, "true");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Connection refused"));
    fleet.restart(host);
    assert_eq!(
        ssh_ok(&fleet, host, "systemctl is-enabled nginx"),
        "enabled"
    );

    assert_down_leaves_nothing(fleet);
}

#[test]
fn parallel_fleets_get_their_own_bridge_and_subnet() {
    let handles: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(|| Fleet::up("parallel", "local:node:2", Mode::Tini)))
        .collect();
    let fleets: Vec<Fleet> = handles
        .into_iter()
        .map(|h| h.join().expect("fleet up thread"))
        .collect();
    let (a, b) = (&fleets[0], &fleets[1]);
    assert_ne!(meta(a, "FLEET_BRIDGE"), meta(b, "FLEET_BRIDGE"));
    assert_ne!(a.gateway_address(), b.gateway_address());
    for fleet in &fleets {
        for node in fleet.nodes() {
            let host = node.name.as_str();
            assert_eq!(ssh_ok(fleet, host, "hostname"), host);
            // A host has a route to its own fleet's gateway and none to anything else.
            let own = format!("ip route get {}", fleet.gateway_address());
            ssh_ok(fleet, host, &own);
        }
    }
    let other = format!("ip route get {}", b.gateway_address());
    let out = ssh(a, "node-local-1", &other);
    assert!(
        !out.status.success(),
        "a host reached another fleet's bridge"
    );
    for fleet in fleets {
        assert_down_leaves_nothing(fleet);
    }
}
