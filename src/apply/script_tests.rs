//! The apply script's shape: every command of every step checked, symlinked parents
//! refused, validate output of secret-bearing files withheld, leftovers removed, the
//! directories of renamed files fsynced once after the steps.

use super::*;
use crate::node::{DatacenterName, Node, NodeName, RoleName};
use crate::resource::*;
use crate::secret::Fingerprint;

fn rp(p: &str) -> RemotePath {
    RemotePath::parse(p).unwrap()
}

fn res(spec: Spec, name: &str) -> Resource {
    Resource {
        id: ResourceId::new(spec.kind(), name),
        spec,
        origin: Origin {
            file: "modules/test/module.toml".into(),
            line: 1,
        },
        after: Vec::new(),
        notify: Vec::new(),
    }
}

fn file(path: &str, text: &str, secret: bool, validate: Option<&str>) -> Resource {
    res(
        Spec::File(FileSpec {
            path: rp(path),
            ensure: Presence::Present,
            content: Some(Content {
                bytes: text.as_bytes().to_vec(),
                secrets: if secret {
                    vec![Fingerprint::of(b"s3cret")]
                } else {
                    Vec::new()
                },
                keyed_digest: secret.then(|| "k1".to_string()),
            }),
            owner: Some("app".into()),
            group: Some("app".into()),
            mode: Some(Mode(0o640)),
            validate: validate.map(|command| Validate {
                command: command.into(),
                tree: None,
            }),
            backup: true,
        }),
        path,
    )
}

fn link(path: &str, target: &str) -> Resource {
    res(
        Spec::Symlink(SymlinkSpec {
            path: rp(path),
            ensure: Presence::Present,
            target: target.into(),
        }),
        path,
    )
}

/// The script for `resources` on a systemd/apt node where none of them exist yet.
fn script(resources: Vec<Resource>) -> String {
    let catalog = Catalog {
        node: Node {
            name: NodeName::new("n").unwrap(),
            datacenter: DatacenterName::new("dc").unwrap(),
            role: RoleName::new("frontend").unwrap(),
            address: "127.0.0.1".into(),
            port: 22,
            user: None,
            facts: Default::default(),
            vars: Default::default(),
        },
        resources,
    };
    let token = Token::fixed("TOK");
    let facts = NodeFacts::parse(b"\nTOK os\nsystemd=1\npkg=apt\n\nTOK end\n", &token).unwrap();
    let plan = crate::plan::plan_node(&catalog, &facts, &Default::default()).unwrap();
    assert_eq!(plan.changes.len(), catalog.resources.len(), "{plan:?}");
    let params = ScriptParams {
        token: &token,
        state_dir: &rp("/var/lib/tandem"),
        lock_wait: Duration::from_secs(1),
        verify: (String::new(), Vec::new()),
    };
    build(&catalog, &plan, &facts, params).0
}

/// The bodies of the step subshells: `( ...\n) >"$W/e"`.
fn step_bodies(script: &str) -> Vec<&str> {
    script
        .split("if true; then\n( ")
        .skip(1)
        .filter_map(|rest| rest.split_once(") >\"$W/e\"").map(|(body, _)| body))
        .collect()
}

fn every_type() -> Vec<Resource> {
    vec![
        res(
            Spec::Group(GroupSpec {
                name: "app".into(),
                ensure: Presence::Present,
                gid: Some(990),
                system: true,
            }),
            "app",
        ),
        res(
            Spec::User(UserSpec {
                name: "app".into(),
                ensure: Presence::Present,
                uid: Some(990),
                group: Some("app".into()),
                groups: vec!["adm".into()],
                home: Some(rp("/home/app")),
                shell: None,
                system: true,
            }),
            "app",
        ),
        res(
            Spec::Directory(DirectorySpec {
                path: rp("/etc/app"),
                ensure: Presence::Present,
                owner: Some("root".into()),
                group: Some("app".into()),
                mode: Some(Mode(0o750)),
            }),
            "/etc/app",
        ),
        file(
            "/etc/app/app.conf",
            "a=1\n",
            false,
            Some("app --check {staged}"),
        ),
        link("/etc/app/current", "app.conf"),
        res(
            Spec::Package(PackageSpec {
                name: "nginx".into(),
                state: PackageState::Present,
            }),
            "nginx",
        ),
        res(
            Spec::Service(ServiceSpec {
                name: "app".into(),
                running: Some(true),
                enabled: Some(true),
                reload: true,
                commands: None,
            }),
            "app",
        ),
        res(
            Spec::Exec(ExecSpec {
                command: "app migrate".into(),
                creates: None,
                unless: None,
                onlyif: None,
                refresh_only: false,
                user: None,
                cwd: None,
            }),
            "migrate",
        ),
    ]
}

#[test]
fn every_command_of_every_step_is_checked() {
    let script = script(every_type());
    let bodies = step_bodies(&script);
    assert_eq!(bodies.len(), every_type().len(), "{script}");
    for body in bodies {
        // A `{ ...` group (manifest shell of several lines) is checked at its `}`.
        let mut in_group = false;
        for line in body.lines() {
            let checked = line.contains(" || fail '") && line.ends_with('\'');
            if in_group {
                in_group = !line.starts_with('}');
                assert!(
                    in_group || checked,
                    "unchecked group end `{line}` in:\n{body}"
                );
                continue;
            }
            if line.starts_with("{ ") && !checked {
                in_group = true;
                continue;
            }
            let allowed = line.starts_with("fail '")
                || line.starts_with("trap '")
                || (line.starts_with("if [ -L ") && line.contains("; then fail '"));
            assert!(checked || allowed, "unchecked line `{line}` in:\n{body}");
        }
        assert!(!in_group, "unclosed group in:\n{body}");
    }
    assert!(!script.contains("set -e"), "{script}");
    // The data's digests are checked before the first step; the staged file is written
    // with its declared owner and mode (one `install`) and fsynced before the rename.
    let order = [
        "| sha256sum -c --status --strict || {",
        "st='/etc/app/.app.conf.tandem-'\"${W##*.}\"0; [ ! -e \"$st\" ] && [ ! -L \"$st\" ] || fail",
        "install -T -m '0640' -o 'app' -g 'app' -- \"$W/b0\" \"$st\" || fail",
        "sync -- \"$st\"",
        "app --check \"$st\"",
        "mv -Tf -- \"$st\" '/etc/app/app.conf'",
    ];
    let at: Vec<usize> = order
        .iter()
        .map(|s| {
            script
                .find(s)
                .unwrap_or_else(|| panic!("no `{s}` in\n{script}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}\n{script}");
    let out = std::process::Command::new("sh")
        .args(["-n", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}\n{script}");
}

#[test]
fn an_undeclared_symlinked_parent_is_refused_and_a_declared_one_is_not() {
    let script_for = |declared: bool| {
        let mut resources = vec![file("/tmp/x/evil", "* * * * * root id\n", false, None)];
        if declared {
            resources.insert(0, link("/tmp/x", "/etc/cron.d"));
        }
        script(resources)
    };
    let refused = script_for(false);
    assert!(refused.contains("if [ -L '/tmp' ]; then fail"), "{refused}");
    assert!(
        refused.contains("if [ -L '/tmp/x' ]; then fail 'refusing to write `/tmp/x/evil`: its parent `/tmp/x` is a symlink the site does not declare'; fi"),
        "{refused}"
    );
    let declared = script_for(true);
    assert!(!declared.contains("if [ -L '/tmp/x' ]"), "{declared}");
    assert!(declared.contains("if [ -L '/tmp' ]"), "{declared}");
}

#[test]
fn validate_output_of_secret_bearing_files_is_withheld() {
    let plain = script(vec![file(
        "/etc/a.conf",
        "x\n",
        false,
        Some("cat {staged}"),
    )]);
    assert!(plain.contains("{ cat \"$st\"\n} >&2 || fail"), "{plain}");
    let secret = script(vec![file("/etc/a.conf", "x\n", true, Some("cat {staged}"))]);
    assert!(
        secret.contains("{ cat \"$st\"\n} >/dev/null 2>&1 || fail 'validation failed: `cat {staged}` (its output is withheld: the file holds secrets)'"),
        "{secret}"
    );
}

#[test]
fn leftovers_of_killed_runs_are_removed_under_the_lock() {
    let script = script(vec![
        file("/etc/nginx/nginx.conf", "x\n", false, None),
        link("/etc/current", "nginx"),
    ]);
    let lock = script.find("flock -w").unwrap();
    let clean = script
        .find("rm -rf -- \"$STATE\"/run.?????? '/etc'/'.current.tandem-'* '/etc/nginx'/'.nginx.conf.tandem-'* ||")
        .unwrap_or_else(|| panic!("{script}"));
    let work = script.find("W=$(mktemp -d").unwrap();
    assert!(lock < clean && clean < work, "{script}");
}

/// The one `sync` after the steps, run by `sh` with `sync` replaced by a logger: each
/// directory named once, only for steps that succeeded, only while it exists, names
/// that need quoting intact; a failing `sync` ends the script in `fatal` with its error.
#[test]
fn directories_are_fsynced_once_for_the_steps_that_succeeded() {
    let root = tempfile::tempdir().unwrap();
    let dir = |name: &str| {
        let d = root.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d.to_str().unwrap().to_string()
    };
    let (spaced, quoted, failed) = (dir("a b"), dir("it's $x"), dir("failed"));
    let removed = root.path().join("removed").to_str().unwrap().to_string();
    let shims = dir("shims");
    let log = root.path().join("log");
    std::fs::write(
        format!("{shims}/sync"),
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{}'\n[ -z \"$FAIL\" ] || {{ echo \"sync: error syncing '$2': Input/output error\" >&2; exit 1; }}\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        format!("{shims}/sync"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let some = file("/etc/x", "x", false, None);
    let step = |dirs: &[&str]| {
        let mut out = StepOut::default();
        for d in dirs {
            out.sync_dir(quote_str(d));
        }
        out
    };
    let planned = vec![
        (0, &some, step(&[&spaced, &quoted])),
        (1, &some, step(&[&failed])),
        (2, &some, step(&[&spaced])),
        (3, &some, step(&[&removed])),
    ];
    let token = Token::fixed("TOK");
    let run = |fail: bool| {
        let _ = std::fs::remove_file(&log);
        let script = format!(
            "{}W={}\ns0=ok; s1=fail; s2=skip; s3=ok\n{}echo after\n",
            preamble(&token),
            quote_str(root.path().to_str().unwrap()),
            dir_syncs(&planned)
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .env("PATH", format!("{shims}:/usr/bin:/bin"))
            .env("FAIL", if fail { "1" } else { "" })
            .output()
            .unwrap();
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        (String::from_utf8_lossy(&out.stdout).into_owned(), logged)
    };
    let (stdout, logged) = run(false);
    assert_eq!(logged, format!("--\n{spaced}\n{quoted}\n"), "{stdout}");
    assert_eq!(stdout, "after\n");
    let (stdout, _) = run(true);
    let sections = crate::fact::protocol::split(stdout.as_bytes(), &token);
    assert_eq!(sections.len(), 1, "{stdout}");
    assert_eq!(sections[0].0, Section::Fatal);
    let reason = String::from_utf8_lossy(sections[0].1);
    assert!(
        reason.contains("cannot fsync the directories of the changed files")
            && reason.contains("Input/output error"),
        "{reason}"
    );
    assert!(!stdout.contains("after"), "the script went on: {stdout}");
}
