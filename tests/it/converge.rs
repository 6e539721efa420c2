//! Integration tests: converge. Probe, plan and apply through the local transport against
//! a temporary directory: only paths below it are touched, never the machine's services,
//! packages or users.

mod binary;
mod fixtures;
mod scripts;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use tandem::apply::{self, ApplyOptions, Outcome, StepStatus};
use tandem::catalog::Catalog;
use tandem::exit::Status;
use tandem::node::{DatacenterName, Node, NodeName, RoleName};
use tandem::path::RemotePath;
use tandem::plan::render::{self, NodeResult};
use tandem::plan::{Action, Diff, NodePlan};
use tandem::resource::*;
use tandem::secret::Fingerprint;
use tandem::transport::local::LocalConnector;
use tandem::transport::Connector;

fn node(name: &str) -> Node {
    Node {
        name: NodeName::new(name).unwrap(),
        datacenter: DatacenterName::new("azure-westus").unwrap(),
        role: RoleName::new("frontend").unwrap(),
        address: "127.0.0.1".into(),
        port: 22,
        user: None,
        facts: Default::default(),
        vars: Default::default(),
    }
}

fn rp(p: &Path) -> RemotePath {
    RemotePath::parse(p.to_str().unwrap()).unwrap()
}

fn res(spec: Spec, name: &str, after: &[&Resource]) -> Resource {
    Resource {
        id: ResourceId::new(spec.kind(), name),
        spec,
        origin: Origin {
            file: "modules/test/module.toml".into(),
            line: 1,
        },
        after: after.iter().map(|r| r.id.clone()).collect(),
        notify: Vec::new(),
    }
}

fn dir(path: &Path, mode: u32) -> Resource {
    res(
        Spec::Directory(DirectorySpec {
            path: rp(path),
            ensure: Presence::Present,
            owner: None,
            group: None,
            mode: Some(Mode(mode)),
        }),
        path.to_str().unwrap(),
        &[],
    )
}

fn file(path: &Path, text: &str, mode: u32, after: &[&Resource]) -> Resource {
    res(
        Spec::File(FileSpec {
            path: rp(path),
            ensure: Presence::Present,
            content: Some(Content {
                bytes: text.as_bytes().to_vec(),
                secrets: Vec::new(),
                keyed_digest: None,
            }),
            owner: None,
            group: None,
            mode: Some(Mode(mode)),
            validate: None,
            backup: true,
        }),
        path.to_str().unwrap(),
        after,
    )
}

fn link(path: &Path, target: &str, after: &[&Resource]) -> Resource {
    res(
        Spec::Symlink(SymlinkSpec {
            path: rp(path),
            ensure: Presence::Present,
            target: target.into(),
        }),
        path.to_str().unwrap(),
        after,
    )
}

fn exec(command: &str, creates: &Path, after: &[&Resource]) -> Resource {
    res(
        Spec::Exec(ExecSpec {
            command: command.into(),
            creates: Some(rp(creates)),
            unless: None,
            onlyif: None,
            refresh_only: false,
            user: None,
            cwd: None,
        }),
        command,
        after,
    )
}

fn options(state: &Path) -> ApplyOptions {
    ApplyOptions {
        state_dir: rp(state),
        lock_wait: std::time::Duration::from_secs(1),
        ..ApplyOptions::default()
    }
}

fn connector() -> Arc<dyn Connector> {
    Arc::new(LocalConnector)
}

async fn plan_one(catalog: &Catalog, opts: &ApplyOptions) -> NodePlan {
    let mut results = apply::plan_nodes(vec![catalog.clone()], connector(), opts).await;
    match results.remove(0) {
        NodeResult::Planned(p) => p,
        other => panic!("plan failed: {other:?}"),
    }
}

fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

struct Site {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    state: std::path::PathBuf,
}

fn site() -> Site {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let state = tmp.path().join("state");
    Site {
        root,
        state,
        _tmp: tmp,
    }
}

#[tokio::test]
async fn first_apply_creates_then_plan_is_empty_then_a_change_is_exactly_that() {
    let s = site();
    let conf = s.root.join("etc");
    let d = dir(&conf, 0o750);
    let f = file(&conf.join("app.conf"), "a=1\nb=2\nc=3\n", 0o640, &[&d]);
    let l = link(&s.root.join("current"), "etc/app.conf", &[&f]);
    let marker = s.root.join("ran");
    let e = exec(
        &format!("echo once >> {}", marker.display()),
        &marker,
        &[&d],
    );
    let mut catalog = Catalog {
        node: node("fe-1"),
        resources: vec![d, f, l, e],
    };
    let opts = options(&s.state);

    let plan = plan_one(&catalog, &opts).await;
    let actions: Vec<Action> = plan.changes.iter().map(|c| c.action).collect();
    assert_eq!(
        actions,
        [Action::Create, Action::Create, Action::Create, Action::Run]
    );

    let reports = apply::apply_nodes(vec![catalog.clone()], connector(), &opts).await;
    assert_eq!(reports[0].outcome, Outcome::Changed, "{:?}", reports[0]);
    assert_eq!(
        reports[0].round_trips, 1,
        "one command: the probe, held, carries the script that applies and verifies"
    );
    assert_eq!(mode_of(&conf), 0o750);
    assert_eq!(mode_of(&conf.join("app.conf")), 0o640);
    assert_eq!(
        std::fs::read_to_string(conf.join("app.conf")).unwrap(),
        "a=1\nb=2\nc=3\n"
    );
    assert_eq!(
        std::fs::read_link(s.root.join("current")).unwrap(),
        Path::new("etc/app.conf")
    );
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "once\n");
    // No staged leftovers next to the target.
    let names: Vec<_> = std::fs::read_dir(&conf)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");

    // Second run: nothing to do, one round trip, exec guarded by `creates`.
    let plan = plan_one(&catalog, &opts).await;
    assert!(plan.is_empty(), "{:?}", plan.changes);
    let reports = apply::apply_nodes(vec![catalog.clone()], connector(), &opts).await;
    assert_eq!(reports[0].outcome, Outcome::Unchanged);
    assert_eq!(reports[0].round_trips, 1);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "once\n");

    // Change one line: the plan shows exactly that diff, apply changes only that.
    let before_link = std::fs::symlink_metadata(s.root.join("current"))
        .unwrap()
        .ino();
    if let Spec::File(f) = &mut catalog.resources[1].spec {
        f.content.as_mut().unwrap().bytes = b"a=1\nb=20\nc=3\n".to_vec();
    }
    let plan = plan_one(&catalog, &opts).await;
    assert_eq!(plan.changes.len(), 1, "{:?}", plan.changes);
    let Some(Diff::Text { unified }) = &plan.changes[0].diff else {
        panic!("{:?}", plan.changes[0]);
    };
    assert!(unified.contains("-b=2\n+b=20\n"), "{unified}");
    let text = render::text(&[NodeResult::Planned(plan)]);
    assert!(text.contains("~ modify file:"), "{text}");
    assert!(
        text.contains("site: 1 nodes: 0 in sync, 1 with changes (1 changes)"),
        "{text}"
    );
    let reports = apply::apply_nodes(vec![catalog.clone()], connector(), &opts).await;
    assert_eq!(reports[0].outcome, Outcome::Changed);
    assert_eq!(reports[0].resources.len(), 1);
    assert_eq!(
        std::fs::read_to_string(conf.join("app.conf")).unwrap(),
        "a=1\nb=20\nc=3\n"
    );
    assert_eq!(
        std::fs::symlink_metadata(s.root.join("current"))
            .unwrap()
            .ino(),
        before_link
    );
    // The replaced content was backed up in the state directory.
    let backup_dir = s.state.join("backup").join(conf.strip_prefix("/").unwrap());
    let backups: Vec<_> = std::fs::read_dir(&backup_dir).unwrap().collect();
    assert_eq!(backups.len(), 1);
    assert_eq!(apply::exit_status(&reports), Status::Ok);
}

/// Decommissioning: a file removed, then its directory (`rmdir`, after the file). The
/// directory fsync that follows the steps names only directories still there: the
/// removed one is not an error.
#[tokio::test]
async fn a_file_and_then_its_directory_removed_converge() {
    let s = site();
    let conf = s.root.join("app");
    let d = dir(&conf, 0o755);
    let f = file(&conf.join("app.conf"), "a=1\n", 0o644, &[&d]);
    let opts = options(&s.state);
    let catalog = Catalog {
        node: node("fe-12"),
        resources: vec![d.clone(), f.clone()],
    };
    let reports = apply::apply_nodes(vec![catalog], connector(), &opts).await;
    assert_eq!(reports[0].outcome, Outcome::Changed, "{:?}", reports[0]);
    let absent = |r: &Resource| {
        let mut r = r.clone();
        match &mut r.spec {
            Spec::File(f) => f.ensure = Presence::Absent,
            Spec::Directory(d) => d.ensure = Presence::Absent,
            _ => unreachable!(),
        }
        r.after.clear();
        r
    };
    let gone_file = absent(&f);
    let mut gone_dir = absent(&d);
    gone_dir.after = vec![gone_file.id.clone()];
    let catalog = Catalog {
        node: node("fe-12"),
        resources: vec![gone_file, gone_dir],
    };
    let reports = apply::apply_nodes(vec![catalog], connector(), &opts).await;
    assert_eq!(reports[0].outcome, Outcome::Changed, "{:?}", reports[0]);
    assert!(!conf.exists());
}

#[tokio::test]
async fn failing_validate_keeps_the_old_file_and_skips_its_dependent() {
    let s = site();
    let target = s.root.join("nginx.conf");
    std::fs::write(&target, "old\n").unwrap();
    let mut f = file(&target, "new but invalid\n", 0o644, &[]);
    if let Spec::File(spec) = &mut f.spec {
        spec.validate = Some(Validate {
            command: "grep -q valid {staged} && ! grep -q invalid {staged}".into(),
            tree: None,
        });
    }
    let dependent = file(&s.root.join("after.conf"), "x\n", 0o644, &[&f]);
    let independent = file(&s.root.join("other.conf"), "y\n", 0o644, &[]);
    let catalog = Catalog {
        node: node("fe-2"),
        resources: vec![f, dependent, independent],
    };
    let opts = options(&s.state);
    let reports = apply::apply_nodes(vec![catalog], connector(), &opts).await;
    let r = &reports[0];
    assert_eq!(r.outcome, Outcome::Failed);
    let statuses: Vec<StepStatus> = r.resources.iter().map(|x| x.status).collect();
    assert_eq!(
        statuses,
        [StepStatus::Failed, StepStatus::Skipped, StepStatus::Applied]
    );
    assert!(
        r.resources[0]
            .error
            .as_deref()
            .unwrap()
            .contains("validation failed"),
        "{:?}",
        r.resources[0]
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "old\n");
    assert!(!s.root.join("after.conf").exists());
    assert_eq!(
        std::fs::read_to_string(s.root.join("other.conf")).unwrap(),
        "y\n"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&s.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("tandem"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(apply::exit_status(&reports), Status::Failed);
}

#[tokio::test]
async fn secret_content_never_shows_in_plan_or_command_line() {
    let s = site();
    let target = s.root.join("db.conf");
    std::fs::write(&target, "user=app\npassword=old-Secret-1\nport=1\n").unwrap();
    let secret = "n3w-Sup3r-Secret";
    let mut f = file(&target, "", 0o600, &[]);
    if let Spec::File(spec) = &mut f.spec {
        spec.content = Some(Content {
            bytes: format!("user=app\npassword={secret}\nport=1\n").into_bytes(),
            secrets: vec![Fingerprint::of(secret.as_bytes())],
            keyed_digest: None,
        });
    }
    let catalog = Catalog {
        node: node("db-1"),
        resources: vec![f],
    };
    let opts = options(&s.state);
    let plan = plan_one(&catalog, &opts).await;
    let Some(Diff::Redacted {
        removed_lines,
        added_lines,
        secrets,
    }) = &plan.changes[0].diff
    else {
        panic!("{:?}", plan.changes[0]);
    };
    assert_eq!(
        (removed_lines.as_slice(), added_lines.as_slice()),
        (&[2][..], &[2][..])
    );
    assert_eq!(secrets[0], Fingerprint::of(secret.as_bytes()));
    let results = [NodeResult::Planned(plan.clone())];
    let text = render::text(&results);
    let json = render::json(&results).to_string();
    for shown in [&text, &json] {
        assert!(!shown.contains(secret), "{shown}");
        assert!(!shown.contains("old-Secret-1"), "{shown}");
    }
    assert!(text.contains("lines -2 +2"), "{text}");

    // The generated scripts carry the secret only on stdin.
    let token = tandem::fact::Token::random();
    let (probe, _) = tandem::plan::probe_script(&catalog, token.clone());
    assert!(!probe.contains(secret));
    let facts = tandem::fact::NodeFacts::default();
    let params = tandem::apply::script::ScriptParams {
        token: &token,
        state_dir: &rp(&s.state),
        lock_wait: std::time::Duration::from_secs(1),
        verify: (String::new(), Vec::new()),
    };
    let (command, stdin) = tandem::apply::script::build(&catalog, &plan, &facts, params);
    assert!(!command.contains(secret));
    assert!(String::from_utf8_lossy(&stdin).contains(secret));

    let reports = apply::apply_nodes(vec![catalog.clone()], connector(), &opts).await;
    assert_eq!(reports[0].outcome, Outcome::Changed, "{:?}", reports[0]);
    assert!(!serde_json::to_string(&reports).unwrap().contains(secret));
    assert_eq!(mode_of(&target), 0o600);
    assert!(plan_one(&catalog, &opts).await.is_empty());
}

#[tokio::test]
async fn a_held_node_lock_fails_the_node_and_names_the_holder() {
    let s = site();
    std::fs::create_dir_all(&s.state).unwrap();
    let f = file(&s.root.join("x"), "x\n", 0o644, &[]);
    let catalog = Catalog {
        node: node("fe-3"),
        resources: vec![f],
    };
    std::fs::write(s.state.join("lock.owner"), "pid 42 since earlier\n").unwrap();
    let mut holder = std::process::Command::new("flock")
        .arg(s.state.join("lock"))
        .args(["sleep", "5"])
        .spawn()
        .unwrap();
    let lock = s.state.join("lock");
    crate::support::wait::wait_until(
        std::time::Duration::from_secs(10),
        "`flock` to take the node lock",
        || {
            !std::process::Command::new("flock")
                .arg("-n")
                .arg(&lock)
                .arg("true")
                .status()
                .unwrap()
                .success()
        },
    )
    .unwrap();
    let reports = apply::apply_nodes(vec![catalog], connector(), &options(&s.state)).await;
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(reports[0].outcome, Outcome::Failed);
    let error = reports[0].error.as_deref().unwrap();
    assert!(error.contains("is held by another apply"), "{error}");
    assert!(error.contains("pid 42"), "{error}");
    assert!(!s.root.join("x").exists());
}

#[tokio::test]
async fn refresh_only_exec_runs_once_when_notified_and_after_its_notifier() {
    let s = site();
    let log = s.root.join("log");
    let mut f = file(&s.root.join("unit.conf"), "v1\n", 0o644, &[]);
    let mut e = res(
        Spec::Exec(ExecSpec {
            command: format!(
                "cat {} >> {}",
                s.root.join("unit.conf").display(),
                log.display()
            ),
            creates: None,
            unless: None,
            onlyif: None,
            refresh_only: true,
            user: None,
            cwd: None,
        }),
        "reload-app",
        &[&f],
    );
    f.notify.push(e.id.clone());
    e.after.push(f.id.clone());
    let mut catalog = Catalog {
        node: node("fe-4"),
        resources: vec![f, e],
    };
    let opts = options(&s.state);
    apply::apply_nodes(vec![catalog.clone()], connector(), &opts).await;
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "v1\n");
    // Not notified: does not run.
    let reports = apply::apply_nodes(vec![catalog.clone()], connector(), &opts).await;
    assert_eq!(reports[0].outcome, Outcome::Unchanged);
    if let Spec::File(f) = &mut catalog.resources[0].spec {
        f.content.as_mut().unwrap().bytes = b"v2\n".to_vec();
    }
    apply::apply_nodes(vec![catalog], connector(), &opts).await;
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "v1\nv2\n");
}

#[tokio::test]
async fn drift_in_mode_and_a_replaced_link_are_repaired() {
    let s = site();
    let target = s.root.join("a.conf");
    let f = file(&target, "same\n", 0o644, &[]);
    let l = link(&s.root.join("l"), "a.conf", &[]);
    let catalog = Catalog {
        node: node("fe-5"),
        resources: vec![f, l],
    };
    let opts = options(&s.state);
    apply::apply_nodes(vec![catalog.clone()], connector(), &opts).await;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_file(s.root.join("l")).unwrap();
    std::os::unix::fs::symlink("elsewhere", s.root.join("l")).unwrap();
    let plan = plan_one(&catalog, &opts).await;
    let text = render::text(&[NodeResult::Planned(plan.clone())]);
    assert!(text.contains("mode 0600 -> 0644"), "{text}");
    assert!(text.contains("target elsewhere -> a.conf"), "{text}");
    assert!(plan.changes[0].diff.is_none(), "content is unchanged");
    let reports = apply::apply_nodes(vec![catalog], connector(), &opts).await;
    assert_eq!(reports[0].outcome, Outcome::Changed, "{:?}", reports[0]);
    assert_eq!(mode_of(&target), 0o644);
    assert_eq!(
        std::fs::read_link(s.root.join("l")).unwrap(),
        Path::new("a.conf")
    );
}
