//! Fetching the site over `ssh://` from a fleet host acting as the git server: with the
//! deploy key and the server's host key pinned in serve.toml the head is fetched and
//! deployed; with another key pinned the fetch fails, is recorded, and nothing runs.
//! The deploy target is a local-transport node (a file below the test's directory).

use std::time::Duration;

use super::*;
use crate::support::fleet::{Fleet, Mode};
use tandem::store::Decision;

fn serve_toml(url: &str, key: &Path, host_key: &str) -> String {
    format!(
        "[repository]\nurl = \"{url}\"\ndeploy_key = \"{}\"\nhost_key = \"{host_key}\"\n\n\
         [receivers.github]\nsecret_env = \"TANDEM_GITHUB_SECRET\"\n",
        key.display()
    )
}

#[test]
fn an_ssh_repository_is_fetched_only_from_the_pinned_host_key() {
    let fleet = Fleet::up("serve-ssh", "dc1:git:1", Mode::Tini);
    let host = fleet.nodes()[0].clone();
    fleet.exec_ok(
        host.name.as_str(),
        "git init -q --bare -b master /srv/site.git",
    );
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("node");
    std::fs::create_dir_all(&node).unwrap();
    let conf = format!("{}/app.conf", node.display());
    let work = dir.path().join("work");
    let mut files = site_files(&conf, "over ssh", 0);
    files.push((
        "manifests/nodes.toml",
        "[[node]]\nname = \"w1\"\ndatacenter = \"dc1\"\nrole = \"web\"\naddress = \"127.0.0.1\"\n"
            .into(),
    ));
    for (rel, text) in &files {
        write(&work.join(rel), text);
    }
    git(&work, &["init", "-q"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "the site"]);
    let head = git(&work, &["rev-parse", "HEAD"]);
    let ssh_command = format!(
        "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={}",
        fleet.key_path().display(),
        fleet.known_hosts_path().display()
    );
    let url = format!("ssh://root@{}/srv/site.git", host.address);
    let pushed = Command::new("git")
        .arg("-C")
        .arg(&work)
        .args(["push", "-q", &url, "master"])
        .env("GIT_SSH_COMMAND", &ssh_command)
        .output()
        .unwrap();
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let known = std::fs::read_to_string(fleet.known_hosts_path()).unwrap();
    let pinned = known
        .lines()
        .find(|l| l.split_whitespace().next() == Some(host.address.as_str()))
        .unwrap_or_else(|| panic!("no key for `{}` in\n{known}", host.address))
        .to_string();
    let env = vec![("TANDEM_TRANSPORT", "local".to_string())];

    // Another host key pinned: the fetch fails, nothing runs.
    let other = dir.path().join("other");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(out.status.success());
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let wrong_site = dir.path().join("wrong");
    write(
        &wrong_site.join("manifests/serve.toml"),
        &serve_toml(&url, &fleet.key_path(), other_pub.trim()),
    );
    let daemon = Daemon::start(&wrong_site, &env);
    assert_eq!(daemon.github_push("s1", "master").0, 202);
    let failed = wait_for(Duration::from_secs(60), "the fetch to fail", || {
        daemon.store().decisions(1).unwrap().into_iter().next()
    })
    .unwrap_or_else(|t| panic!("{t}\n{}", daemon.log()));
    assert_eq!(failed.decision, Decision::Failed);
    assert!(
        failed
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("hostkey") || r.contains("host key")),
        "{failed:?}"
    );
    assert_eq!(daemon.store().runs(10).unwrap().len(), 0);
    assert!(!node.join("app.conf").exists());
    drop(daemon);

    // The server's own key pinned: fetched and deployed.
    let site = dir.path().join("operator");
    write(
        &site.join("manifests/serve.toml"),
        &serve_toml(&url, &fleet.key_path(), &pinned),
    );
    let daemon = Daemon::start(&site, &env);
    assert_eq!(daemon.github_push("s2", "master").0, 202);
    let run = daemon.wait_run(1, Duration::from_secs(60));
    assert_eq!(run.status.as_str(), "succeeded", "{}", daemon.log());
    assert_eq!(run.commit.as_deref(), Some(head.as_str()));
    assert_eq!(
        std::fs::read_to_string(node.join("app.conf")).unwrap(),
        "over ssh\n"
    );
}
