//! The scheduled audit: with `audit_interval` set, the daemon plans the whole site from
//! the last deployed commit, read-only, and records it as a plan run started by the
//! audit; drift on a node shows as `pending` without any push, and is not repaired.
//! Local transport (a file below the test's directory).

use std::time::Duration;

use super::*;
use tandem::serve::audit::AUDIT_STARTER;

#[test]
fn the_audit_plans_the_deployed_commit_and_finds_drift_without_a_push() {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("node");
    std::fs::create_dir_all(&node).unwrap();
    let conf = format!("{}/app.conf", node.display());
    let mut files = site_files(&conf, "deployed", 0);
    files.push((
        "manifests/nodes.toml",
        "[[node]]\nname = \"w1\"\ndatacenter = \"dc1\"\nrole = \"web\"\naddress = \"127.0.0.1\"\n"
            .into(),
    ));
    let repo = GitServer::start(&files);
    let site = dir.path().join("operator");
    write(
        &site.join("manifests/serve.toml"),
        &format!(
            "[repository]\nurl = \"{}\"\n\n[serve]\naudit_interval = \"2s\"\n\n\
             [receivers.github]\nsecret_env = \"TANDEM_GITHUB_SECRET\"\n",
            repo.url()
        ),
    );
    let env = vec![("TANDEM_TRANSPORT", "local".to_string())];
    let daemon = Daemon::start(&site, &env);
    assert_eq!(daemon.github_push("a1", "master").0, 202);
    let deployed = daemon.wait_run(1, Duration::from_secs(60));
    assert_eq!(deployed.status.as_str(), "succeeded", "{}", daemon.log());
    std::fs::write(node.join("app.conf"), "drifted\n").unwrap();
    let audit = wait_for(
        Duration::from_secs(60),
        "an audit that sees the drift",
        || {
            daemon.store().runs(20).unwrap().into_iter().find(|r| {
                r.started_by == AUDIT_STARTER
                    && r.status.as_str() == "pending"
                    && r.commit == deployed.commit
            })
        },
    )
    .unwrap_or_else(|t| panic!("{t}\n{}", daemon.log()));
    assert_eq!(audit.kind.as_str(), "plan");
    let detail = daemon.store().run(audit.id).unwrap();
    assert_eq!(detail.nodes.len(), 1);
    assert_eq!(detail.nodes[0].outcome.as_str(), "changed");
    // Read-only: the drift is still there.
    assert_eq!(
        std::fs::read_to_string(node.join("app.conf")).unwrap(),
        "drifted\n"
    );
}
