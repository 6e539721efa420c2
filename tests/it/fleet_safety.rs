//! The safety features of `tandem apply` proven on the local fleet (real sshd, systemd
//! hosts, the real binary): a saved plan gone stale, writes cut at random points, the
//! rollout threshold and health check, the site and node locks, SIGINT, and the run
//! history each of them leaves. The same features are tested with the local transport
//! in `safety`; here the hosts, the SSH sessions and the processes are real, and every
//! check is made on the hosts themselves (`fleet.exec`) or through `tandem runs`.

mod hangs;
mod identity;
mod interrupts;
mod locks;
mod rollout;
mod stale;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::fleet::Fleet;
use crate::support::site::SiteFleet;
use crate::support::wait::{wait_for, wait_until};

/// The files the example site manages on a frontend.
const FRONTEND_FILES: [&str; 6] = [
    "/etc/nginx/nginx.conf",
    "/etc/nginx/conf.d/tandem-apps.conf",
    "/etc/dashboard/dashboard.toml",
    "/etc/txserver/txserver.toml",
    "/etc/docs/docs.toml",
    "/etc/systemd/system/dashboard.service",
];

/// Every file (with its sha256) below the directories the example site touches on a
/// frontend, sorted: equal before and after means the host was not changed.
fn fingerprint(fleet: &Fleet, host: &str) -> String {
    fleet.exec_ok(
        host,
        "for d in /etc/nginx /etc/dashboard /etc/txserver /etc/docs /etc/systemd/system; do \
           [ -e $d ] && find $d \\( -type f -o -type l \\) -exec sha256sum {} + ; \
         done | sort; ls -ld /etc/dashboard /etc/txserver /etc/docs 2>&1 | sort",
    )
}

/// The sha256 of `path` on `host`, or `missing`.
fn sha(fleet: &Fleet, host: &str, path: &str) -> String {
    let out = fleet.exec_ok(
        host,
        &format!("if [ -e {path} ]; then sha256sum {path}; else echo missing; fi"),
    );
    out.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The report line of `host` in an apply's output (`HOST (DC): OUTCOME...`).
/// The report line naming `host`: its own line, or the line of the group of nodes whose
/// steps were identical (`a, b (dc1), c (dc2): changed`).
fn node_line<'a>(stdout: &'a str, host: &str) -> Option<&'a str> {
    stdout.lines().find(|l| {
        let Some((names, _)) = l.split_once("): ") else {
            return false;
        };
        !l.starts_with(' ') && names.split([',', '(', ')']).any(|name| name.trim() == host)
    })
}

/// The runs in the site's history, newest first (`tandem runs --format json`).
fn runs(sf: &SiteFleet) -> Vec<serde_json::Value> {
    let run = sf.tandem(&["runs", "--format", "json"]);
    run.expect_code(0);
    serde_json::from_str::<Vec<serde_json::Value>>(&run.stdout)
        .unwrap_or_else(|e| panic!("`tandem runs --format json` is not a JSON list: {e}\n{run}"))
}

/// One run with its per-node outcomes (`tandem runs show ID --format json`).
fn run_detail(sf: &SiteFleet, id: &serde_json::Value) -> serde_json::Value {
    let id = id.to_string();
    let run = sf.tandem(&["runs", "show", &id, "--format", "json"]);
    run.expect_code(0);
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("`tandem runs show {id}` is not JSON: {e}\n{run}"))
}

/// The newest apply run with its per-node outcomes (plans are recorded too).
fn last_apply(sf: &SiteFleet) -> serde_json::Value {
    let all = runs(sf);
    let apply = all
        .iter()
        .find(|r| r["kind"] == "apply")
        .unwrap_or_else(|| panic!("no apply run in the history: {all:?}"));
    run_detail(sf, &apply["id"])
}

/// `node -> outcome` of a run detail.
fn outcomes(detail: &serde_json::Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = detail["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no nodes in {detail}"))
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap_or_default().to_string(),
                n["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Starts `tandem ARGS` against the fleet and site without waiting: for the tests that
/// signal or race it. Output goes to files in `dir` so a full pipe never blocks it.
fn spawn(sf: &SiteFleet, args: &[&str], dir: &std::path::Path, tag: &str) -> Child {
    let out = std::fs::File::create(dir.join(format!("{tag}.out"))).unwrap();
    let err = std::fs::File::create(dir.join(format!("{tag}.err"))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .env("TANDEM_SITE", sf.site())
        .env(
            "TANDEM_INVENTORY",
            sf.fleet.dir().join("demo-inventory.toml"),
        )
        .env("TANDEM_KNOWN_HOSTS", sf.fleet.known_hosts_path())
        .env("TANDEM_IDENTITY", sf.fleet.key_path())
        .env(
            "TANDEM_AGE_IDENTITY",
            sf.site().join("manifests/DEMO-ONLY-age-identity.txt"),
        )
        .env_remove("TANDEM_TRANSPORT")
        .env_remove("TANDEM_USER")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("cannot start the tandem binary")
}

/// Waits (bounded by `timeout`) for a spawned run; its exit code, stdout and stderr.
fn finish(
    mut child: Child,
    dir: &std::path::Path,
    tag: &str,
    timeout: Duration,
) -> (Option<i32>, String, String) {
    let read =
        |ext: &str| std::fs::read_to_string(dir.join(format!("{tag}.{ext}"))).unwrap_or_default();
    let status = wait_for(timeout, &format!("tandem ({tag}) to finish"), || {
        child.try_wait().unwrap()
    });
    let status = status.unwrap_or_else(|err| {
        child.kill().ok();
        child.wait().ok();
        panic!("{err}\n{}\n{}", read("out"), read("err"))
    });
    (status.code(), read("out"), read("err"))
}

/// Sends `signal` (e.g. `-INT`, `-KILL`) to a process the test started.
fn signal(child: &Child, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {signal} {} failed", child.id());
}

/// Whether the site lock is held right now (a non-blocking `flock` on it fails).
fn site_locked(sf: &SiteFleet) -> bool {
    let lock = sf.site().join(".tandem/run.lock");
    lock.exists()
        && !Command::new("flock")
            .args(["-n"])
            .arg(&lock)
            .arg("true")
            .status()
            .unwrap()
            .success()
}

/// Holds the node lock of `host` (`/var/lib/tandem/lock`, what the apply script
/// flocks) from a detached process on the host for `secs` seconds; returns once held.
fn hold_node_lock(fleet: &Fleet, host: &str, secs: u32) {
    fleet.exec_ok(
        host,
        &format!(
            "mkdir -p /var/lib/tandem && setsid -f flock /var/lib/tandem/lock sleep {secs} \
             </dev/null >/dev/null 2>&1"
        ),
    );
    wait_until(Duration::from_secs(10), "the node lock to be held", || {
        !fleet
            .exec(host, "flock -n /var/lib/tandem/lock true")
            .status
            .success()
    })
    .unwrap();
}

/// Ends a `hold_node_lock` on `host` early.
fn release_node_lock(fleet: &Fleet, host: &str) {
    fleet.exec_ok(host, "pkill -f '^flock /var/lib/tandem/lock' || true");
}
