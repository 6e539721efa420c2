//! Apply script behaviour that needs more than one file: tree validation, framing of
//! stdin, and systemd daemon-reload ordering.

use std::path::Path;

use tandem::apply::{self, Outcome};
use tandem::catalog::Catalog;
use tandem::path::RemotePath;
use tandem::plan::Action;
use tandem::resource::*;

use super::{connector, file, node, options, plan_one, res, rp, site};

fn in_tree(mut r: Resource, tree: &Path, command: &str) -> Resource {
    if let Spec::File(spec) = &mut r.spec {
        spec.validate = Some(Validate {
            command: command.into(),
            tree: Some(rp(tree)),
        });
    }
    r
}

#[tokio::test]
async fn a_tree_is_validated_as_a_whole() {
    let s = site();
    let tree = s.root.join("nginx");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("main.conf"), "want=1\n").unwrap();
    std::fs::write(tree.join("inc.conf"), "1\n").unwrap();
    // Valid when inc.conf, next to the staged main.conf, holds what main.conf wants.
    let check =
        "[ \"$(cat \"$(dirname {staged})/inc.conf\")\" = \"$(sed -n 's/^want=//p' {staged})\" ]";
    let catalog = |want: &str, inc: &str| Catalog {
        node: node("fe-6"),
        resources: vec![
            in_tree(
                file(
                    &tree.join("main.conf"),
                    &format!("want={want}\n"),
                    0o644,
                    &[],
                ),
                &tree,
                check,
            ),
            in_tree(
                file(&tree.join("inc.conf"), &format!("{inc}\n"), 0o644, &[]),
                &tree,
                "true",
            ),
        ],
    };
    let opts = options(&s.state);
    // Both change together: valid only as a whole, and both land.
    let reports = apply::apply_nodes(vec![catalog("2", "2")], connector(), &opts).await;
    assert_eq!(reports[0].outcome, Outcome::Changed, "{:?}", reports[0]);
    assert_eq!(
        std::fs::read_to_string(tree.join("main.conf")).unwrap(),
        "want=2\n"
    );
    assert_eq!(
        std::fs::read_to_string(tree.join("inc.conf")).unwrap(),
        "2\n"
    );
    // main.conf alone would break the tree: neither file changes.
    let reports = apply::apply_nodes(vec![catalog("3", "2")], connector(), &opts).await;
    assert_eq!(reports[0].outcome, Outcome::Failed);
    assert!(reports[0].resources[0]
        .error
        .as_deref()
        .unwrap()
        .contains("validation of tree"));
    assert_eq!(
        std::fs::read_to_string(tree.join("main.conf")).unwrap(),
        "want=2\n"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&s.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("tandem"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Runs the apply script of `catalog` (as planned now, with no verifying probe) on this
/// machine, its stdin first passed through `feed`; its token and what it printed.
async fn run_script(
    catalog: &Catalog,
    state: &Path,
    feed: impl FnOnce(Vec<u8>) -> Vec<u8>,
) -> (tandem::fact::Token, String) {
    use tandem::transport::{local::LocalSession, Session};
    let plan = plan_one(catalog, &options(state)).await;
    let token = tandem::fact::Token::random();
    let params = tandem::apply::script::ScriptParams {
        token: &token,
        state_dir: &rp(state),
        lock_wait: std::time::Duration::from_secs(1),
        verify: (String::new(), Vec::new()),
    };
    let facts = tandem::fact::NodeFacts::default();
    let (command, stdin) = tandem::apply::script::build(catalog, &plan, &facts, params);
    let mut session = LocalSession::new(catalog.node.name.clone());
    let out = session
        .exec(&command, &feed(stdin), std::time::Duration::from_secs(10))
        .await
        .unwrap();
    (token, String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn cut_short_stdin_changes_nothing() {
    let s = site();
    let target = s.root.join("a.conf");
    std::fs::write(&target, "old\n").unwrap();
    let catalog = Catalog {
        node: node("fe-7"),
        resources: vec![file(&target, "a much longer new content\n", 0o644, &[])],
    };
    let (token, stdout) = run_script(&catalog, &s.state, |stdin| stdin[..10].to_vec()).await;
    assert!(
        stdout.contains(&format!(
            "{} {}",
            token.as_str(),
            tandem::fact::Section::Frame
        )),
        "{stdout}"
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "old\n");
}

#[tokio::test]
async fn altered_data_is_refused_before_any_step() {
    let s = site();
    let (first, second) = (s.root.join("a.conf"), s.root.join("b.conf"));
    std::fs::write(&first, "old a\n").unwrap();
    std::fs::write(&second, "old b\n").unwrap();
    let catalog = Catalog {
        node: node("fe-8"),
        resources: vec![
            file(&first, "new a\n", 0o644, &[]),
            file(&second, "new b\n", 0o644, &[]),
        ],
    };
    // The second file's data, same length, one byte changed: the framing holds, the
    // content does not. The first file, whose data is intact, must not change either.
    let (token, stdout) = run_script(&catalog, &s.state, |mut stdin| {
        let at = stdin
            .windows(6)
            .position(|w| w == b"new b\n")
            .expect("the second file's data on stdin");
        stdin[at] = b'N';
        stdin
    })
    .await;
    assert!(
        stdout.contains(&format!(
            "{} {}",
            token.as_str(),
            tandem::fact::Section::Fatal
        )) && stdout.contains("of the data for the steps failed: it arrived altered"),
        "{stdout}"
    );
    assert_eq!(std::fs::read_to_string(&first).unwrap(), "old a\n");
    assert_eq!(std::fs::read_to_string(&second).unwrap(), "old b\n");
}

#[tokio::test]
async fn a_changed_unit_file_reloads_systemd_before_its_service() {
    let s = site();
    let unit = RemotePath::parse("/etc/systemd/system/app.service").unwrap();
    let mut f = file(Path::new(unit.as_str()), "[Service]\n", 0o644, &[]);
    let svc = res(
        Spec::Service(ServiceSpec {
            name: "app".into(),
            running: Some(true),
            enabled: None,
            reload: false,
            commands: None,
        }),
        "app",
        &[&f],
    );
    f.notify.push(svc.id.clone());
    let catalog = Catalog {
        node: node("fe-8"),
        resources: vec![f, svc],
    };
    // Recorded facts of a systemd node where the unit differs and the service runs.
    let token = tandem::fact::Token::fixed("TOK");
    let facts = tandem::fact::NodeFacts::parse(
        b"\nTOK os\nsystemd=1\npkg=apt\n\nTOK r1\nactive=active\nenabled=enabled\n\nTOK end\n",
        &token,
    )
    .unwrap();
    let plan = tandem::plan::plan_node(&catalog, &facts, &Default::default()).unwrap();
    let actions: Vec<Action> = plan.changes.iter().map(|c| c.action).collect();
    assert_eq!(actions, [Action::Create, Action::Reload]);
    let params = tandem::apply::script::ScriptParams {
        token: &token,
        state_dir: &rp(&s.state),
        lock_wait: std::time::Duration::from_secs(1),
        verify: (String::new(), Vec::new()),
    };
    let (command, _) = tandem::apply::script::build(&catalog, &plan, &facts, params);
    let set = command
        .find("dr=1;")
        .expect("unit write marks a daemon-reload");
    let reload = command.find("systemctl daemon-reload").unwrap();
    let restart = command.find("systemctl restart -- 'app'").unwrap();
    assert!(set < reload && reload < restart, "{command}");
    assert!(
        command.contains("if [ \"$s0\" = ok ]"),
        "the restart waits for the unit"
    );
}

#[tokio::test]
async fn a_timed_out_apply_fails_the_node_and_the_next_run_recovers() {
    let s = site();
    let target = s.root.join("a.conf");
    std::fs::write(&target, "old\n").unwrap();
    // A stale staged file, as a run killed mid-write leaves it.
    std::fs::write(s.root.join(".a.conf.tandem-AbC123"), "half").unwrap();
    let f = file(&target, "new\n", 0o644, &[]);
    let slow = res(
        Spec::Exec(ExecSpec {
            command: "sleep 30".into(),
            creates: None,
            unless: Some(format!("test -e {}", s.root.join("done").display())),
            onlyif: None,
            refresh_only: false,
            user: None,
            cwd: None,
        }),
        "slow",
        &[&f],
    );
    let catalog = Catalog {
        node: node("fe-9"),
        resources: vec![f, slow],
    };
    let mut opts = options(&s.state);
    opts.command_timeout = std::time::Duration::from_secs(2);
    let started = std::time::Instant::now();
    let reports = apply::apply_nodes(vec![catalog.clone()], connector(), &opts).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(reports[0].outcome, Outcome::Failed);
    assert!(
        reports[0].error.as_deref().unwrap().contains("timed out"),
        "{:?}",
        reports[0]
    );
    // The file step ran before the exec, atomically; the stale staged file is gone.
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "new\n");
    assert!(!s.root.join(".a.conf.tandem-AbC123").exists());
    // The killed run released the node lock: the next run gets it at once.
    std::fs::write(s.root.join("done"), "").unwrap();
    let reports = apply::apply_nodes(vec![catalog], connector(), &opts).await;
    assert_eq!(reports[0].outcome, Outcome::Unchanged, "{:?}", reports[0]);
}

#[tokio::test]
async fn a_resource_that_does_not_stick_fails_the_node() {
    let s = site();
    let target = s.root.join("a.conf");
    let f = file(&target, "wanted\n", 0o644, &[]);
    // Something else on the node rewrites the file right after tandem wrote it.
    let meddler = res(
        Spec::Exec(ExecSpec {
            command: format!("echo other > {}", target.display()),
            creates: None,
            unless: None,
            onlyif: None,
            refresh_only: false,
            user: None,
            cwd: None,
        }),
        "meddler",
        &[&f],
    );
    let catalog = Catalog {
        node: node("fe-10"),
        resources: vec![f, meddler],
    };
    let reports = apply::apply_nodes(vec![catalog], connector(), &options(&s.state)).await;
    let r = &reports[0];
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(r.unsynced.len(), 1);
    assert!(
        r.error
            .as_deref()
            .unwrap()
            .contains("not in sync after apply"),
        "{r:?}"
    );
}

#[tokio::test]
async fn every_resource_type_generates_a_script_sh_accepts() {
    let s = site();
    let p = |name: &str| rp(&s.root.join(name));
    let specs = vec![
        Spec::Package(PackageSpec {
            name: "ngin'x; rm -rf /".into(),
            state: PackageState::Version("1.2$(id)".into()),
        }),
        Spec::Service(ServiceSpec {
            name: "app".into(),
            running: Some(true),
            enabled: Some(true),
            reload: true,
            commands: None,
        }),
        Spec::User(UserSpec {
            name: "svc".into(),
            ensure: Presence::Present,
            uid: Some(990),
            group: Some("svc".into()),
            groups: vec!["adm".into(), "a b".into()],
            home: Some(p("home")),
            shell: Some("/bin/sh".into()),
            system: true,
        }),
        Spec::Group(GroupSpec {
            name: "svc".into(),
            ensure: Presence::Present,
            gid: Some(990),
            system: true,
        }),
        Spec::Exec(ExecSpec {
            command: "echo hi".into(),
            creates: None,
            unless: Some("false".into()),
            onlyif: Some("true".into()),
            refresh_only: false,
            user: Some("nobody".into()),
            cwd: Some(p("")),
        }),
        Spec::Directory(DirectorySpec {
            path: p("d"),
            ensure: Presence::Absent,
            owner: Some("root".into()),
            group: None,
            mode: None,
        }),
        Spec::Symlink(SymlinkSpec {
            path: p("l"),
            ensure: Presence::Present,
            target: "it's".into(),
        }),
    ];
    let resources: Vec<Resource> = specs
        .into_iter()
        .enumerate()
        .map(|(i, spec)| res(spec, &format!("r{i}"), &[]))
        .collect();
    let catalog = Catalog {
        node: node("fe-11"),
        resources,
    };
    let token = tandem::fact::Token::fixed("TOK");
    // A node with systemd and apt where none of these exist yet.
    let facts = tandem::fact::NodeFacts::parse(
        b"\nTOK os\nsystemd=1\npkg=apt\n\nTOK r1\nactive=inactive\nenabled=disabled\n\nTOK end\n",
        &token,
    )
    .unwrap();
    let mut plan = tandem::plan::plan_node(&catalog, &facts, &Default::default()).unwrap();
    // Make the directory's removal part of the script as well.
    plan.changes.push(tandem::plan::Change::new(
        &catalog.resources[5].id,
        Action::Remove,
    ));
    assert!(plan.changes.len() >= 6, "{:?}", plan.changes);
    let (probe, _) = tandem::plan::probe_script(&catalog, token.clone());
    let params = tandem::apply::script::ScriptParams {
        token: &token,
        state_dir: &rp(&s.state),
        lock_wait: std::time::Duration::from_secs(1),
        verify: (probe.clone(), Vec::new()),
    };
    let (command, _) = tandem::apply::script::build(&catalog, &plan, &facts, params);
    for script in [&probe, &command] {
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        command.contains(
            "-o Dpkg::Options::=--force-confold -- 'ngin'\\''x; rm -rf /=1.2$(id)' >/dev/null || fail"
        ),
        "{command}"
    );
    assert!(
        command.contains("useradd -u '990' -g 'svc' -d"),
        "{command}"
    );
    assert!(command.contains("-G 'adm,a b' -r -m -- 'svc'"), "{command}");
    assert!(command.contains("systemctl enable -- 'app'"));
    assert!(command.contains("ln -s -- 'it'\\''s'"));
}
