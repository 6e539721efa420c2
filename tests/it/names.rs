//! Untrusted names and template defects, through the real binary: `tandem check`
//! refuses node names, addresses, accounts, unit names and paths that break the rules
//! (naming file, line and key, before anything is compiled or any host is touched), and
//! partials that include each other are an error naming the cycle instead of a crash.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::site::{run_bounded, Run};

fn minimal() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sites/minimal")
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A private copy of the minimal fixture site.
fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&minimal(), dir.path());
    dir
}

fn edit(site: &Path, rel: &str, from: &str, to: &str) {
    let path = site.join(rel);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "`{from}` not in {rel}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// The binary on `site`, with no cloud or tandem environment of this machine.
fn tandem(site: &Path, args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
    command.arg("--site").arg(site).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("TANDEM_") || key.starts_with("AWS_") || key.starts_with("AZURE_") {
            command.env_remove(key);
        }
    }
    command.env("AWS_EC2_METADATA_DISABLED", "true");
    run_bounded(command, args, Duration::from_secs(60))
}

#[test]
fn the_minimal_site_checks_clean_before_each_edit() {
    tandem(site().path(), &["check"]).expect_code(0);
}

#[test]
fn a_node_name_with_a_newline_is_refused_naming_file_line_and_key() {
    let site = site();
    // What a hostile inventory would carry: a second known_hosts line in the name.
    edit(
        site.path(),
        "manifests/nodes.toml",
        "name = \"web-west-1\"",
        "name = \"web-west-1\\n127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA\"",
    );
    // Read as part of the site, and as an `--inventory` file (what the fleet writes).
    let nodes = site.path().join("manifests/nodes.toml");
    let nodes = nodes.to_str().unwrap();
    for args in [vec!["check"], vec!["--inventory", nodes, "inventory"]] {
        let run = tandem(site.path(), &args);
        run.expect_code(1);
        assert!(
            run.stderr
                .contains("manifests/nodes.toml:8: node `web-west-1\\n127.0.0.1")
                && run.stderr.contains("key `name`: node name")
                && run.stderr.contains("holds a control character (`\\n`)"),
            "{run}"
        );
        // The message stays on one line: the newline is shown escaped.
        let line = run
            .stderr
            .lines()
            .find(|l| l.contains("key `name`"))
            .unwrap();
        assert!(line.contains("ssh-ed25519"), "{run}");
    }
}

#[test]
fn an_address_that_is_an_option_is_refused_naming_file_line_and_key() {
    let site = site();
    edit(
        site.path(),
        "manifests/nodes.toml",
        "address = \"127.0.0.1\"",
        "address = \"-oProxyCommand=touch /tmp/x\"",
    );
    let run = tandem(site.path(), &["check"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(
            "manifests/nodes.toml:5: node `web-east-1`, key `address`: address \
             `-oProxyCommand=touch /tmp/x`"
        ),
        "{run}"
    );
    let site = self::site();
    edit(
        site.path(),
        "manifests/nodes.toml",
        "address = \"127.0.0.1\"\n",
        "address = \"127.0.0.1\"\nuser = \"root\\nx\"\n",
    );
    let run = tandem(site.path(), &["check"]);
    run.expect_code(1);
    assert!(run.stderr.contains("key `user`: user `root\\nx`"), "{run}");
}

#[test]
fn resource_names_a_node_would_refuse_are_refused_at_check() {
    let cases = [
        // (what is edited in module.toml, the key and words the error must name)
        (
            "mode = \"0644\"",
            "mode = \"0644\"\nowner = \"Web Admin\"",
            "owner",
            "owner `Web Admin`",
        ),
        (
            "mode = \"0644\"",
            "mode = \"0644\"\ngroup = \"web;id\"",
            "group",
            "group `web;id`",
        ),
        (
            "name = \"web\"\nrunning",
            "name = \"-web\"\nrunning",
            "name",
            "unit name `-web`",
        ),
        (
            "name = \"web\"\nrunning",
            "name = \"web server\"\nrunning",
            "name",
            "unit name `web server`",
        ),
        (
            "type = \"package\"\nname = \"web\"",
            "type = \"package\"\nname = \"--force\"",
            "name",
            "package name `--force`",
        ),
        (
            "path = \"/etc/web/web.conf\"",
            "path = \"/etc/web/web\\n.conf\"",
            "path",
            "control character",
        ),
    ];
    for (from, to, key, words) in cases {
        let site = site();
        edit(site.path(), "modules/web/module.toml", from, to);
        let run = tandem(site.path(), &["check"]);
        run.expect_code(1);
        assert!(
            run.stderr.contains("modules/web/module.toml:")
                && run.stderr.contains(&format!("`{key}`"))
                && run.stderr.contains(words),
            "{to}: {run}"
        );
    }
    // A numeric owner and a systemd instance name are fine.
    let site = site();
    edit(
        site.path(),
        "modules/web/module.toml",
        "mode = \"0644\"",
        "mode = \"0644\"\nowner = \"0\"",
    );
    edit(
        site.path(),
        "modules/web/module.toml",
        "name = \"web\"\nrunning",
        "name = \"web@main.service\"\nrunning",
    );
    edit(
        site.path(),
        "modules/web/module.toml",
        "service:web",
        "service:web@main.service",
    );
    tandem(site.path(), &["check"]).expect_code(0);
}

#[test]
fn partials_that_include_each_other_are_an_error_naming_the_cycle() {
    let site = site();
    let templates = site.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("pa.hbs"), "a\n{{> pb}}\n").unwrap();
    std::fs::write(templates.join("pb.hbs"), "b\n{{> pa}}\n").unwrap();
    edit(
        site.path(),
        "modules/web/templates/web.conf.hbs",
        "greeting",
        "{{> pa}}\ngreeting",
    );
    let nodes = site.path().join("manifests/nodes.toml");
    for args in [
        vec!["check"],
        vec![
            "--inventory",
            nodes.to_str().unwrap(),
            "catalog",
            "web-east-1",
        ],
    ] {
        let run = tandem(site.path(), &args);
        // Today's failure was a stack overflow: SIGABRT, no exit code, exit 134 in sh.
        run.expect_code(1);
        assert!(
            run.stderr
                .contains("partials include each other in a cycle: `pa` -> `pb` -> `pa`")
                && run.stderr.contains("templates/pa.hbs")
                && run.stderr.contains("templates/pb.hbs"),
            "{run}"
        );
    }
}

/// The example site's top-level `templates/` holds real site-wide partials: every file
/// the example renders starts with the `managed` header, and the folder is tracked, so
/// a fresh clone has it.
#[test]
fn every_rendered_file_of_the_example_starts_with_the_site_wide_header() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tracked = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["ls-files", "--error-unmatch", "templates/managed.hbs"])
        .output()
        .unwrap();
    assert!(
        tracked.status.success(),
        "templates/managed.hbs is not tracked: {}",
        String::from_utf8_lossy(&tracked.stderr)
    );
    let nodes: toml::Table =
        toml::from_str(&std::fs::read_to_string(repo.join("manifests/nodes.toml")).unwrap())
            .unwrap();
    let inventory = repo.join("manifests/nodes.toml");
    let mut headers = 0;
    for node in nodes["node"].as_array().unwrap() {
        let name = node["name"].as_str().unwrap();
        let args = [
            "--inventory",
            inventory.to_str().unwrap(),
            "--format",
            "json",
            "catalog",
            name,
        ];
        let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
        command.arg("--site").arg(repo).args(args);
        for (key, _) in std::env::vars() {
            if key.starts_with("TANDEM_") || key.starts_with("AWS_") || key.starts_with("AZURE_") {
                command.env_remove(key);
            }
        }
        command.env("AWS_EC2_METADATA_DISABLED", "true");
        command.env(
            "TANDEM_SECRET_MONGODB_KEYFILE",
            "integration-test-keyfile-6f1d0c",
        );
        let run = run_bounded(command, &args, Duration::from_secs(60));
        run.expect_code(0);
        let catalog: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        for resource in catalog["resources"].as_array().unwrap() {
            let Some(text) = resource["spec"]["content"]["text"].as_str() else {
                continue;
            };
            let first = text.lines().next().unwrap_or_default();
            assert!(
                (first.starts_with("# Managed by tandem (modules/")
                    || first.starts_with("// Managed by tandem (modules/"))
                    && first.ends_with(". Local changes are overwritten."),
                "{name} {}: {first}",
                resource["id"]
            );
            headers += 1;
        }
    }
    assert!(headers >= 10, "only {headers} rendered files");
}
