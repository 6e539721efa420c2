//! The injected failures, in turn, on one systemd host.

use super::*;
use StepStatus::{Applied, Failed, Skipped};

/// Makes `command` fail on the host: a script of that name first in root's `PATH`.
/// `systemctl show` (the probe's one read of every unit) still works, so it is the
/// change, not the probe, that meets the failure.
fn install_shim(c: &Control, host: &str, command: &str) {
    let pass = if command == "systemctl" {
        "case \"$1\" in show) exec /usr/bin/systemctl \"$@\";; esac\n"
    } else {
        ""
    };
    c.sh(
        host,
        &format!(
            "cat > /usr/local/sbin/{command} <<'EOF'\n#!/bin/sh\n{pass}echo \"injected failure: $0 $*\" >&2\nexit 1\nEOF\n\
             chmod 755 /usr/local/sbin/{command}"
        ),
    );
}

fn remove_shim(c: &Control, host: &str, command: &str) {
    c.sh(host, &format!("rm -f /usr/local/sbin/{command}"));
}

/// A file whose current content is `old` and that the catalog changes: its digest.
fn existing(c: &Control, host: &str, path: &str, old: &str) -> String {
    c.sh(host, &format!("printf '%s' '{old}' > {path}"));
    c.digest(host, path)
}

#[test]
fn every_injected_failure_fails_its_resource_keeps_the_old_file_and_skips_dependents() {
    let c = fleet_up("node-faults", "azure-westus:frontend:1");
    let host = c.fleet.nodes()[0].name.to_string();
    let host = host.as_str();
    c.sh(host, "mkdir -p /srv/faults");
    no_space_left(&c, host);
    owner_that_does_not_exist(&c, host);
    for command in ["install", "chown", "mv", "sync", "useradd", "systemctl"] {
        shimmed(&c, host, command);
    }
    checksum_fails(&c, host);
    directory_fsync_fails(&c, host);
    symlinked_parent(&c, host);
    leftovers_of_a_killed_run(&c, host);
}

/// A failing `sha256sum`: the data sent cannot be checked, so the script refuses before
/// its first step and no file changes, not even one that comes before the others.
fn checksum_fails(c: &Control, host: &str) {
    let (first_path, second_path) = ("/srv/faults/sum-first.conf", "/srv/faults/sum-second.conf");
    let first_before = existing(c, host, first_path, "old first\n");
    let second_before = existing(c, host, second_path, "old second\n");
    let first = file(first_path, b"new first\n", &[]);
    let second = file(second_path, b"new second\n", &[]);
    install_shim(c, host, "sha256sum");
    let (report, detail) = c.apply(host, vec![first, second]);
    remove_shim(c, host, "sha256sum");
    let node = only(&report);
    assert_eq!(node.outcome, Outcome::Failed, "{node:#?}");
    assert!(node.resources.is_empty(), "a step ran: {node:#?}");
    let error = node.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("`sha256sum -c` of the data for the steps failed"),
        "{error}"
    );
    assert_eq!(detail.run.status, RunStatus::Failed, "{:?}", detail.run);
    assert_eq!(
        c.digest(host, first_path),
        first_before,
        "the first file changed"
    );
    assert_eq!(
        c.digest(host, second_path),
        second_before,
        "the second file changed"
    );
}

/// A 1 MiB tmpfs, a 17-byte file on it, then 2 MB of content: the write fails with
/// ENOSPC and the 17 bytes stay (the old code renamed a truncated file into place).
fn no_space_left(c: &Control, host: &str) {
    c.sh(
        host,
        "mkdir -p /srv/small && mount -t tmpfs -o size=1m tmpfs /srv/small",
    );
    let path = "/srv/small/app.conf";
    let (report, _) = c.apply(host, vec![file(path, b"seventeen bytes!\n", &[])]);
    assert_eq!(only(&report).outcome, Outcome::Changed, "{report:?}");
    let before = c.digest(host, path);
    let dep_path = "/srv/faults/after-small.conf";
    let dep_before = existing(c, host, dep_path, "old dependent\n");
    let big = file(path, &noise(2_000_000), &[]);
    let dep = file(dep_path, b"new dependent\n", &[&big]);
    let (report, detail) = c.apply(host, vec![big, dep]);
    assert_failed(
        "ENOSPC",
        &report,
        &detail,
        &[Failed, Skipped],
        "cannot write the staged file for `/srv/small/app.conf`",
    );
    assert_eq!(c.digest(host, path), before, "ENOSPC: the old file changed");
    assert_eq!(c.digest(host, dep_path), dep_before);
    assert_no_leftovers(c, host, "/srv/small");
    c.sh(host, "umount /srv/small");
}

fn owner_that_does_not_exist(c: &Control, host: &str) {
    let path = "/srv/faults/owned.conf";
    let before = existing(c, host, path, "old owned\n");
    let mut spec = root_file(path, b"new owned\n");
    spec.owner = Some("nosuchuser".into());
    let f = res(Spec::File(spec), path, &[]);
    let dep_path = "/srv/faults/after-owned.conf";
    let dep_before = existing(c, host, dep_path, "old dependent\n");
    let dep = file(dep_path, b"new dependent\n", &[&f]);
    let (report, detail) = c.apply(host, vec![f, dep]);
    assert_failed(
        "unknown owner",
        &report,
        &detail,
        &[Failed, Skipped],
        "cannot write the staged file for `/srv/faults/owned.conf` with owner `nosuchuser:root`",
    );
    assert_eq!(c.digest(host, path), before);
    assert_eq!(c.digest(host, dep_path), dep_before);
    assert_no_leftovers(c, host, "/srv/faults");
}

/// `command` fails on the host: the resource that runs it fails, with what it was doing,
/// and once the shim is gone the next apply converges.
fn shimmed(c: &Control, host: &str, command: &str) {
    let case = format!("failing `{command}`");
    let dep_path = format!("/srv/faults/after-{command}.conf");
    let dep_before = existing(c, host, &dep_path, "old dependent\n");
    let watched = format!("/srv/faults/{command}.conf");
    let (first, error) = match command {
        "useradd" => (
            res(
                Spec::User(UserSpec {
                    name: "faultuser".into(),
                    ensure: Presence::Present,
                    uid: None,
                    group: None,
                    groups: Vec::new(),
                    home: None,
                    shell: None,
                    system: true,
                }),
                "faultuser",
                &[],
            ),
            "useradd `faultuser` failed (exit status 1)".to_string(),
        ),
        "systemctl" => {
            c.sh(
                host,
                "printf '[Service]\\nExecStart=/bin/sleep infinity\\n' > /etc/systemd/system/fault-app.service \
                 && systemctl daemon-reload",
            );
            (
                res(
                    Spec::Service(ServiceSpec {
                        name: "fault-app".into(),
                        running: Some(true),
                        enabled: None,
                        reload: false,
                        commands: None,
                    }),
                    "fault-app",
                    &[],
                ),
                "systemctl start `fault-app` failed (exit status 1)".to_string(),
            )
        }
        // A file with no owner declared keeps the old file's: `chown --reference`.
        "chown" => (
            res(
                Spec::File(FileSpec {
                    owner: None,
                    group: None,
                    ..root_file(&watched, b"new content\n")
                }),
                &watched,
                &[],
            ),
            "cannot copy the owner of".to_string(),
        ),
        _ => {
            let what = match command {
                // Owner, group and mode declared: `install` writes the staged file.
                "install" => "cannot write the staged file",
                "mv" => "cannot rename the staged file into place",
                "sync" => "cannot fsync the staged file",
                other => panic!("no case for `{other}`"),
            };
            (file(&watched, b"new content\n", &[]), what.to_string())
        }
    };
    let before = existing(c, host, &watched, "old content\n");
    let dep = file(&dep_path, b"new dependent\n", &[&first]);
    let catalog = vec![first, dep];
    install_shim(c, host, command);
    let (report, detail) = c.apply(host, catalog.clone());
    remove_shim(c, host, command);
    assert_failed(&case, &report, &detail, &[Failed, Skipped], &error);
    assert_eq!(
        c.digest(host, &watched),
        before,
        "{case}: the old file changed"
    );
    assert_eq!(
        c.digest(host, &dep_path),
        dep_before,
        "{case}: a dependent ran"
    );
    match command {
        "useradd" => assert!(!c
            .fleet
            .exec(host, "getent passwd faultuser")
            .status
            .success()),
        "systemctl" => assert_ne!(
            c.fleet.exec(host, "systemctl is-active fault-app").stdout,
            b"active\n"
        ),
        _ => {}
    }
    assert_no_leftovers(c, host, "/srv/faults");
    let (report, _) = c.apply(host, catalog);
    let node = only(&report);
    assert_eq!(
        node.outcome,
        Outcome::Changed,
        "{case}, shim removed: {node:#?}"
    );
    assert_eq!(statuses(node), [Applied, Applied], "{case}");
    if command == "systemctl" {
        c.sh(host, "systemctl stop fault-app");
    }
}

/// A directory fsync that fails (an I/O error on the disk; here a `sync` that refuses
/// directories), after the steps renamed two files in two directories: the files read
/// new, since the renames happened, but the node fails naming the directories, and its
/// state file does not record the run. Once `sync` works, the next apply finds the
/// files in sync.
fn directory_fsync_fails(c: &Control, host: &str) {
    let (a, b) = (
        "/srv/faults/dirsync-a.conf",
        "/srv/faults/sub/dirsync-b.conf",
    );
    c.sh(host, "mkdir -p /srv/faults/sub");
    existing(c, host, a, "old a\n");
    existing(c, host, b, "old b\n");
    let state = || c.sh(host, "cat /var/lib/tandem/applied 2>/dev/null; true");
    let before = state();
    c.sh(
        host,
        "cat > /usr/local/sbin/sync <<'EOF'\n#!/bin/sh\n\
         for a; do if [ -d \"$a\" ]; then echo \"injected failure: $0 $*\" >&2; exit 1; fi; done\n\
         exec /usr/bin/sync \"$@\"\nEOF\n\
         chmod 755 /usr/local/sbin/sync",
    );
    let catalog = vec![file(a, b"new a\n", &[]), file(b, b"new b\n", &[])];
    let (report, detail) = c.apply(host, catalog.clone());
    remove_shim(c, host, "sync");
    let node = only(&report);
    assert_eq!(node.outcome, Outcome::Failed, "{node:#?}");
    assert_eq!(statuses(node), [Applied, Applied], "{node:#?}");
    let error = node.error.as_deref().unwrap_or_default();
    for want in [
        "cannot fsync the directories of the changed files",
        "injected failure",
        "/srv/faults /srv/faults/sub",
    ] {
        assert!(error.contains(want), "`{want}` not in `{error}`");
    }
    assert_eq!(detail.run.status, RunStatus::Failed, "{:?}", detail.run);
    assert_eq!(c.sh(host, &format!("cat {a} {b}")), "new a\nnew b\n");
    assert_eq!(
        state(),
        before,
        "the node state file recorded a run that failed"
    );
    assert_no_leftovers(c, host, "/srv/faults");
    let (report, _) = c.apply(host, catalog);
    let node = only(&report);
    assert_eq!(node.outcome, Outcome::Unchanged, "{node:#?}");
}

/// `/tmp/x -> /etc/cron.d`: managing `/tmp/x/evil` is refused on the node, naming the
/// link, and writes nothing; declared as a `symlink` resource, the same path is fine.
fn symlinked_parent(c: &Control, host: &str) {
    c.sh(
        host,
        "mkdir -p /etc/cron.d && rm -rf /tmp/x && ln -s /etc/cron.d /tmp/x",
    );
    let payload = b"* * * * * root touch /tmp/pwned\n";
    let (report, detail) = c.apply(host, vec![file("/tmp/x/evil", payload, &[])]);
    assert_failed(
        "symlinked parent",
        &report,
        &detail,
        &[Failed],
        "refusing to write `/tmp/x/evil`: its parent `/tmp/x` is a symlink the site does not declare",
    );
    assert!(!exists(c, host, "/etc/cron.d/evil"));
    assert_no_leftovers(c, host, "/etc/cron.d");
    let link = res(
        Spec::Symlink(SymlinkSpec {
            path: rp("/tmp/x"),
            ensure: Presence::Present,
            target: "/etc/cron.d".into(),
        }),
        "/tmp/x",
        &[],
    );
    let evil = file("/tmp/x/evil", payload, &[&link]);
    let (report, _) = c.apply(host, vec![link, evil]);
    assert_eq!(only(&report).outcome, Outcome::Changed, "{report:#?}");
    assert!(exists(c, host, "/etc/cron.d/evil"));
    c.sh(host, "rm -f /etc/cron.d/evil /tmp/x");
}

/// What a run killed mid-way leaves (a staged file, a staged tree copy, a work
/// directory) is removed by the next apply, even one with nothing to change, in the
/// probe's own command; then a no-op apply is one round trip again.
fn leftovers_of_a_killed_run(c: &Control, host: &str) {
    let tree = "/srv/faults/tree";
    c.sh(host, &format!("mkdir -p {tree}"));
    let mut spec = root_file("/srv/faults/tree/main.conf", b"tree\n");
    spec.validate = Some(Validate {
        command: "test -s {staged}".into(),
        tree: Some(rp(tree)),
    });
    let catalog = vec![res(Spec::File(spec), "/srv/faults/tree/main.conf", &[])];
    let (report, _) = c.apply(host, catalog.clone());
    assert_eq!(only(&report).outcome, Outcome::Changed, "{report:#?}");
    let leftovers = [
        "/srv/faults/tree/.main.conf.tandem-AbC123",
        "/srv/faults/.tree.tandem-QwE456",
        "/var/lib/tandem/run.XyZ789",
    ];
    let make = "touch /srv/faults/tree/.main.conf.tandem-AbC123 \
                && mkdir -p /srv/faults/.tree.tandem-QwE456/conf.d \
                && echo half > /srv/faults/.tree.tandem-QwE456/conf.d/a.conf \
                && mkdir -p /var/lib/tandem/run.XyZ789 && echo blob > /var/lib/tandem/run.XyZ789/b0";
    c.sh(host, make);
    let (report, _) = c.apply(host, catalog.clone());
    let node = only(&report);
    assert_eq!(node.outcome, Outcome::Unchanged, "{node:#?}");
    assert_eq!(
        node.round_trips, 1,
        "one command: the probe, held, carries the cleaning script"
    );
    for path in leftovers {
        assert!(!exists(c, host, path), "`{path}` was left");
    }
    // A work directory alone is found too (the probe lists the state directory's).
    c.sh(
        host,
        "mkdir -p /var/lib/tandem/run.Lone12 && echo blob > /var/lib/tandem/run.Lone12/b0",
    );
    let (report, _) = c.apply(host, catalog.clone());
    assert_eq!(only(&report).round_trips, 1);
    assert!(!exists(c, host, "/var/lib/tandem/run.Lone12"));
    let (report, _) = c.apply(host, catalog);
    let node = only(&report);
    assert_eq!(node.outcome, Outcome::Unchanged, "{node:#?}");
    assert_eq!(node.round_trips, 1, "a no-op apply is one round trip");
}
