//! The daemon's status pages, health and metrics (`tandem::serve::pages::router`) over
//! real HTTP, on a run history filled by real runs: applies through `tandem::run` and
//! the real binary with the local transport, on a two-datacenter site that is a real git
//! repository. One run's resource path holds `<script>`, one template holds a secret.
//! The pages are opened in headless Chromium inside a network namespace of its own
//! (`unshare -n`, loopback only), reaching the router through a Unix socket.

mod harness;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tandem::serve::auth::ReadToken;
use tandem::serve::metrics::Metrics;
use tandem::serve::observe::{DeliveryResult, Observer, Receiver};
use tandem::serve::pages::view::Trigger;
use tandem::serve::pages::{PagesState, Triggers};
use tandem::store::{RunId, RunStatus, Store};

use harness::*;

const SECRET_V1: &str = "pw-first-9f3a1c7e5b";
const SECRET_V2: &str = "pw-second-2d8e6b4a0c";
const SECRET_V3: &str = "pw-third-7c1f0e9d3b";

/// A pusher name as a payload may carry it: markup, shown as text.
const PUSHER: &str = "<img src=x onerror=\"document.title='pwned'\">";

/// What the daemon's delivery records would say: run 3 was asked for by two pushes.
fn triggers() -> Triggers {
    Arc::new(|_store: &Store, id: RunId| {
        let delivery = |n: u8| Trigger {
            receiver: "github".into(),
            delivery: format!("0000000{n}-aaaa-bbbb-cccc-dddddddddddd"),
            event: "push".into(),
            git_ref: Some("refs/heads/master".into()),
            pusher: Some(PUSHER.into()),
            received_at: "2026-12-01T10:00:00Z".into(),
        };
        Ok(if id == RunId(3) {
            vec![delivery(1), delivery(2)]
        } else {
            Vec::new()
        })
    })
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
        triggers: Some(triggers()),
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
    let triggered = run3["triggers"].as_array().unwrap();
    assert_eq!(triggered.len(), 2);
    assert_eq!(triggered[0]["receiver"], "github");
    assert_eq!(triggered[0]["event"], "push");
    assert_eq!(triggered[0]["git_ref"], "refs/heads/master");
    assert_eq!(triggered[0]["pusher"], PUSHER);
    assert_eq!(runs[0]["triggers"], serde_json::json!([]));
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
    assert!(!page.body.contains("<img"), "{}", page.body);
    assert!(
        page.body
            .contains("&lt;img src=x onerror=&quot;document.title=&#39;pwned&#39;&quot;&gt;"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<h2>triggered by (2)</h2>"),
        "{}",
        page.body
    );
    shown.push(page.body);
    let list_page = get(addr, "/runs", &[]);
    assert_eq!(list_page.status, 200);
    assert!(list_page.body.contains("<table id=\"runs\">"));
    assert!(list_page.body.contains(&third[..12]));
    assert!(
        list_page.body.contains(
            "github push of refs/heads/master by &lt;img src=x onerror=&quot;document.title=&#39;pwned&#39;&quot;&gt; (+1 more)"
        ),
        "{}",
        list_page.body
    );
    assert!(!list_page.body.contains("<img"), "{}", list_page.body);
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
    assert!(!dom.contains("<img"), "{dom}");
    assert!(
        dom.contains("&lt;img src=x onerror=\"document.title='pwned'\"&gt;"),
        "{dom}"
    );
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
        triggers: None,
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
        triggers: None,
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
        triggers: None,
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
