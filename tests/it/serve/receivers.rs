//! The receivers, fail closed: every forged, malformed, oversized, stale or replayed
//! delivery is refused with its status and leaves no trace but the refusal (no delivery
//! recorded, no fetch, no run, nothing on the node); a push to another branch is
//! recorded as ignored; a valid push is answered 202 within a second and deploys the
//! fetched head. Nodes here are reached with the local transport (files below the
//! test's directory); the fleet tests are in `deploys`.

use std::net::TcpListener;
use std::time::Duration;

use super::*;

fn serve_toml(url: &str, receivers: &str) -> String {
    format!("[repository]\nurl = \"{url}\"\n\n{receivers}")
}

const ALL_RECEIVERS: &str = "[receivers.github]\nsecret_env = \"TANDEM_GITHUB_SECRET\"\n\n\
    [receivers.gitlab]\nsecret_env = \"TANDEM_GITLAB_SECRET\"\n\n\
    [receivers.generic]\nsecret_env = \"TANDEM_GENERIC_SECRET\"\n";

/// A local-transport site whose one node's file is `node_dir/app.conf`.
fn local_site(node_dir: &Path, content: &str) -> Vec<(&'static str, String)> {
    let mut files = site_files(&format!("{}/app.conf", node_dir.display()), content, 0);
    files.push((
        "manifests/nodes.toml",
        "[[node]]\nname = \"w1\"\ndatacenter = \"dc1\"\nrole = \"web\"\naddress = \"127.0.0.1\"\n"
            .into(),
    ));
    files
}

fn local_env() -> Vec<(&'static str, String)> {
    vec![("TANDEM_TRANSPORT", "local".into())]
}

#[test]
fn forged_oversized_stale_and_replayed_deliveries_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("node");
    std::fs::create_dir_all(&node).unwrap();
    let repo = GitServer::start(&local_site(&node, "version 1"));
    let site = dir.path().join("operator");
    write(
        &site.join("manifests/serve.toml"),
        &serve_toml(&repo.url(), ALL_RECEIVERS),
    );
    let daemon = Daemon::start(&site, &local_env());
    let push = br#"{"ref":"refs/heads/master","pusher":{"name":"ada"}}"#;

    // GitHub: one changed byte, no signature, the sha1 scheme.
    let mut headers = github_headers("forged-1", "push", push);
    let mut changed = push.to_vec();
    changed[10] ^= 1;
    assert_eq!(daemon.post("/hooks/github", &headers, &changed).0, 401);
    headers.retain(|(name, _)| *name != "X-Hub-Signature-256");
    assert_eq!(daemon.post("/hooks/github", &headers, push).0, 401);
    let sha1 = verify::github_signature(GITHUB_SECRET.as_bytes(), push).replace("sha256=", "sha1=");
    headers.push(("X-Hub-Signature-256", sha1));
    let (status, body) = daemon.post("/hooks/github", &headers, push);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("sha256="), "{body}");
    // 10 MB, correctly signed: refused for its size, before its signature matters.
    let big = vec![b' '; 10 * 1024 * 1024];
    let (status, _) = daemon.post(
        "/hooks/github",
        &github_headers("big-1", "push", &big),
        &big,
    );
    assert_eq!(status, 413);
    // GitLab: a wrong token.
    let gitlab = |token: &str, id: &str| {
        vec![
            ("X-Gitlab-Token", token.to_string()),
            ("X-Gitlab-Event", "Push Hook".to_string()),
            ("X-Gitlab-Event-UUID", id.to_string()),
        ]
    };
    let gl_body = br#"{"ref":"refs/heads/master","user_username":"ada"}"#;
    assert_eq!(
        daemon
            .post("/hooks/gitlab", &gitlab("gl-t0ken-wrong", "gl-1"), gl_body)
            .0,
        401
    );
    // Standard Webhooks: correctly signed, but 10 minutes old.
    let generic = |id: &str, at: i64, body: &[u8]| {
        vec![
            ("webhook-id", id.to_string()),
            ("webhook-timestamp", at.to_string()),
            (
                "webhook-signature",
                verify::standard_signature(GENERIC_SECRET.as_bytes(), id, at, body),
            ),
        ]
    };
    let gen_body = br#"{"type":"push","data":{"ref":"refs/heads/master"}}"#;
    let old = now() - 600;
    assert_eq!(
        daemon
            .post(
                "/hooks/generic",
                &generic("gen-old", old, gen_body),
                gen_body
            )
            .0,
        401
    );

    // Nothing recorded, fetched or run; the node untouched.
    let store = daemon.store();
    assert_eq!(store.deliveries(100).unwrap(), vec![]);
    assert_eq!(store.runs(100).unwrap().len(), 0);
    assert!(!site.join(".tandem/serve/mirror.git").exists());
    assert!(!node.join("app.conf").exists());
    let log = daemon.log();
    assert!(
        log.contains("refused a delivery: signature does not match"),
        "{log}"
    );

    // A ping answers 200; a push to another branch is recorded as ignored.
    assert_eq!(
        daemon
            .post(
                "/hooks/github",
                &github_headers("ping-1", "ping", b"{}"),
                b"{}"
            )
            .0,
        200
    );
    git(&repo.work(), &["checkout", "-qb", "feature"]);
    repo.commit(
        "modules/web/module.toml",
        &module(&format!("{}/app.conf", node.display()), "feature", 0),
        "feature",
    );
    git(&repo.work(), &["checkout", "-q", "master"]);
    let (status, body) = daemon.github_push("other-branch-1", "feature");
    assert_eq!(status, 202, "{body}");
    assert!(body.contains("not the deploy branch"), "{body}");

    // A valid push: 202 within a second, and the fetched head of master deployed.
    let head = repo.commit(
        "modules/web/module.toml",
        &module(&format!("{}/app.conf", node.display()), "version 2", 0),
        "version 2",
    );
    let ((status, body), took) = timed(|| daemon.github_push("push-1", "master"));
    assert_eq!(status, 202, "{body}");
    assert!(took < Duration::from_secs(1), "202 took {took:?}");
    assert!(body.contains("/runs"), "{body}");
    let run = daemon.wait_run(1, Duration::from_secs(60));
    assert_eq!(
        run.status.as_str(),
        "succeeded",
        "{:?}\n{}",
        daemon.store().run(run.id).unwrap(),
        daemon.log()
    );
    assert_eq!(run.commit.as_deref(), Some(head.as_str()));
    assert_eq!(
        std::fs::read_to_string(node.join("app.conf")).unwrap(),
        "version 2\n"
    );
    let store = daemon.store();
    let triggers = store.run_triggers(run.id).unwrap();
    assert_eq!(triggers.len(), 1);
    assert_eq!(triggers[0].id, "push-1");
    assert_eq!(triggers[0].pusher.as_deref(), Some("ada"));
    assert_eq!(triggers[0].event, "push");
    let decision = store.decision_of_run(run.id).unwrap().unwrap();
    assert_eq!(decision.commit, head);

    // The same delivery again: 200, nothing recorded or run; a fresh one runs once more.
    let (status, body) = daemon.github_push("push-1", "master");
    assert_eq!((status, body.contains("duplicate")), (200, true), "{body}");
    let (status, _) = daemon.post("/hooks/gitlab", &gitlab(GITLAB_SECRET, "gl-2"), gl_body);
    assert_eq!(status, 202);
    let at = now();
    let (status, _) = daemon.post("/hooks/generic", &generic("gen-2", at, gen_body), gen_body);
    assert_eq!(status, 202);
    let (status, _) = daemon.post("/hooks/generic", &generic("gen-2", at, gen_body), gen_body);
    assert_eq!(status, 200, "a replayed webhook-id");
    let second = daemon.wait_run(2, Duration::from_secs(60));
    let deliveries = store.deliveries(100).unwrap();
    let ids: Vec<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids.iter().filter(|id| **id == "push-1").count(),
        1,
        "{ids:?}"
    );
    let first = deliveries.iter().find(|d| d.id == "push-1").unwrap();
    assert_eq!(first.run, Some(run.id), "the replay changed nothing");
    let ignored = deliveries
        .iter()
        .find(|d| d.id == "other-branch-1")
        .unwrap();
    assert_eq!((ignored.result.as_str(), ignored.run), ("ignored", None));
    assert!(second.id > run.id);
    // The feature branch's content never reached the node.
    assert_eq!(
        std::fs::read_to_string(node.join("app.conf")).unwrap(),
        "version 2\n"
    );

    // Restarted, the daemon still knows every delivery id.
    drop(daemon);
    let daemon = Daemon::start(&site, &local_env());
    let (status, body) = daemon.github_push("push-1", "master");
    assert_eq!((status, body.contains("duplicate")), (200, true), "{body}");

    // No secret anywhere the daemon wrote.
    let written = written_bytes(&daemon);
    for secret in [GITHUB_SECRET, GITLAB_SECRET, GENERIC_SECRET] {
        assert!(!contains(&written, secret), "`{secret}` was written");
    }
}

#[test]
fn an_enabled_receiver_without_a_secret_stops_the_daemon_before_it_binds() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("operator");
    write(
        &site.join("manifests/serve.toml"),
        &serve_toml(
            "git://127.0.0.1:9/none.git",
            "[receivers.github]\nsecret_env = \"TANDEM_GITHUB_SECRET\"\n\n\
             [receivers.gitlab]\nsecret_env = \"TANDEM_TEST_UNSET_SECRET\"\n",
        ),
    );
    // The port is held here: had the daemon tried to bind first, it would fail with
    // `cannot listen`, not with the missing secret.
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("TANDEM_SITE", &site)
        .env("TANDEM_GITHUB_SECRET", GITHUB_SECRET)
        .env_remove("TANDEM_TEST_UNSET_SECRET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("receiver `gitlab` is enabled but its secret variable `TANDEM_TEST_UNSET_SECRET` is unset or empty"),
        "{stderr}"
    );
    assert!(!stderr.contains("listen"), "{stderr}");
    drop(holder);
    // And nothing listens there now.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn a_run_that_converges_no_node_or_misses_a_datacenter_is_failed() {
    let dir = tempfile::tempdir().unwrap();
    let conf = "/nonexistent/app.conf";
    let mut files = site_files(conf, "v1", 0);
    // Nothing listens on port 1: the node is unreachable.
    files.push((
        "manifests/nodes.toml",
        "[[node]]\nname = \"w1\"\ndatacenter = \"dc1\"\nrole = \"web\"\naddress = \"127.0.0.1\"\nport = 1\n"
            .into(),
    ));
    let repo = GitServer::start(&files);
    let site = dir.path().join("operator");
    write(
        &site.join("manifests/serve.toml"),
        &serve_toml(
            &repo.url(),
            "[receivers.github]\nsecret_env = \"TANDEM_GITHUB_SECRET\"\n",
        ),
    );
    let known_hosts = dir.path().join("known_hosts");
    write(&known_hosts, "");
    let env = vec![
        ("TANDEM_KNOWN_HOSTS", known_hosts.display().to_string()),
        ("TANDEM_CONNECT_TIMEOUT", "2s".to_string()),
    ];
    let daemon = Daemon::start(&site, &env);
    assert_eq!(daemon.github_push("z1", "master").0, 202);
    let run = daemon.wait_run(1, Duration::from_secs(60));
    assert_eq!(run.status.as_str(), "failed", "{}", daemon.log());
    assert_eq!(run.error.as_deref(), Some("no node was converged"));

    // A standby datacenter whose discovery fails (its cloud API is unreachable here).
    let with_standby = format!(
        "{}\n[datacenters.dc2]\nprovider = \"aws\"\n\n[datacenters.dc2.aws]\nregions = [\"us-east-1\"]\n\
         tags = {{ site = \"t\" }}\nrole_tag = \"role\"\nname_tag = \"Name\"\naddress = \"private\"\n",
        files[0].1
    );
    repo.commit("manifests/site.toml", &with_standby, "a standby");
    assert_eq!(daemon.github_push("z2", "master").0, 202);
    let run = daemon.wait_run(2, Duration::from_secs(120));
    assert_eq!(run.status.as_str(), "failed", "{}", daemon.log());
    assert!(
        run.error
            .as_deref()
            .is_some_and(|e| e.starts_with("discovery failed")),
        "{run:?}"
    );
}
