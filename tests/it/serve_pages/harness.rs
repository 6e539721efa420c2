//! The parts the status page tests share: a two-datacenter site as a real git
//! repository, runs through `tandem::run` and the real binary with the local transport,
//! the router served on loopback and on a Unix socket, a minimal HTTP client, and
//! headless Chromium in a network namespace of its own.

use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tandem::apply::{Interrupt, Progress};
use tandem::lock::Wait;
use tandem::run::{self, ApplyRequest, PlanRequest, Settings, TransportKind, Workspace};
use tandem::serve::observe::RunFinished;
use tandem::serve::pages::{router, PagesState, Readiness};
use tandem::store::{RunKind, RunStatus};

pub const SCRIPT: &str = "<script>document.title='pwned';alert(1)</script>";

pub fn git(dir: &Path, args: &[&str]) -> String {
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

pub fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Two nodes in two datacenters; `stage` 1: one file each; 2: plus a directory and a
/// file whose path holds a `<script>` element; 3: plus a file from a template that
/// carries the secret `db_password`.
pub fn site(root: &Path, stage: u8) {
    write(
        root,
        "manifests/site.toml",
        "[site]\nname = \"t\"\n\n[datacenters.dc1]\nprimary = true\nprovider = \"static\"\n\n\
         [datacenters.dc2]\nprovider = \"static\"\n",
    );
    write(root, "manifests/roles/web.toml", "modules = [\"web\"]\n");
    write(
        root,
        "manifests/nodes.toml",
        "[[node]]\nname = \"w1\"\ndatacenter = \"dc1\"\nrole = \"web\"\naddress = \"127.0.0.1\"\n\n\
         [[node]]\nname = \"w2\"\ndatacenter = \"dc2\"\nrole = \"web\"\naddress = \"127.0.0.1\"\n",
    );
    let base = format!("{}/node/{{{{node.name}}}}", root.display());
    let mut module = format!(
        "[[resource]]\ntype = \"directory\"\npath = \"{base}\"\n\n\
         [[resource]]\ntype = \"file\"\npath = \"{base}/web.conf\"\ncontent = \"port = 80\\n\"\n"
    );
    if stage >= 2 {
        let (dir, _) = SCRIPT.split_once('/').unwrap();
        module.push_str(&format!(
            "\n[[resource]]\ntype = \"directory\"\npath = \"{base}/{dir}\"\n\n\
             [[resource]]\ntype = \"file\"\npath = \"{base}/{SCRIPT}\"\ncontent = \"inert\\n\"\n"
        ));
    }
    if stage >= 3 {
        module.push_str(&format!(
            "\n[[resource]]\ntype = \"file\"\npath = \"{base}/db.conf\"\ntemplate = \"db.conf.hbs\"\nmode = \"0600\"\n"
        ));
        write(
            root,
            "modules/web/templates/db.conf.hbs",
            "password = {{secret \"db_password\"}}\n",
        );
    }
    write(root, "modules/web/module.toml", &module);
}

pub fn commit(root: &Path, message: &str) -> String {
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", message]);
    git(root, &["rev-parse", "HEAD"])
}

pub fn settings(root: &Path, command: &str) -> Settings {
    let mut settings = Settings::new(root);
    settings.connection.transport = TransportKind::Local;
    settings.command = command.into();
    settings.started_by = Some("webhook".into());
    settings
}

pub async fn apply_lib(root: &Path) {
    let applied = run::apply(
        settings(root, "tandem apply"),
        ApplyRequest {
            on: None,
            saved: None,
            parallel: 4,
            lock_wait: Wait::FailFast,
            interrupt: Interrupt::with_grace(Duration::from_secs(5)),
            progress: Progress::default(),
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(applied.status, tandem::exit::Status::Ok);
}

pub async fn plan_lib(root: &Path) {
    let ws = Workspace::open(settings(root, "tandem plan")).unwrap();
    run::plan(
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
}

/// `tandem COMMAND` through the real binary, the secret from the environment.
pub fn tandem_bin(root: &Path, command: &str, secret: &str, code: i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["--site", root.to_str().unwrap(), command])
        .env("TANDEM_TRANSPORT", "local")
        .env("TANDEM_SECRET_DB_PASSWORD", secret)
        .env_remove("TANDEM_INVENTORY")
        .env_remove("TANDEM_AGE_IDENTITY")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(code), "{text}");
    assert!(!text.contains(secret), "{text}");
}

/// The router served on a loopback port and on a Unix socket, from its own thread.
pub struct Server {
    pub addr: SocketAddr,
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn serve(state: PagesState) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("pages.sock");
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let addr = tcp.local_addr().unwrap();
    let unix = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    unix.set_nonblocking(true).unwrap();
    let app = router(state);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let tcp = tokio::net::TcpListener::from_std(tcp).unwrap();
            let unix = tokio::net::UnixListener::from_std(unix).unwrap();
            let over_unix = tokio::spawn(axum::serve(unix, app.clone()).into_future());
            let _ = axum::serve(tcp, app).await;
            over_unix.abort();
        });
    });
    Server {
        addr,
        socket,
        _dir: dir,
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// One HTTP/1.1 GET over a fresh connection, read to its end.
pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let (status_line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    Reply {
        status: status_line.split(' ').nth(1).unwrap().parse().unwrap(),
        headers: headers.replace("\r\n", "\n"),
        body: body.to_string(),
    }
}

pub fn json(reply: &Reply) -> serde_json::Value {
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.body))
}

pub fn ready() -> Readiness {
    Arc::new(|| Ok(()))
}

/// The exposition's samples: `name{labels sorted}` to value.
pub fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let key = match series.split_once('{') {
            Some((name, labels)) => {
                let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                labels.sort_unstable();
                format!("{name}{{{}}}", labels.join(","))
            }
            None => series.to_string(),
        };
        out.insert(key, value.parse().unwrap());
    }
    out
}

/// What the run worker would report for a recorded run.
pub fn finished(detail: &tandem::store::RunDetail) -> RunFinished {
    let mut by_outcome = BTreeMap::<String, u64>::new();
    for node in &detail.nodes {
        *by_outcome.entry(node.outcome.to_string()).or_default() += 1;
    }
    let converged = detail.run.kind == RunKind::Apply && detail.run.status == RunStatus::Succeeded;
    let mut deployed: Vec<(String, String)> = Vec::new();
    if converged {
        for node in &detail.nodes {
            let dc = node.datacenter.as_ref().unwrap().to_string();
            let pair = (dc, detail.run.commit.clone().unwrap());
            if !deployed.contains(&pair) {
                deployed.push(pair);
            }
        }
    }
    RunFinished {
        kind: detail.run.kind.as_str(),
        result: detail.run.status.to_string(),
        seconds: detail.run.duration_ms.unwrap() as f64 / 1000.0,
        nodes_by_outcome: by_outcome.into_iter().collect(),
        deployed,
    }
}

/// Bytes forwarded from a loopback port inside Chromium's network namespace to the
/// router's Unix socket; then the command (`{port}` replaced) runs and its stdout is
/// passed on. Bounded: the command gets 120 s.
pub const FORWARD: &str = r#"
import socket, subprocess, sys, threading
sock_path, cmd = sys.argv[1], sys.argv[2:]
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(16)
port = srv.getsockname()[1]
def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass
def accept():
    while True:
        c, _ = srv.accept()
        u = socket.socket(socket.AF_UNIX)
        u.connect(sock_path)
        threading.Thread(target=pipe, args=(c, u), daemon=True).start()
        threading.Thread(target=pipe, args=(u, c), daemon=True).start()
threading.Thread(target=accept, daemon=True).start()
args = [a.replace("{port}", str(port)) for a in cmd]
done = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=120)
sys.stdout.buffer.write(done.stdout)
sys.exit(done.returncode)
"#;

/// Headless Chromium on `path`, in a network namespace with nothing but loopback: the
/// page is reached through [`FORWARD`], and nothing else can be.
pub fn chromium(server: &Server, path: &str, action: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("unshare")
        .args(["-n", "sh", "-ec", "ip link set lo up; exec \"$@\"", "sh"])
        .args(["python3", "-c", FORWARD])
        .arg(&server.socket)
        .args([
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-proxy-server",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
            "--virtual-time-budget=2000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(action)
        .arg(format!("http://127.0.0.1:{{port}}{path}"))
        .env("HOME", profile.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium {action} {path}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn has_chromium() -> bool {
    Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}
