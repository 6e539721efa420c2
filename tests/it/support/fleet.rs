//! The local fleet of real SSH hosts for end-to-end tests: a thin wrapper around
//! `scripts/fleet` (SPEC section 13). `Fleet::up` brings up hosts in network namespaces
//! under a name unique to the test, waits until every sshd answers, and `Drop` removes
//! them again, so parallel tests never share hosts. Needs root; without it the test fails
//! with a message saying so rather than passing silently.

// Shared by several test modules; not every one uses every accessor.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use tandem::node::Node;
use tandem::transport::ssh::{SshConfig, SshConnector};
use tandem::transport::Connector;

/// What runs as PID 1 in every host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// systemd 252, sshd and nginx as real units (what production nodes run).
    Systemd,
    /// tini running sshd; nginx started by hand, no systemd. Lighter and faster.
    Tini,
}

impl Mode {
    fn flag(self) -> &'static str {
        match self {
            Mode::Systemd => "--systemd",
            Mode::Tini => "--tini",
        }
    }
}

/// A running fleet; removed on drop.
#[derive(Debug)]
pub struct Fleet {
    name: String,
    dir: PathBuf,
    mode: Mode,
    nodes: Vec<Node>,
}

/// The fleet tool, from the crate root.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fleet")
}

/// Panics unless the test runs as root: the fleet needs namespaces, bridges and mounts.
pub fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("unknown");
    assert_eq!(
        euid, "0",
        "this test needs the local fleet, which needs root (namespaces, bridges, mounts); \
         run it as root, as CI does"
    );
}

/// A fleet name unique to this test process and call, readable in `ip netns` output.
fn unique_name(hint: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let mut stem: String = hint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(24)
        .collect();
    stem = stem.trim_matches('-').to_string();
    if stem.is_empty() {
        stem.push_str("test");
    }
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{stem}-{}-{n}", std::process::id())
}

fn run(args: &[&str]) -> Output {
    Command::new(script())
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run `{}`: {err}", script().display()))
}

fn check(args: &[&str], output: &Output) {
    assert!(
        output.status.success(),
        "`fleet {}` failed ({}):\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Fleet {
    /// Brings up the hosts of `layout` (`DC:ROLE:COUNT[:PREFIX],...`, e.g.
    /// `azure-westus:frontend:2,aws-useast1:store:1`) and returns once every sshd
    /// accepts connections (and, with systemd, every boot finished). Panics on failure
    /// with the tool's output, which names the host that did not come up.
    pub fn up(name_hint: &str, layout: &str, mode: Mode) -> Fleet {
        require_root();
        let name = unique_name(name_hint);
        let args = ["up", name.as_str(), "--layout", layout, mode.flag()];
        let output = run(&args);
        check(&args, &output);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let dir = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
        let mut fleet = Fleet {
            name,
            dir,
            mode,
            nodes: Vec::new(),
        };
        // `fleet` owns the hosts from here: a failure below still tears them down.
        fleet.nodes = tandem::manifest::nodes::load(&fleet.inventory_path())
            .unwrap_or_else(|err| panic!("the fleet's inventory does not load: {err}"));
        fleet
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The state directory (`/run/tandem-fleet/NAME`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The hosts in tandem's `nodes.toml` format.
    pub fn inventory_path(&self) -> PathBuf {
        self.dir.join("inventory.toml")
    }

    /// OpenSSH known_hosts with every host's key, keyed by address.
    pub fn known_hosts_path(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    /// The private key (ed25519) authorized for root on every host.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }

    /// tandem's SSH transport for root on every host: the fleet's key and known_hosts,
    /// a 5 s connect timeout.
    pub fn connector(&self) -> std::sync::Arc<dyn Connector> {
        let mut config = SshConfig::new(self.known_hosts_path());
        config.identity = Some(self.key_path());
        config.connect_timeout = std::time::Duration::from_secs(5);
        std::sync::Arc::new(SshConnector::new(config).unwrap())
    }

    /// An OpenSSH client config naming every host (`ssh -F this HOST`).
    pub fn ssh_config_path(&self) -> PathBuf {
        self.dir.join("ssh_config")
    }

    /// The bridge's address in the root namespace, the one address outside the fleet
    /// that hosts can reach (`fleet-gateway` in their /etc/hosts): serve a local apt
    /// repository or a webhook sender there.
    pub fn gateway_address(&self) -> String {
        let env = std::fs::read_to_string(self.dir.join("fleet.env")).unwrap_or_default();
        let net = env
            .lines()
            .find_map(|line| line.strip_prefix("FLEET_NET="))
            .unwrap_or_else(|| panic!("no `FLEET_NET` in {}/fleet.env", self.dir.display()));
        format!("{net}.1")
    }

    /// The hosts, as tandem's inventory loader reads them.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The host named `host`; panics if there is none.
    pub fn node(&self, host: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name.as_str() == host)
            .unwrap_or_else(|| panic!("no host `{host}` in fleet `{}`", self.name))
    }

    fn op(&self, op: &str, host: &str) {
        let args = [op, self.name.as_str(), host];
        check(&args, &run(&args));
    }

    /// Takes the host's veth down: connections to it time out.
    pub fn partition(&self, host: &str) {
        self.op("partition", host);
    }

    /// Undoes `partition`.
    pub fn heal(&self, host: &str) {
        self.op("heal", host);
    }

    /// Kills the host's PID 1: connections to it are refused.
    pub fn crash(&self, host: &str) {
        self.op("crash", host);
    }

    /// Boots a crashed host again with its files intact; returns once sshd answers.
    pub fn restart(&self, host: &str) {
        self.op("restart", host);
    }

    /// Runs `sh -c command` inside the host (nsenter, not SSH): for checking what tandem
    /// did without going through tandem.
    pub fn exec(&self, host: &str, command: &str) -> Output {
        Command::new(script())
            .args(["exec", self.name.as_str(), host, command])
            .output()
            .unwrap_or_else(|err| panic!("cannot run `{}`: {err}", script().display()))
    }

    /// Like `exec`, but panics unless the command succeeds; returns its stdout.
    pub fn exec_ok(&self, host: &str, command: &str) -> String {
        let output = self.exec(host, command);
        assert!(
            output.status.success(),
            "`{command}` on `{host}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// An OpenSSH client command for root on `host`, trusting only the fleet's key and
    /// known_hosts; append the remote command with `.arg(..)`.
    pub fn ssh(&self, host: &str, connect_timeout_secs: u32) -> Command {
        let node = self.node(host);
        let mut cmd = Command::new("ssh");
        cmd.arg("-F")
            .arg("/dev/null")
            .arg("-i")
            .arg(self.key_path())
            .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
            .args(["-o", "StrictHostKeyChecking=yes"])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.known_hosts_path().display()
            ))
            .arg("-o")
            .arg(format!("ConnectTimeout={connect_timeout_secs}"))
            .arg(format!("root@{}", node.address));
        cmd
    }

    /// Removes the fleet now (also done on drop).
    pub fn down(self) {}
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let output = run(&["down", self.name.as_str()]);
        if !output.status.success() {
            eprintln!(
                "fleet: `down {}` failed: {}",
                self.name,
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}
