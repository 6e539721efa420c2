//! The example site on a local fleet, for end-to-end tests: brings up a fleet in systemd
//! mode (what production nodes run), bakes the demo stand-ins into every host (as a VM
//! image would carry the real binaries), writes the demo inventory with the node
//! variables that point the site at them (`scripts/demo-inventory`, shared with
//! `scripts/demo`), copies the example site into a temporary directory that a test may
//! modify, and runs the real `tandem` binary against all of it.

// Shared by several test modules; not every one uses every accessor.
#![allow(dead_code)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::fleet::{self, Fleet, Mode};
use super::wait::wait_for;

/// The stand-ins baked into every host under `/opt/tandem-demo/`.
const STANDINS: [&str; 2] = ["app", "mongosh"];

/// A fleet prepared for the example site, with a private copy of the site.
pub struct SiteFleet {
    pub fleet: Fleet,
    site: tempfile::TempDir,
    inventory: PathBuf,
}

/// One run of the `tandem` binary.
pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// Panics with the whole output unless the exit code is `expected`.
    pub fn expect_code(&self, expected: i32) -> &Run {
        assert_eq!(
            self.code,
            Some(expected),
            "expected exit {expected}\n{self}"
        );
        self
    }

    /// stdout and stderr together, for "never appears anywhere" checks.
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`tandem {}` exited {:?} after {:.1?}\n--- stdout\n{}--- stderr\n{}---",
            self.args.join(" "),
            self.code,
            self.elapsed,
            self.stdout,
            self.stderr
        )
    }
}

/// The repository's own example site.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

impl SiteFleet {
    /// A systemd fleet of `layout` (see `Fleet::up`) ready for the example site.
    pub fn up(hint: &str, layout: &str) -> SiteFleet {
        let fleet = Fleet::up(hint, layout, Mode::Systemd);
        for node in fleet.nodes() {
            for standin in STANDINS {
                bake(&fleet, node.name.as_str(), standin);
            }
        }
        let inventory = fleet.dir().join("demo-inventory.toml");
        let output = Command::new(repo_root().join("scripts/demo-inventory"))
            .arg(fleet.inventory_path())
            .output()
            .expect("cannot run scripts/demo-inventory");
        assert!(
            output.status.success(),
            "scripts/demo-inventory failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::write(&inventory, &output.stdout).unwrap();

        let site = tempfile::tempdir().unwrap();
        for part in ["manifests", "modules", "templates"] {
            let from = repo_root().join(part);
            if from.is_dir() {
                copy_tree(&from, &site.path().join(part));
            }
        }
        // The example's rollout pauses 10 s between batches for a human to watch; the
        // tests keep its canaries, batches and health check but not the wait.
        let site_toml = site.path().join("manifests/site.toml");
        let text = std::fs::read_to_string(&site_toml).unwrap();
        assert!(
            text.contains("pause_seconds = 10"),
            "example site.toml changed"
        );
        std::fs::write(
            &site_toml,
            text.replace("pause_seconds = 10", "pause_seconds = 0"),
        )
        .unwrap();
        SiteFleet {
            fleet,
            site,
            inventory,
        }
    }

    /// The demo inventory (static node list) the runs use.
    pub fn inventory(&self) -> &Path {
        &self.inventory
    }

    /// The private copy of the example site.
    pub fn site(&self) -> &Path {
        self.site.path()
    }

    /// Replaces `from` with `to` in the site file `rel` (panics unless `from` occurs
    /// exactly once, so a test never edits something other than it meant to).
    pub fn edit_site(&self, rel: &str, from: &str, to: &str) {
        let path = self.site().join(rel);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.matches(from).count(),
            1,
            "`{from}` is not in {rel} exactly once"
        );
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    /// Lets the rollout go on past failed nodes: for tests of what one node's failure
    /// does to that node, where the example's `max_failed = 0` would stop the others
    /// (that threshold has tests of its own).
    pub fn tolerate_failures(&self) {
        self.edit_site("manifests/site.toml", "max_failed = 0", "max_failed = 100");
    }

    /// Rewrites the demo inventory (the parsed TOML document) with `edit`.
    pub fn edit_inventory(&self, edit: impl FnOnce(&mut toml::Table)) {
        let text = std::fs::read_to_string(&self.inventory).unwrap();
        let mut doc: toml::Table = text.parse().unwrap();
        edit(&mut doc);
        std::fs::write(&self.inventory, toml::to_string(&doc).unwrap()).unwrap();
    }

    /// Sets a node variable in the demo inventory (`value` is TOML, e.g. `"\"x\""`).
    pub fn set_node_var(&self, node: &str, key: &str, value: &str) {
        let text = std::fs::read_to_string(&self.inventory).unwrap();
        let mut doc: toml::Table = text.parse().unwrap();
        let value: toml::Value =
            format!("v = {value}").parse::<toml::Table>().unwrap()["v"].clone();
        let nodes = doc["node"].as_array_mut().unwrap();
        let entry = nodes
            .iter_mut()
            .find(|n| n["name"].as_str() == Some(node))
            .unwrap_or_else(|| panic!("no node `{node}` in the inventory"))
            .as_table_mut()
            .unwrap();
        entry
            .entry("vars")
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .unwrap()
            .insert(key.into(), value);
        std::fs::write(&self.inventory, toml::to_string(&doc).unwrap()).unwrap();
    }

    /// Runs `tandem ARGS` against this fleet and site, bounded by `timeout`.
    pub fn tandem_within(&self, args: &[&str], timeout: Duration) -> Run {
        self.tandem_env(args, &[], timeout)
    }

    /// `tandem_within` with extra environment variables (an emulator's credentials).
    pub fn tandem_env(&self, args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
        command
            .args(args)
            .env("TANDEM_SITE", self.site())
            .env("TANDEM_INVENTORY", &self.inventory)
            .env("TANDEM_KNOWN_HOSTS", self.fleet.known_hosts_path())
            .env("TANDEM_IDENTITY", self.fleet.key_path())
            .env(
                "TANDEM_AGE_IDENTITY",
                self.site().join("manifests/DEMO-ONLY-age-identity.txt"),
            )
            .env_remove("TANDEM_TRANSPORT")
            .env_remove("TANDEM_USER")
            .envs(env.iter().copied());
        run_bounded(command, args, timeout)
    }

    /// Runs `tandem ARGS` with a generous bound (two minutes).
    pub fn tandem(&self, args: &[&str]) -> Run {
        self.tandem_within(args, Duration::from_secs(120))
    }

    /// The value of a secret of the site, decrypted the way tandem does.
    pub fn secret(&self, name: &str) -> String {
        let secrets = tandem::secret::read_secrets_file(
            &self.site().join(tandem::secret::SECRETS_FILE),
            &self.site().join("manifests/DEMO-ONLY-age-identity.txt"),
        )
        .expect("the example site's secrets do not decrypt");
        secrets
            .iter()
            .find(|s| s.name() == name)
            .unwrap_or_else(|| panic!("no secret `{name}` in the example site"))
            .expose()
            .to_string()
    }
}

/// Copies a stand-in into the host, like an image bake: not through tandem.
fn bake(fleet: &Fleet, host: &str, standin: &str) {
    let source = repo_root().join("scripts/demo-standins").join(standin);
    let output = Command::new(fleet::script())
        .args([
            "exec",
            fleet.name(),
            host,
            &format!(
                "mkdir -p /opt/tandem-demo && cat > /opt/tandem-demo/{standin} \
                 && chmod 755 /opt/tandem-demo/{standin}"
            ),
        ])
        .stdin(std::fs::File::open(&source).unwrap())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "baking `{standin}` into `{host}` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs the prepared `command` (`args` are for messages), draining its output on threads
/// so a chatty run cannot block on a full pipe, and kills it past `timeout`.
pub fn run_bounded(mut command: Command, args: &[&str], timeout: Duration) -> Run {
    let start = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start the tandem binary");
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            pipe.read_to_string(&mut s).ok();
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let what = format!("`tandem {}` to finish", args.join(" "));
    let status = match wait_for(timeout, &what, || child.try_wait().unwrap()) {
        Ok(status) => status,
        Err(timed_out) => {
            child.kill().ok();
            child.wait().ok();
            panic!(
                "{timed_out}\n--- stdout\n{}--- stderr\n{}",
                out.join().unwrap(),
                err.join().unwrap()
            );
        }
    };
    Run {
        args: args.iter().map(|a| a.to_string()).collect(),
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        elapsed: start.elapsed(),
    }
}
