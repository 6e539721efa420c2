//! Fixture-driven planning tests: each folder under `tests/fixtures/probe/` is a case
//! with `case.toml` (one resource, in a small mirror of the catalog's shape, and the
//! expected change) and `probe.out` (the probe's recorded output, made with the token
//! `TOKEN`). One generic runner plans every case from its recording: no I/O.
//!
//! Recordings are real: `record_fixtures` (ignored; run it with `--ignored` to refresh)
//! runs each case's `setup.sh` in `/tmp/tandem-fixture`, then the real probe script
//! through the local transport, and saves what it printed.
//!
//! Each case also holds the commands: `probe.sh`, the probe script generated for the
//! resource, and `step.sh`, the shell of the step its change generates (empty when in
//! sync), with a comment line per directory fsynced after the last step. Both are
//! compared byte for byte; a reviewed change to the generated shell is written back
//! with `TANDEM_BLESS=1`, and the diff then shows in review.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tandem::catalog::Catalog;
use tandem::fact::{NodeFacts, Token};
use tandem::path::RemotePath;
use tandem::plan::render::{self, NodeResult};
use tandem::resource::*;
use tandem::secret::{Fingerprint, SecretStore};

const ROOT: &str = "/tmp/tandem-fixture";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    resource: Mirror,
    expect: Expect,
}

/// The resource fields fixtures use; `type` picks the spec.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct Mirror {
    r#type: String,
    path: Option<String>,
    name: Option<String>,
    absent: bool,
    content: Option<String>,
    secret: Option<String>,
    mode: Option<String>,
    owner: Option<String>,
    group: Option<String>,
    target: Option<String>,
    version: Option<String>,
    running: Option<bool>,
    status: Option<String>,
    uid: Option<u32>,
    shell: Option<String>,
    command: Option<String>,
    creates: Option<String>,
    unless: Option<String>,
    onlyif: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// `none` when in sync.
    action: String,
    /// Substrings of the rendered plan text.
    #[serde(default)]
    shows: Vec<String>,
    /// Substrings the rendered text and JSON must not contain.
    #[serde(default)]
    hides: Vec<String>,
    /// What killed applies left that the probe lists, sorted.
    #[serde(default)]
    leftovers: Vec<String>,
}

fn path(m: &Mirror) -> RemotePath {
    RemotePath::parse(m.path.as_deref().expect("fixture needs `path`")).unwrap()
}

fn spec(m: &Mirror) -> (Spec, String) {
    let ensure = if m.absent {
        Presence::Absent
    } else {
        Presence::Present
    };
    let mode = m.mode.as_deref().map(|s| s.parse().unwrap());
    let name = || m.name.clone().expect("fixture needs `name`");
    let spec = match m.r#type.as_str() {
        "file" => Spec::File(FileSpec {
            path: path(m),
            ensure,
            content: m.content.as_ref().map(|c| Content {
                bytes: c.as_bytes().to_vec(),
                secrets: m
                    .secret
                    .iter()
                    .map(|s| Fingerprint::of(s.as_bytes()))
                    .collect(),
                keyed_digest: None,
            }),
            owner: m.owner.clone(),
            group: m.group.clone(),
            mode,
            validate: None,
            backup: false,
        }),
        "directory" => Spec::Directory(DirectorySpec {
            path: path(m),
            ensure,
            owner: m.owner.clone(),
            group: m.group.clone(),
            mode,
        }),
        "symlink" => Spec::Symlink(SymlinkSpec {
            path: path(m),
            ensure,
            target: m.target.clone().unwrap_or_default(),
        }),
        "package" => Spec::Package(PackageSpec {
            name: name(),
            state: match (&m.version, m.absent) {
                (_, true) => PackageState::Absent,
                (Some(v), _) => PackageState::Version(v.clone()),
                (None, _) => PackageState::Present,
            },
        }),
        "service" => Spec::Service(ServiceSpec {
            name: name(),
            running: m.running,
            enabled: None,
            reload: true,
            commands: m.status.as_ref().map(|status| ServiceCommands {
                start: "true".into(),
                stop: "true".into(),
                reload: None,
                status: status.clone(),
            }),
        }),
        "user" => Spec::User(UserSpec {
            name: name(),
            ensure,
            uid: m.uid,
            group: None,
            groups: Vec::new(),
            home: None,
            shell: m.shell.clone(),
            system: false,
        }),
        "group" => Spec::Group(GroupSpec {
            name: name(),
            ensure,
            gid: m.uid,
            system: false,
        }),
        "exec" => Spec::Exec(ExecSpec {
            command: m.command.clone().unwrap_or_default(),
            creates: m.creates.as_deref().map(|p| RemotePath::parse(p).unwrap()),
            unless: m.unless.clone(),
            onlyif: m.onlyif.clone(),
            refresh_only: false,
            user: None,
            cwd: None,
        }),
        other => panic!("unknown fixture type `{other}`"),
    };
    let id = m
        .path
        .clone()
        .or_else(|| m.name.clone())
        .or_else(|| m.command.clone());
    (spec, id.unwrap_or_default())
}

fn catalog(case: &Case) -> Catalog {
    let (spec, name) = spec(&case.resource);
    Catalog {
        node: tandem::node::Node {
            name: tandem::node::NodeName::new("fixture").unwrap(),
            datacenter: tandem::node::DatacenterName::new("azure-westus").unwrap(),
            role: tandem::node::RoleName::new("frontend").unwrap(),
            address: "127.0.0.1".into(),
            port: 22,
            user: None,
            facts: Default::default(),
            vars: Default::default(),
        },
        resources: vec![Resource {
            id: ResourceId::new(spec.kind(), name),
            spec,
            origin: Origin {
                file: "fixture".into(),
                line: 1,
            },
            after: Vec::new(),
            notify: Vec::new(),
        }],
    }
}

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/probe");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.toml").exists())
        .collect();
    cases.sort();
    cases
}

fn load(dir: &Path) -> Case {
    toml::from_str(&std::fs::read_to_string(dir.join("case.toml")).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

#[test]
fn every_fixture_plans_as_expected() {
    let cases = cases();
    assert!(cases.len() >= 10, "fixtures missing: {cases:?}");
    for dir in cases {
        let case = load(&dir);
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let recorded = std::fs::read(dir.join("probe.out"))
            .unwrap_or_else(|e| panic!("{name}: no probe.out ({e}); run record_fixtures"));
        let facts = NodeFacts::parse(&recorded, &Token::fixed("TOKEN"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let catalog = catalog(&case);
        let plan = tandem::plan::plan_node(&catalog, &facts, &SecretStore::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let action = plan.changes.first().map_or("none", |c| c.action.as_str());
        assert_eq!(action, case.expect.action, "{name}: {:?}", plan.changes);
        let mut leftovers = facts.leftovers.clone();
        leftovers.sort();
        assert_eq!(leftovers, case.expect.leftovers, "{name}");
        let (probe, _) = tandem::plan::probe_script(&catalog, Token::fixed("TOKEN"));
        expect_file(&dir, "probe.sh", &probe);
        let step = match plan.changes.first() {
            Some(change) => {
                let mut out = StepOut::default();
                operations(&catalog.resources[0].spec).apply(change, &facts, &mut out);
                // The directories fsynced after the last step (`StepOut::sync_dir`).
                let dirs: String = out
                    .synced_dirs
                    .iter()
                    .map(|d| format!("# then fsynced: {d}\n"))
                    .collect();
                out.shell + &dirs
            }
            None => String::new(),
        };
        expect_file(&dir, "step.sh", &step);
        let results = [NodeResult::Planned(plan)];
        let text = render::text(&results);
        let json = render::json(&results).to_string();
        for s in &case.expect.shows {
            assert!(text.contains(s.as_str()), "{name}: `{s}` not in:\n{text}");
        }
        for s in &case.expect.hides {
            assert!(
                !text.contains(s.as_str()) && !json.contains(s.as_str()),
                "{name}: `{s}` shown"
            );
        }
    }
}

/// Compares `generated` with the case's file `name` (rewrites it with `TANDEM_BLESS=1`).
fn expect_file(dir: &Path, name: &str, generated: &str) {
    let path = dir.join(name);
    if std::env::var_os("TANDEM_BLESS").is_some() {
        std::fs::write(&path, generated).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; write it with TANDEM_BLESS=1 and review it",
            path.display()
        )
    });
    assert!(
        want == generated,
        "{}: the generated commands differ\n--- want\n{want}--- generated\n{generated}---",
        path.display()
    );
}

#[tokio::test]
#[ignore = "rewrites tests/fixtures/probe/*/probe.out from real probes under /tmp/tandem-fixture"]
async fn record_fixtures() {
    use tandem::transport::{local::LocalSession, Session};
    for dir in cases() {
        let case = load(&dir);
        let _ = std::fs::remove_dir_all(ROOT);
        std::fs::create_dir_all(ROOT).unwrap();
        let setup = dir.join("setup.sh");
        if setup.exists() {
            let ok = std::process::Command::new("sh")
                .arg(&setup)
                .current_dir(ROOT)
                .status()
                .unwrap();
            assert!(ok.success(), "{}: setup failed", dir.display());
        }
        let (script, stdin) = tandem::plan::probe_script(&catalog(&case), Token::fixed("TOKEN"));
        let mut session = LocalSession::new(tandem::node::NodeName::new("fixture").unwrap());
        let out = session
            .exec(&script, &stdin, std::time::Duration::from_secs(10))
            .await
            .unwrap();
        assert!(out.success(), "{}: {:?}", dir.display(), out);
        std::fs::write(dir.join("probe.out"), out.stdout).unwrap();
    }
    let _ = std::fs::remove_dir_all(ROOT);
}
