//! The run pipeline as the daemon and the CLI both drive it (`tandem::run`), on a site
//! that is a real git repository, with the local transport on files below a temporary
//! directory: a plan records the commit it compiled, and an uncommitted edit is
//! recorded as a dirty tree with its own site digest, never credited to the commit.
//! Also what a terminal user meets first: `tandem catalog NODE | head -1` ends quietly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use tandem::exit::Status;
use tandem::run::{self, PlanRequest, Settings, TransportKind, Workspace};
use tandem::store::Store;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A one-node site whose file resource lives below `root/node`.
fn site(root: &Path, content: &str) {
    let write = |rel: &str, text: String| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "manifests/site.toml",
        "[site]\nname = \"t\"\n\n[datacenters.dc1]\nprimary = true\nprovider = \"static\"\n".into(),
    );
    write("manifests/roles/web.toml", "modules = [\"web\"]\n".into());
    write(
        "manifests/nodes.toml",
        "[[node]]\nname = \"w1\"\ndatacenter = \"dc1\"\nrole = \"web\"\naddress = \"127.0.0.1\"\n"
            .into(),
    );
    write(
        "modules/web/module.toml",
        format!(
            "[[resource]]\ntype = \"file\"\npath = \"{}/node/web.conf\"\ncontent = \"{content}\"\n",
            root.display()
        ),
    );
}

fn settings(root: &Path) -> Settings {
    let mut settings = Settings::new(root);
    settings.connection.transport = TransportKind::Local;
    settings.command = "tandem plan".into();
    settings
}

async fn plan(root: &Path) -> (Status, tandem::store::Run) {
    let ws = Workspace::open(settings(root)).unwrap();
    let planned = run::plan(
        &ws,
        PlanRequest {
            on: None,
            out: None,
            parallel: 4,
            progress: Default::default(),
        },
    )
    .await
    .unwrap();
    let store = Store::open(&ws.settings.history_path()).unwrap();
    let run = store.run(planned.run).unwrap().run;
    (planned.status, run)
}

#[tokio::test]
async fn a_run_records_its_commit_and_an_uncommitted_edit_as_dirty() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    site(root, "port = 80");
    std::fs::write(root.join(".gitignore"), ".tandem/\nnode/\n").unwrap();
    git(root, &["init", "-q"]);
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", "site"]);
    let head = git(root, &["rev-parse", "HEAD"]);

    let (status, clean) = plan(root).await;
    assert_eq!(status, Status::Pending, "the file is not there yet");
    assert_eq!(clean.commit.as_deref(), Some(head.as_str()));
    assert!(!clean.dirty, "{clean:?}");
    assert!(clean.site_digest.is_some());

    site(root, "port = 8080");
    let (_, dirty) = plan(root).await;
    assert_eq!(dirty.commit.as_deref(), Some(head.as_str()));
    assert!(
        dirty.dirty,
        "an uncommitted edit must be recorded: {dirty:?}"
    );
    assert_ne!(dirty.site_digest, clean.site_digest);

    // The CLI says so in one line and `runs show` tells the truth.
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["--site", root.to_str().unwrap(), "plan"])
        .env("TANDEM_TRANSPORT", "local")
        .env_remove("TANDEM_INVENTORY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("uncommitted changes").count(), 1, "{stderr}");
    let show = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["--site", root.to_str().unwrap(), "runs", "show", "3"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains(&format!("{head} with uncommitted changes")),
        "{text}"
    );
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    // More than a pipe holds (64 KiB), so the write after the reader left must fail.
    site(dir.path(), &"x".repeat(300_000));
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["--site", dir.path().to_str().unwrap(), "catalog", "w1"])
        .env_remove("TANDEM_INVENTORY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("# node `w1`"), "{first}");
    // `head -1` exits: the pipe closes with output still to come.
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
