//! `require_signed` and the `plan` policy: an unsigned head and a head signed by a key
//! that is not an allowed signer are refused and recorded; a head signed by an allowed
//! signer (keys generated here, signed by `git commit -S` with `gpg.format = ssh`) is
//! planned, not applied, and its saved plan is what an operator applies with `tandem
//! apply FILE`. Local transport (files below the test's directory).

use std::time::Duration;

use super::*;
use tandem::store::Decision;

fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_string())
}

fn signed_commit(git_server: &GitServer, key: &Path, rel: &str, text: &str) -> String {
    let work = git_server.work();
    write(&work.join(rel), text);
    super::git(&work, &["add", "-A"]);
    let out = Command::new("git")
        .arg("-C")
        .arg(&work)
        .args([
            "-c",
            "user.name=Ada",
            "-c",
            "user.email=ada@example.invalid",
        ])
        .args(["-c", "gpg.format=ssh"])
        .arg("-c")
        .arg(format!("user.signingkey={}", key.display()))
        .args(["commit", "-q", "-S", "-m", "signed"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    super::git(&work, &["push", "-q", "origin", "master"]);
    super::git(&work, &["rev-parse", "HEAD"])
}

fn newest_decision(daemon: &Daemon, count: usize) -> tandem::store::CommitDecision {
    wait_for(
        Duration::from_secs(60),
        &format!("{count} decisions"),
        || {
            let decisions = daemon.store().decisions(100).ok()?;
            (decisions.len() >= count).then(|| decisions[0].clone())
        },
    )
    .unwrap_or_else(|t| panic!("{t}\n{}", daemon.log()))
}

#[test]
fn only_heads_signed_by_an_allowed_signer_are_planned_and_the_plan_applies() {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("node");
    std::fs::create_dir_all(&node).unwrap();
    let conf = format!("{}/app.conf", node.display());
    let mut files = site_files(&conf, "version 1", 0);
    files.push((
        "manifests/nodes.toml",
        "[[node]]\nname = \"w1\"\ndatacenter = \"dc1\"\nrole = \"web\"\naddress = \"127.0.0.1\"\n"
            .into(),
    ));
    let git_server = GitServer::start(&files);
    let (allowed, allowed_pub) = keygen(dir.path(), "allowed");
    let (stranger, _) = keygen(dir.path(), "stranger");
    let site = dir.path().join("operator");
    let signers = dir.path().join("allowed_signers");
    write(
        &signers,
        &format!("ada@example.invalid namespaces=\"git\" {allowed_pub}\n"),
    );
    write(
        &site.join("manifests/serve.toml"),
        &format!(
            "[repository]\nurl = \"{}\"\n\n[deploy]\npolicy = \"plan\"\nrequire_signed = true\nallowed_signers = \"{}\"\n\n\
             [receivers.github]\nsecret_env = \"TANDEM_GITHUB_SECRET\"\n",
            git_server.url(),
            signers.display()
        ),
    );
    let env = vec![("TANDEM_TRANSPORT", "local".to_string())];
    let daemon = Daemon::start(&site, &env);

    // The unsigned first commit.
    assert_eq!(daemon.github_push("d1", "master").0, 202);
    let refused = newest_decision(&daemon, 1);
    assert_eq!(refused.decision, Decision::Refused);
    assert!(
        refused
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("is not signed")),
        "{refused:?}"
    );
    // Signed by a key that is not allowed.
    let strange = signed_commit(
        &git_server,
        &stranger,
        "modules/web/module.toml",
        &module(&conf, "stranger", 0),
    );
    assert_eq!(daemon.github_push("d2", "master").0, 202);
    let refused = newest_decision(&daemon, 2);
    assert_eq!(
        (refused.decision, refused.commit.as_str()),
        (Decision::Refused, strange.as_str())
    );
    assert!(
        refused
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("not signed by an allowed signer")),
        "{refused:?}"
    );
    assert_eq!(daemon.store().runs(10).unwrap().len(), 0);
    assert!(!node.join("app.conf").exists());

    // Signed by the allowed signer: planned, saved, not applied.
    let good = signed_commit(
        &git_server,
        &allowed,
        "modules/web/module.toml",
        &module(&conf, "version 2", 0),
    );
    assert_eq!(daemon.github_push("d3", "master").0, 202);
    let run = daemon.wait_run(1, Duration::from_secs(60));
    assert_eq!(
        (run.kind.as_str(), run.commit.as_deref()),
        ("plan", Some(good.as_str()))
    );
    assert_eq!(run.status.as_str(), "pending", "{}", daemon.log());
    assert!(!node.join("app.conf").exists(), "a plan-only run applied");
    let decision = daemon.store().decision_of_run(run.id).unwrap().unwrap();
    let plan = PathBuf::from(decision.saved_plan.expect("a saved plan"));
    assert!(plan.is_file());

    // The operator applies exactly that plan, from the daemon's checkout of the commit.
    let checkout = site.join(".tandem/serve/checkouts").join(&good);
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("--site")
        .arg(&checkout)
        .arg("apply")
        .arg(&plan)
        .env("TANDEM_TRANSPORT", "local")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(node.join("app.conf")).unwrap(),
        "version 2\n"
    );
    // Recorded in the same history as the daemon's runs, as the deployed commit.
    assert_eq!(
        daemon.store().last_deployed_commit().unwrap().as_deref(),
        Some(good.as_str())
    );
}
