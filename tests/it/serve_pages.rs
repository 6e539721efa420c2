//! The daemon's status pages, health and metrics (`tandem::serve::pages::router`) over
//! real HTTP, on a run history filled by real runs: applies through `tandem::run` and
//! the real binary with the local transport, on a two-datacenter site that is a real git
//! repository. One run's resource path holds `<script>`, one template holds a secret.
//! The pages are opened in headless Chromium inside a network namespace of its own
//! (`unshare -n`, loopback only), reaching the router through a Unix socket.

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
use tandem::serve::auth::ReadToken;
use tandem::serve::metrics::Metrics;
use tandem::serve::observe::{DeliveryResult, Observer, Receiver, RunFinished};
use tandem::serve::pages::{router, PagesState, Readiness};
use tandem::store::{RunKind, RunStatus, Store};

const SECRET_V1: &str = "pw-first-9f3a1c7e5b";
const SECRET_V2: &str = "pw-second-2d8e6b4a0c";
const SECRET_V3: &str = "pw-third-7c1f0e9d3b";
const SCRIPT: &str = "<script>document.title='pwned';alert(1)</script>";

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

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Two nodes in two datacenters; `stage` 1: one file each; 2: plus a directory and a
/// file whose path holds a `<script>` element; 3: plus a file from a template that
/// carries the secret `db_password`.
fn site(root: &Path, stage: u8) {
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

fn commit(root: &Path, message: &str) -> String {
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", message]);
    git(root, &["rev-parse", "HEAD"])
}

fn settings(root: &Path, command: &str) -> Settings {
    let mut settings = Settings::new(root);
    settings.connection.transport = TransportKind::Local;
    settings.command = command.into();
    settings.started_by = Some("webhook".into());
    settings
}

async fn apply_lib(root: &Path) {
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

async fn plan_lib(root: &Path) {
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
fn tandem_bin(root: &Path, command: &str, secret: &str, code: i32) {
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
struct Server {
    addr: SocketAddr,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

fn serve(state: PagesState) -> Server {
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

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// One HTTP/1.1 GET over a fresh connection, read to its end.
fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
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

fn json(reply: &Reply) -> serde_json::Value {
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.body))
}

fn ready() -> Readiness {
    Arc::new(|| Ok(()))
}

/// The exposition's samples: `name{labels sorted}` to value.
fn samples(text: &str) -> BTreeMap<String, f64> {
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
fn finished(detail: &tandem::store::RunDetail) -> RunFinished {
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
const FORWARD: &str = r#"
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
fn chromium(server: &Server, path: &str, action: &str) -> String {
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

fn has_chromium() -> bool {
    Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn pages_json_and_metrics_show_real_runs_inert_and_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("node")).unwrap();
    write(root, ".gitignore", ".tandem/\nnode/\n");
    git(root, &["init", "-q"]);
    site(root, 1);
    let first = commit(root, "one file");
    apply_lib(root).await; // run 1: both nodes changed
    plan_lib(root).await; // run 2: in sync
    site(root, 2);
    let second = commit(root, "a path with markup");
    apply_lib(root).await; // run 3
    site(root, 3);
    let third = commit(root, "a secret in a template");
    tandem_bin(root, "apply", SECRET_V1, 0); // run 4: db.conf created
    tandem_bin(root, "apply", SECRET_V2, 0); // run 5: db.conf modified
    tandem_bin(root, "plan", SECRET_V3, 2); // run 6: db.conf would be modified
    for node in ["w1", "w2"] {
        let db = std::fs::read_to_string(root.join("node").join(node).join("db.conf")).unwrap();
        assert_eq!(db, format!("password = {SECRET_V2}\n"));
        let inert = root
            .join("node")
            .join(node)
            .join(SCRIPT.trim_start_matches('/'));
        assert_eq!(std::fs::read_to_string(inert).unwrap(), "inert\n");
    }

    let history = root.join(".tandem/history.sqlite");
    let details: Vec<_> = {
        let store = Store::open(&history).unwrap();
        (1..=6)
            .map(|id| store.run(tandem::store::RunId(id)).unwrap())
            .collect()
    };
    assert_eq!(
        details.iter().map(|d| d.run.status).collect::<Vec<_>>(),
        [[RunStatus::Succeeded; 5].as_slice(), &[RunStatus::Pending]].concat(),
        "{details:#?}"
    );

    // The run worker's reports, as the daemon would send them.
    let metrics = Arc::new(Metrics::new());
    for detail in &details {
        metrics.run_finished(&finished(detail));
    }
    for _ in 0..3 {
        metrics.delivery(Receiver::Github, DeliveryResult::Accepted);
    }
    metrics.delivery(Receiver::Gitlab, DeliveryResult::Unauthorized);

    let server = serve(PagesState {
        history: history.clone(),
        metrics: metrics.clone(),
        read_token: None,
        repository_ready: ready(),
    });
    let addr = server.addr;
    let mut shown = Vec::new();

    // The list, as JSON three ways.
    let list = get(addr, "/runs.json", &[]);
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.header("content-type"), Some("application/json"));
    let by_accept = get(addr, "/runs", &[("Accept", "application/json")]);
    let root_json = get(addr, "/", &[("Accept", "application/json")]);
    assert_eq!(json(&by_accept), json(&list));
    assert_eq!(json(&root_json), json(&list));
    let doc = json(&list);
    assert_eq!(doc["version"], 1);
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(
        runs.iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [6, 5, 4, 3, 2, 1]
    );
    let run3 = &runs[3];
    assert_eq!(run3["kind"], "apply");
    assert_eq!(run3["status"], "succeeded");
    assert_eq!(run3["commit"], second);
    assert_eq!(run3["dirty"], false);
    assert_eq!(run3["started_by"], "webhook");
    assert_eq!(run3["url"], "/runs/3");
    assert!(run3["started_at"].as_str().unwrap().ends_with('Z'));
    assert!(run3["finished_at"].is_string() && run3["duration_ms"].is_i64());
    assert_eq!(run3["nodes"]["total"], 2);
    assert_eq!(run3["nodes"]["by_outcome"]["changed"], 2);
    assert_eq!(
        run3["datacenters"],
        serde_json::json!([
            {"datacenter": "dc1", "total": 1, "by_outcome": {"changed": 1}},
            {"datacenter": "dc2", "total": 1, "by_outcome": {"changed": 1}},
        ])
    );
    assert_eq!(runs[5]["commit"], first);
    assert_eq!(runs[1]["commit"], third);
    assert_eq!(runs[0]["kind"], "plan");
    assert_eq!(runs[0]["status"], "pending");
    assert_eq!(runs[4]["kind"], "plan");
    assert_eq!(
        runs.iter()
            .map(|r| r["commit"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [&third, &third, &third, &second, &first, &first]
    );
    let limited = json(&get(addr, "/runs.json?limit=2", &[]));
    assert_eq!(limited["runs"].as_array().unwrap().len(), 2);
    shown.push(list.body);

    // One run: nodes and changes, the `<script>` path as data.
    let detail = get(addr, "/runs/3.json", &[]);
    assert_eq!(detail.status, 200, "{}", detail.body);
    let doc = json(&detail);
    assert_eq!(
        json(&get(addr, "/runs/3", &[("Accept", "application/json")])),
        doc
    );
    assert_eq!(doc["id"], 3);
    assert_eq!(doc["commit"], second);
    assert_eq!(doc["command"], "tandem apply");
    let nodes = doc["node_runs"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["node"], "w1");
    assert_eq!(nodes[0]["datacenter"], "dc1");
    assert_eq!(nodes[0]["outcome"], "changed");
    assert!(nodes[0]["duration_ms"].is_i64() && nodes[0]["started_at"].is_string());
    let changes = doc["changes"].as_array().unwrap();
    let script_file = format!("file:{}/node/w1/{SCRIPT}", root.display());
    let change = changes
        .iter()
        .find(|c| c["resource"] == script_file.as_str())
        .unwrap_or_else(|| panic!("no change of `{script_file}` in {changes:#?}"));
    assert_eq!(change["node"], "w1");
    assert_eq!(change["action"], "create");
    assert!(change["summary"].is_string());
    shown.push(detail.body);

    // HTML: escaped, under a no-script policy.
    let page = get(addr, "/runs/3", &[]);
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert!(!page.body.contains("<script"), "{}", page.body);
    assert!(
        page.body
            .contains("&lt;script&gt;document.title=&#39;pwned&#39;;alert(1)&lt;/script&gt;"),
        "{}",
        page.body
    );
    assert!(page.body.contains(&second));
    shown.push(page.body);
    let list_page = get(addr, "/runs", &[]);
    assert_eq!(list_page.status, 200);
    assert!(list_page.body.contains("<table id=\"runs\">"));
    assert!(list_page.body.contains(&third[..12]));
    assert_eq!(get(addr, "/", &[]).body, list_page.body);
    shown.push(list_page.body);

    // Unknown runs.
    for (path, accept) in [
        ("/runs/99", "text/html"),
        ("/runs/99.json", "*/*"),
        ("/runs/abc", "text/html"),
        ("/runs/-1.json", "*/*"),
    ] {
        let reply = get(addr, path, &[("Accept", accept)]);
        assert_eq!(reply.status, 404, "{path}: {}", reply.body);
        if path.ends_with(".json") {
            assert!(json(&reply)["error"].is_string(), "{}", reply.body);
        } else {
            assert!(reply.body.contains("no such run"), "{}", reply.body);
        }
    }

    // Secrets: the runs that carried one.
    for id in [4, 5, 6] {
        let html = get(addr, &format!("/runs/{id}"), &[]);
        let doc = get(addr, &format!("/runs/{id}.json"), &[]);
        assert_eq!((html.status, doc.status), (200, 200));
        let changes = json(&doc)["changes"].as_array().unwrap().clone();
        let db = format!("file:{}/node/w2/db.conf", root.display());
        let change = changes
            .iter()
            .find(|c| c["resource"] == db.as_str())
            .unwrap();
        assert_eq!(change["action"], if id == 4 { "create" } else { "modify" });
        if id == 6 {
            // The plan's own line for the change, not the apply's `applied`.
            let summary = change["summary"].as_str().unwrap();
            assert_ne!(summary, "applied", "{change}");
            assert!(!summary.is_empty(), "{change}");
        }
        shown.push(html.body);
        shown.push(doc.body);
    }

    // Metrics.
    let exposition = get(addr, "/metrics", &[]);
    assert_eq!(exposition.status, 200);
    assert_eq!(
        exposition.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let s = samples(&exposition.body);
    let sample = |key: String| {
        *s.get(&key)
            .unwrap_or_else(|| panic!("no `{key}` in\n{}", exposition.body))
    };
    assert_eq!(
        sample(r#"tandem_runs_total{kind="apply",result="succeeded"}"#.into()),
        4.0
    );
    assert_eq!(
        sample(r#"tandem_runs_total{kind="plan",result="succeeded"}"#.into()),
        1.0
    );
    assert_eq!(
        sample(r#"tandem_runs_total{kind="plan",result="pending"}"#.into()),
        1.0
    );
    let mut outcomes = BTreeMap::<String, f64>::new();
    for d in &details {
        for n in &d.nodes {
            *outcomes.entry(n.outcome.to_string()).or_default() += 1.0;
        }
    }
    assert_eq!(outcomes.values().sum::<f64>(), 12.0, "{outcomes:?}");
    for (outcome, count) in &outcomes {
        assert_eq!(
            sample(format!(r#"tandem_nodes_total{{outcome="{outcome}"}}"#)),
            *count
        );
    }
    assert_eq!(
        sample(r#"tandem_run_duration_seconds_count{kind="apply"}"#.into()),
        4.0
    );
    for dc in ["dc1", "dc2"] {
        assert_eq!(
            sample(format!(
                r#"tandem_deployed_commit{{commit="{third}",datacenter="{dc}"}}"#
            )),
            1.0
        );
    }
    let deployed = s
        .keys()
        .filter(|k| k.starts_with("tandem_deployed_commit{"))
        .count();
    assert_eq!(deployed, 2, "only the current commit per datacenter");
    assert_eq!(
        sample(r#"tandem_webhook_deliveries_total{receiver="github",result="accepted"}"#.into()),
        3.0
    );
    assert_eq!(
        sample(
            r#"tandem_webhook_deliveries_total{receiver="gitlab",result="unauthorized"}"#.into()
        ),
        1.0
    );
    shown.push(exposition.body);

    // Health.
    let health = get(addr, "/healthz", &[]);
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let readiness = get(addr, "/readyz", &[]);
    assert_eq!(
        (readiness.status, readiness.body.as_str()),
        (200, "ready\n")
    );

    for text in &shown {
        for secret in [SECRET_V1, SECRET_V2, SECRET_V3] {
            assert!(!text.contains(secret), "secret shown in:\n{text}");
        }
    }

    // The browser: the run's commit and node outcomes in the rendered DOM, the path as
    // text, no script run.
    assert!(has_chromium(), "chromium is not installed (scripts/setup)");
    let dom = chromium(&server, "/runs/3", "--dump-dom");
    assert!(
        dom.contains(&format!(
            "<span class=\"mono\" id=\"commit\">{second}</span>"
        )),
        "{dom}"
    );
    assert!(
        dom.contains("<td class=\"outcome\"><span class=\"changed\">changed</span></td>"),
        "{dom}"
    );
    assert!(dom.contains("<title>tandem run 3</title>"), "{dom}");
    assert!(
        !dom.contains("pwned</title>") && !dom.to_lowercase().contains("<script"),
        "{dom}"
    );
    assert!(
        dom.contains("&lt;script&gt;document.title='pwned';alert(1)&lt;/script&gt;"),
        "{dom}"
    );
    let dom = chromium(&server, "/runs", "--dump-dom");
    assert!(
        dom.contains(&third[..12]) && dom.contains("<title>tandem runs</title>"),
        "{dom}"
    );
    for secret in [SECRET_V1, SECRET_V2, SECRET_V3] {
        assert!(!dom.contains(secret));
    }
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/serve-runs.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &server,
        "/runs",
        &format!("--screenshot={}", shot.display()),
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 1000,
        "{}",
        shot.display()
    );
}

#[test]
fn a_read_token_guards_everything_but_liveness() {
    let dir = tempfile::tempdir().unwrap();
    let token = ReadToken::new("s3cr3t-read-token-0123456789").unwrap();
    let server = serve(PagesState {
        history: dir.path().join("history.sqlite"),
        metrics: Arc::new(Metrics::new()),
        read_token: Some(token),
        repository_ready: ready(),
    });
    let addr = server.addr;
    for path in ["/", "/runs", "/runs.json", "/runs/1", "/metrics", "/readyz"] {
        let bare = get(addr, path, &[]);
        assert_eq!(bare.status, 401, "{path}");
        assert_eq!(
            bare.header("www-authenticate"),
            Some("Bearer realm=\"tandem\"")
        );
        let wrong = get(
            addr,
            path,
            &[("Authorization", "Bearer s3cr3t-read-token-0123456780")],
        );
        assert_eq!(wrong.status, 401, "{path}");
        let basic = get(addr, path, &[("Authorization", "Basic czNjcjN0")]);
        assert_eq!(basic.status, 401, "{path}");
        let right = get(
            addr,
            path,
            &[("Authorization", "Bearer s3cr3t-read-token-0123456789")],
        );
        let want = if path == "/runs/1" { 404 } else { 200 };
        assert_eq!(right.status, want, "{path}: {}", right.body);
    }
    assert_eq!(get(addr, "/healthz", &[]).status, 200);
    // A history without runs: an empty list, not an error.
    let empty = get(
        addr,
        "/runs.json",
        &[("Authorization", "Bearer s3cr3t-read-token-0123456789")],
    );
    assert_eq!(json(&empty)["runs"], serde_json::json!([]));
}

#[test]
fn readiness_names_what_is_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    // A history below a regular file cannot be created.
    std::fs::write(dir.path().join("file"), "").unwrap();
    let server = serve(PagesState {
        history: dir.path().join("file/history.sqlite"),
        metrics: Arc::new(Metrics::new()),
        read_token: None,
        repository_ready: Arc::new(|| Err("cannot fetch `git://127.0.0.1:9/site.git`".into())),
    });
    let reply = get(server.addr, "/readyz", &[]);
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.body.starts_with("not ready\n"), "{}", reply.body);
    assert!(reply.body.contains("run history: "), "{}", reply.body);
    assert!(
        reply
            .body
            .contains("repository: cannot fetch `git://127.0.0.1:9/site.git`"),
        "{}",
        reply.body
    );
    assert_eq!(get(server.addr, "/healthz", &[]).status, 200);

    let good = serve(PagesState {
        history: dir.path().join("history.sqlite"),
        metrics: Arc::new(Metrics::new()),
        read_token: None,
        repository_ready: ready(),
    });
    assert_eq!(get(good.addr, "/readyz", &[]).status, 200);
    // The history holds its write lock elsewhere: not ready, said so (bounded wait).
    let holder = rusqlite::Connection::open(dir.path().join("history.sqlite")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE;").unwrap();
    let started = std::time::Instant::now();
    let reply = get(good.addr, "/readyz", &[]);
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.body.contains("takes no write lock"), "{}", reply.body);
    assert!(started.elapsed() < Duration::from_secs(15));
    holder.execute_batch("ROLLBACK;").unwrap();
    assert_eq!(get(good.addr, "/readyz", &[]).status, 200);
}
