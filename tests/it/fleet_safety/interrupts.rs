//! Runs cut short on real hosts. SIGINT to the real binary mid-rollout: the node in
//! flight finishes whole, no other starts, the summary and the history say so. And the
//! connection cut at seeded random points of a multi-file apply (the tandem process
//! SIGKILLed, which drops its SSH sessions): every managed file is wholly the old or
//! wholly the new version, never partial or empty, and the next run converges and leaves
//! no staged file behind.

use std::time::{Duration, Instant};

use super::{
    finish, last_apply, node_line, outcomes, sha, signal, spawn, wait_until, FRONTEND_FILES,
};
use crate::support::site::SiteFleet;

#[test]
fn sigint_lets_the_node_in_flight_finish_and_starts_no_other() {
    let sf = SiteFleet::up("fs-sigint", "azure-westus:frontend:3");
    let fleet = &sf.fleet;
    sf.edit_site("manifests/site.toml", "batch = \"25%\"", "batch = 1");
    let hosts = ["frontend-azure-1", "frontend-azure-2", "frontend-azure-3"];
    let logs = tempfile::tempdir().unwrap();
    let child = spawn(&sf, &["apply"], logs.path(), "apply");
    // Interrupt as soon as the first node has started changing files.
    wait_until(
        Duration::from_secs(60),
        "the first node to start changing",
        || {
            hosts
                .iter()
                .any(|h| fleet.exec(h, "test -e /etc/dashboard").status.success())
        },
    )
    .unwrap();
    signal(&child, "-INT");
    let (code, out, err) = finish(child, logs.path(), "apply", Duration::from_secs(120));
    assert_ne!(
        code,
        Some(0),
        "an interrupted run must not exit 0\n{out}{err}"
    );
    assert!(
        out.contains("interrupted: no new node was started"),
        "{out}{err}"
    );
    let done: Vec<&str> = out
        .lines()
        .find_map(|l| l.strip_prefix("done: "))
        .map(|l| l.split(", ").collect())
        .unwrap_or_default();
    let not: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("not attempted: "))
        .next_back()
        .map(|l| l.split(", ").collect())
        .unwrap_or_default();
    assert_eq!(done.len(), 1, "one node was in flight\n{out}");
    assert_eq!(not.len(), 2, "{out}");
    let in_flight = done[0];
    assert!(
        node_line(&out, in_flight).is_some_and(|l| l.contains("changed")),
        "{out}"
    );
    // The node in flight is whole: a plan of it shows nothing to do.
    sf.tandem(&["plan", "--on", in_flight]).expect_code(0);
    for host in &not {
        assert_eq!(
            fleet.exec(host, "test -e /etc/dashboard").status.code(),
            Some(1),
            "{host} was started after the interrupt\n{out}"
        );
    }
    let detail = last_apply(&sf);
    assert_eq!(detail["status"], "interrupted", "{detail}");
    assert!(
        detail["error"].as_str().is_some_and(
            |e| e.contains("interrupted by a signal") && e.contains("2 nodes not attempted")
        ),
        "{detail}"
    );
    for (node, outcome) in outcomes(&detail) {
        let want = if node == in_flight {
            "changed"
        } else {
            "not-attempted"
        };
        assert_eq!(outcome, want, "{node}: {detail}");
    }
}

/// A small deterministic generator (xorshift64*), seeded from `TANDEM_TEST_SEED` or the
/// clock; the seed is printed so a failing sequence of cuts can be replayed.
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("TANDEM_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("interrupted writes: seed {seed} (replay with TANDEM_TEST_SEED={seed})");
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[0, max)`.
    fn below(&mut self, max: Duration) -> Duration {
        let ms = max.as_millis().max(1) as u64;
        Duration::from_millis(self.next() % ms)
    }
}

/// The templates padded to make the managed files large-ish (about 250 kB each), with
/// `#` comment lines, which TOML, nginx and systemd all ignore.
const PADDED: [&str; 5] = [
    "modules/nginx/templates/nginx.conf.hbs",
    "modules/nginx/templates/apps.conf.hbs",
    "modules/app-service/templates/dashboard.toml.hbs",
    "modules/app-service/templates/txserver.toml.hbs",
    "modules/app-service/templates/docs.toml.hbs",
];

/// Writes the padded templates for `version` (originals in `originals`).
fn pad(sf: &SiteFleet, originals: &[String], version: &str) {
    let line = format!("# padding {version} {}\n", "x".repeat(70));
    let padding = line.repeat(3_000);
    for (rel, original) in PADDED.iter().zip(originals) {
        std::fs::write(sf.site().join(rel), format!("{original}\n{padding}")).unwrap();
    }
}

fn shas(sf: &SiteFleet, host: &str) -> Vec<String> {
    FRONTEND_FILES
        .iter()
        .map(|f| sha(&sf.fleet, host, f))
        .collect()
}

#[test]
fn writes_cut_at_random_points_leave_each_file_old_or_new() {
    let sf = SiteFleet::up("fs-cuts", "azure-westus:frontend:1");
    let host = "frontend-azure-1";
    let logs = tempfile::tempdir().unwrap();
    let originals: Vec<String> = PADDED
        .iter()
        .map(|rel| std::fs::read_to_string(sf.site().join(rel)).unwrap())
        .collect();
    // The two known versions of every file, converged once each.
    pad(&sf, &originals, "A");
    sf.tandem(&["apply"]).expect_code(0);
    let version_a = shas(&sf, host);
    pad(&sf, &originals, "B");
    let timed = sf.tandem(&["apply"]);
    timed.expect_code(0);
    let version_b = shas(&sf, host);
    for (file, (a, b)) in FRONTEND_FILES.iter().zip(version_a.iter().zip(&version_b)) {
        assert_ne!(a, "missing", "{file}");
        if !file.ends_with(".service") {
            assert_ne!(a, b, "{file} should differ between the versions");
        }
    }
    // Cut within the time an apply of a new version takes (plus a little margin).
    let window = timed.elapsed + Duration::from_millis(500);
    eprintln!("a full apply of version B took {:.1?}", timed.elapsed);

    let mut rng = Rng::from_env();
    let started = Instant::now();
    let points = 12;
    // A bound on the whole loop, relative to this machine's speed: each point is a
    // cut apply and a full one, and a loaded machine applies several times slower.
    let budget = Duration::from_secs(240).max(timed.elapsed * 3 * points);
    let mut hits = 0;
    for point in 0..points {
        let target = if point % 2 == 0 { "A" } else { "B" };
        pad(&sf, &originals, target);
        let delay = rng.below(window);
        let tag = format!("cut-{point}");
        let child = spawn(&sf, &["apply"], logs.path(), &tag);
        let (how, code, out) = if point % 4 < 2 {
            // The operator's side dies: tandem and with it its SSH connection. The sleep
            // is the random point of the cut, not a wait for anything.
            std::thread::sleep(delay);
            signal(&child, "-KILL");
            let (code, out, _) = finish(child, logs.path(), &tag, Duration::from_secs(30));
            (format!("tandem killed after {delay:?}"), code, out)
        } else {
            // The node's side dies: every process of the apply script (they hold the
            // node lock open) and the sshd sessions, SIGKILLed mid-write.
            // Cut at a random point within the script's own run, not tandem's.
            let into = rng.below(Duration::from_millis(400));
            let script = KILL_WRITERS.replace("DELAY", &format!("{:.3}", into.as_secs_f64()));
            let killed = sf.fleet.exec_ok(host, &script);
            let writers = killed.split_whitespace().count();
            if writers > 0 {
                hits += 1;
            }
            let (code, out, _) = finish(child, logs.path(), &tag, Duration::from_secs(60));
            (
                format!("{writers} script processes killed on the node {into:?} into the script"),
                code,
                out,
            )
        };

        // Remote commands orphaned by the cut may still be writing: wait until no SSH
        // session is left and no process has the node lock open (the apply script
        // opens it first and its children inherit it), then look at the files.
        let cut_at = Instant::now();
        wait_until(
            Duration::from_secs(30),
            &format!("cut {point}: the apply's processes on {host} to end"),
            || sf.fleet.exec(host, APPLY_GONE).status.success(),
        )
        .unwrap();
        eprintln!(
            "cut {point} towards {target}: {how}; tandem exit {code:?}; \
             the node's processes ended {:?} later",
            cut_at.elapsed()
        );
        let now = shas(&sf, host);
        for (i, file) in FRONTEND_FILES.iter().enumerate() {
            assert!(
                now[i] == version_a[i] || now[i] == version_b[i],
                "cut {point} ({how}): {file} is neither version ({}); seed above\n{out}",
                now[i]
            );
        }
        let size = sf.fleet.exec_ok(host, "stat -c %s /etc/nginx/nginx.conf");
        assert_ne!(size.trim(), "0", "cut {point}: empty nginx.conf");

        // The next run converges and leaves nothing staged behind.
        let after = sf.tandem(&["apply"]);
        after.expect_code(0);
        let want = if target == "A" {
            &version_a
        } else {
            &version_b
        };
        assert_eq!(
            &shas(&sf, host),
            want,
            "cut {point}: not converged\n{after}"
        );
        let strays = sf.fleet.exec_ok(
            host,
            "find /etc /var/lib/tandem /tmp -name '.*.tandem-*' 2>/dev/null; \
             find / -xdev -name '*tandem-stag*' 2>/dev/null | grep -v '^/proc' || true",
        );
        assert_eq!(
            strays.trim(),
            "",
            "cut {point}: stray files after the next run"
        );
        assert!(
            started.elapsed() < budget,
            "the cuts take too long; stopped after {point} points"
        );
    }
    sf.tandem(&["plan"]).expect_code(0);
    assert!(
        hits > 0,
        "no node-side cut found the apply script running; the cuts tested nothing (seed above)"
    );
    eprintln!(
        "{hits} of {} node-side cuts killed a running apply script",
        points / 2
    );
}

/// Run on the node: succeeds when no SSH session process is left and no process has
/// the node lock file open, i.e. no apply script (nor a child of one) runs.
const APPLY_GONE: &str = "! pgrep -f '^sshd: root@' >/dev/null && \
     ! ls -l /proc/[0-9]*/fd 2>/dev/null | grep -q -- '-> /var/lib/tandem/lock$'";

/// Run on the node: waits (at most 30 s) until the apply script runs, i.e. a process of
/// an SSH session holds the node lock open, then after `DELAY` seconds SIGKILLs that
/// whole session (the script and its children, mid-write) and the sshd session
/// processes; prints the pids killed (none if no apply script showed up).
const KILL_WRITERS: &str = "found=; end=$(( $(date +%s) + 30 )); \
     while [ -z \"$found\" ] && [ $(date +%s) -lt $end ]; do \
       for s in $(pgrep -f '^sshd: root@'); do for k in $(pgrep -P $s); do \
         sid=$(ps -o sid= -p $k | tr -d ' '); \
         for q in $(pgrep -s \"$sid\"); do \
           if ls -l /proc/$q/fd 2>/dev/null | grep -q -- '-> /var/lib/tandem/lock$'; then found=$sid; fi; \
         done; \
       done; done; \
       [ -n \"$found\" ] || sleep 0.01; \
     done; \
     if [ -n \"$found\" ]; then sleep DELAY; pgrep -s $found; pkill -KILL -s $found; \
       pkill -KILL -f '^sshd: root@' || true; fi";
