//! `tandem serve` end to end: the real binary as the daemon, a real git server (`git
//! daemon` on loopback serving a bare repository each test builds), webhooks sent the
//! way GitHub, GitLab and a CI server send them, over a plain TCP client, and the
//! results read back from the run history and the hosts.

mod audit;
mod deploys;
mod receivers;
mod signed;
mod ssh;
mod warm;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tandem::serve::verify;
use tandem::store::Store;

use crate::support::wait::{wait_for, wait_until};

pub const GITHUB_SECRET: &str = "gh-s3cret-For-The-Serve-Tests";
pub const GITLAB_SECRET: &str = "gl-t0ken-For-The-Serve-Tests";
pub const GENERIC_SECRET: &str = "generic-s3cret-For-The-Serve-Tests";

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs git in `dir` with a fixed identity; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Ada",
            "-c",
            "user.email=ada@example.invalid",
        ])
        .args([
            "-c",
            "init.defaultBranch=master",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `git daemon` on 127.0.0.1 serving `site.git`, with a work tree to commit from.
pub struct GitServer {
    child: Child,
    pub base: tempfile::TempDir,
    pub port: u16,
}

impl GitServer {
    /// A bare `site.git` whose master holds `files` (relative path, content).
    pub fn start(files: &[(&str, String)]) -> GitServer {
        let base = tempfile::tempdir().unwrap();
        let bare = base.path().join("site.git");
        let work = base.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        git(
            base.path(),
            &["init", "-q", "--bare", bare.to_str().unwrap()],
        );
        git(&work, &["init", "-q"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        for (rel, text) in files {
            write(&work.join(rel), text);
        }
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-qm", "the site"]);
        git(&work, &["push", "-q", "origin", "master"]);
        let port = free_port();
        // `git daemon` runs `git-daemon` as a child of `git`, so killing what was spawned
        // would leave the daemon running: the daemon's own binary is started instead.
        let exec_path = git(base.path(), &["--exec-path"]);
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
            .arg(format!("--base-path={}", base.path().display()))
            .arg(format!("--port={port}"))
            .arg(base.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start `git daemon`");
        wait_until(Duration::from_secs(20), "git daemon to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .unwrap();
        GitServer { child, base, port }
    }

    pub fn url(&self) -> String {
        format!("git://127.0.0.1:{}/site.git", self.port)
    }

    pub fn work(&self) -> PathBuf {
        self.base.path().join("work")
    }

    /// Writes `rel`, commits on the current branch and pushes it; returns the commit.
    pub fn commit(&self, rel: &str, text: &str, message: &str) -> String {
        write(&self.work().join(rel), text);
        git(&self.work(), &["add", "-A"]);
        git(&self.work(), &["commit", "-qm", message]);
        let branch = git(&self.work(), &["rev-parse", "--abbrev-ref", "HEAD"]);
        git(&self.work(), &["push", "-qf", "origin", &branch]);
        git(&self.work(), &["rev-parse", "HEAD"])
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The files of a one-role site whose module writes `path` with `content` and, when
/// the file changes, runs `sleep {sleep}` (so a run lasts long enough to push during
/// it). One node at a time.
pub fn site_files(path: &str, content: &str, sleep: u32) -> Vec<(&'static str, String)> {
    vec![
        (
            "manifests/site.toml",
            "[site]\nname = \"t\"\n\n[rollout]\nbatch = 1\n\n[datacenters.dc1]\nprimary = true\nprovider = \"static\"\n"
                .into(),
        ),
        ("manifests/roles/web.toml", "modules = [\"web\"]\n".into()),
        ("modules/web/module.toml", module(path, content, sleep)),
    ]
}

pub fn module(path: &str, content: &str, sleep: u32) -> String {
    format!(
        "[[resource]]\ntype = \"file\"\npath = \"{path}\"\ncontent = \"{content}\\n\"\n\n\
         [[resource]]\ntype = \"exec\"\nname = \"settle\"\ncommand = \"sleep {sleep}\"\n\
         refresh_only = true\nsubscribe = [\"file:{path}\"]\n"
    )
}

/// A running `tandem serve`, its stderr in a file; killed on drop if still running.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub site: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts the daemon for the operator site `site` (holding manifests/serve.toml)
    /// with `env` and waits until `/healthz` answers.
    pub fn start(site: &Path, env: &[(&str, String)]) -> Daemon {
        let port = free_port();
        let log = site.join("serve.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("TANDEM_SITE", site)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("TANDEM_GITHUB_SECRET", GITHUB_SECRET)
            .env("TANDEM_GITLAB_SECRET", GITLAB_SECRET)
            .env("TANDEM_GENERIC_SECRET", GENERIC_SECRET)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(site.join("serve.out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("cannot start tandem serve");
        let ready = wait_for(Duration::from_secs(30), "tandem serve to answer", || {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(Err(status));
            }
            let ok = request(port, "GET", "/healthz", &[], b"").is_some_and(|(s, _)| s == 200);
            ok.then_some(Ok(()))
        });
        let daemon = Daemon {
            child,
            port,
            site: site.to_path_buf(),
            log,
        };
        match ready {
            Ok(Ok(())) => daemon,
            Ok(Err(status)) => panic!("tandem serve exited ({status}):\n{}", daemon.log()),
            Err(timed_out) => panic!("{timed_out}\n{}", daemon.log()),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn store(&self) -> Store {
        Store::open(&self.site.join(".tandem/history.sqlite")).unwrap()
    }

    pub fn post(&self, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
        request(self.port, "POST", path, headers, body)
            .unwrap_or_else(|| panic!("no answer from tandem serve\n{}", self.log()))
    }

    /// A signed GitHub push of `branch` by `pusher`, delivery `id`.
    pub fn github_push(&self, id: &str, branch: &str) -> (u16, String) {
        let body = format!(
            "{{\"ref\":\"refs/heads/{branch}\",\"after\":\"0000000000000000000000000000000000000000\",\"pusher\":{{\"name\":\"ada\"}}}}"
        );
        self.post(
            "/hooks/github",
            &github_headers(id, "push", body.as_bytes()),
            body.as_bytes(),
        )
    }

    /// Waits until `count` runs are finished and the daemon is done with them (their
    /// decisions and triggers recorded, which follows the run's own end); returns the
    /// newest.
    pub fn wait_run(&self, count: usize, within: Duration) -> tandem::store::Run {
        let result = wait_for(within, &format!("{count} finished runs"), || {
            let store = self.store();
            let runs = store.runs(100).ok()?;
            let done = runs.len() >= count
                && runs.iter().all(|r| {
                    r.status.as_str() != "running"
                        && store.decision_of_run(r.id).ok().flatten().is_some()
                });
            done.then(|| runs[0].clone())
        });
        result.unwrap_or_else(|t| panic!("{t}\n{}", self.log()))
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = wait_for(within, "tandem serve to exit", || {
            self.child.try_wait().unwrap()
        });
        status
            .unwrap_or_else(|t| panic!("{t}\n{}", self.log()))
            .code()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}

pub fn github_headers(id: &str, event: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("X-GitHub-Delivery", id.to_string()),
        ("X-GitHub-Event", event.to_string()),
        (
            "X-Hub-Signature-256",
            verify::github_signature(GITHUB_SECRET.as_bytes(), body),
        ),
        ("Content-Type", "application/json".into()),
    ]
}

/// One HTTP/1.1 request over a fresh connection; `None` when nothing answers.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok()?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    // A refused body is not read to its end: the answer may come before it is sent.
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// How long `f` took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// Every byte the daemon wrote to its log and its history files, for secret checks.
pub fn written_bytes(daemon: &Daemon) -> Vec<u8> {
    let mut all = std::fs::read(&daemon.log).unwrap_or_default();
    all.extend(std::fs::read(daemon.site.join("serve.out")).unwrap_or_default());
    for entry in std::fs::read_dir(daemon.site.join(".tandem")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            all.extend(std::fs::read(&path).unwrap_or_default());
        }
    }
    all
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
