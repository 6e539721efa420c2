//! Integration tests: the site model, catalogs and the `check`, `catalog` and `explain`
//! commands, on the example site at the repository's top level and on the fixture
//! sites under `tests/sites/` (`minimal/`, and `broken/<case>/` each with the lines its
//! error must contain in `expect.txt`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use proptest::prelude::*;
use serde_json::Value;
use tandem::catalog::{compile, Compiler};
use tandem::manifest::Site;

mod check;

const KEYFILE: &str = "integration-test-keyfile-6f1d0c";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    repo().join("tests/sites")
}

/// Runs the binary on `site` with a clean secret environment plus `secrets`. These
/// tests are about desired state, so the nodes come from the site's static
/// `manifests/nodes.toml` (as `--inventory`): the example's datacenters name real cloud
/// APIs, and a test never calls those. Cloud discovery has its own tests, against local
/// servers; no cloud credentials or metadata service reach this process either.
fn tandem(site: &Path, args: &[&str], secrets: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
    cmd.arg("--site").arg(site);
    let nodes = site.join("manifests/nodes.toml");
    if nodes.is_file() && !args.contains(&"--inventory") {
        cmd.arg("--inventory").arg(nodes);
    }
    cmd.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("TANDEM_") || key.starts_with("AWS_") || key.starts_with("AZURE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true");
    for (key, value) in secrets {
        cmd.env(key, value);
    }
    cmd.output().expect("run tandem")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn example(args: &[&str]) -> Output {
    tandem(&repo(), args, &[("TANDEM_SECRET_MONGODB_KEYFILE", KEYFILE)])
}

#[test]
fn broken_sites_each_give_their_error_with_file_and_line() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(fixtures().join("broken"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 9, "fixture cases: {cases:?}");
    for case in cases {
        let expect = std::fs::read_to_string(case.join("expect.txt")).unwrap();
        let out = tandem(
            &case,
            &["check"],
            &[("TANDEM_SECRET_WEB_ADMIN_PASSWORD", "pw-that-must-not-show")],
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", case.display());
        for line in expect.lines().filter(|l| !l.is_empty()) {
            assert!(
                stderr.contains(line),
                "{}: expected `{line}` in:\n{stderr}",
                case.display()
            );
        }
        assert!(!stderr.contains("pw-that-must-not-show"), "{stderr}");
    }
}

#[test]
fn minimal_and_example_sites_check_clean() {
    let out = tandem(&fixtures().join("minimal"), &["check"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = example(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("ok: 7 nodes"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn check_lists_every_error_not_only_the_first() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("minimal"), dir.path());
    let role = dir.path().join("manifests/roles/web.toml");
    let text_of = std::fs::read_to_string(&role).unwrap();
    std::fs::write(
        &role,
        text_of.replace("modules = [\"web\"]", "modules = [\"web\"]\nmodule = []"),
    )
    .unwrap();
    let module = dir.path().join("modules/web/module.toml");
    let text_of = std::fs::read_to_string(&module).unwrap();
    std::fs::write(
        &module,
        text_of.replace("type = \"service\"", "type = \"servce\""),
    )
    .unwrap();
    let out = tandem(dir.path(), &["check"], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("manifests/roles/web.toml:2: unknown field `module`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("modules/web/module.toml:15: unknown resource type `servce`"),
        "{stderr}"
    );
}

fn catalog_json(node: &str) -> Value {
    let out = example(&["--format", "json", "catalog", node]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (resource id, attribute) pairs on which two JSON catalogs differ.
fn differences(a: &Value, b: &Value) -> BTreeSet<(String, String)> {
    let resources = |c: &Value| -> Vec<Value> { c["resources"].as_array().unwrap().clone() };
    let (ra, rb) = (resources(a), resources(b));
    assert_eq!(ra.len(), rb.len());
    let mut out = BTreeSet::new();
    for (x, y) in ra.iter().zip(&rb) {
        assert_eq!(x["id"], y["id"], "same resources in the same order");
        for (key, value) in x["spec"].as_object().unwrap() {
            if &y["spec"][key] != value {
                out.insert((x["id"].as_str().unwrap().to_string(), key.clone()));
            }
        }
        for key in ["after", "notify"] {
            if x[key] != y[key] {
                out.insert((x["id"].as_str().unwrap().to_string(), key.to_string()));
            }
        }
    }
    out
}

#[test]
fn frontends_of_the_two_datacenters_differ_exactly_in_the_overlay_keys() {
    let primary = catalog_json("fe-az-1");
    let standby = catalog_json("fe-aws-1");
    let found = differences(&primary, &standby);

    let overlay: toml::Table = toml::from_str(
        &std::fs::read_to_string(repo().join("manifests/overlays/standby.toml")).unwrap(),
    )
    .unwrap();
    let ids: BTreeSet<&str> = primary["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let declared: BTreeSet<(String, String)> = overlay["may_change"]["resources"]
        .as_table()
        .unwrap()
        .iter()
        .filter(|(id, _)| ids.contains(id.as_str()))
        .flat_map(|(id, attrs)| {
            attrs
                .as_array()
                .unwrap()
                .iter()
                .map(|a| (id.clone(), a.as_str().unwrap().to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!declared.is_empty());
    assert_eq!(found, declared);
    let dashboard = |c: &Value| {
        c["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == "file:/etc/dashboard/dashboard.toml")
            .unwrap()["spec"]["content"]["text"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(dashboard(&primary).contains("read_only = false"));
    assert!(dashboard(&standby).contains("read_only = true"));
}

#[test]
fn catalog_shows_secret_content_only_as_a_fingerprint() {
    use sha2::{Digest, Sha256};
    // Neither the old plain fingerprint (a SHA-256 prefix of the value) nor a plain
    // SHA-256 of the content: both would confirm a guessed secret offline.
    let content = format!("{KEYFILE}\n");
    let plain = [
        hex::encode(&Sha256::digest(KEYFILE.as_bytes())[..4]),
        hex::encode(&Sha256::digest(content.as_bytes())[..4]),
        hex::encode(Sha256::digest(content.as_bytes())),
    ];
    for format in ["text", "json"] {
        let out = example(&["--format", format, "catalog", "db-aws-1"]);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(!stdout.contains(KEYFILE), "{stdout}");
        for plain in &plain {
            assert!(!stdout.contains(plain.as_str()), "{format}: {stdout}");
        }
        assert!(stdout.contains("/etc/mongodb/keyfile"));
    }
    let json = catalog_json("db-aws-1");
    let keyfile = json["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "file:/etc/mongodb/keyfile")
        .unwrap();
    let fingerprint = keyfile["spec"]["content"]["secrets"][0].as_str().unwrap();
    assert!(
        fingerprint.len() == 8 && fingerprint.bytes().all(|b| b.is_ascii_hexdigit()),
        "{keyfile}"
    );
    assert!(keyfile["spec"]["content"]["text"].is_null(), "{keyfile}");
    assert!(keyfile["spec"]["content"]["sha256"].is_null(), "{keyfile}");
    let json = catalog_json("db-aws-1");
    let member = json["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "file:/etc/mongodb/member.js")
        .unwrap();
    assert!(member["spec"]["content"]["text"]
        .as_str()
        .unwrap()
        .contains("priority: 0"));
}

#[test]
fn explain_lists_every_layer_that_set_a_variable() {
    let out = example(&["explain", "fe-aws-1", "dashboard_read_only"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "dashboard_read_only = true");
    assert!(
        lines[1].contains("module app-service")
            && lines[1].contains("modules/app-service/module.toml:")
    );
    assert!(lines[1].ends_with("false (overridden)"), "{stdout}");
    assert!(
        lines[2].contains("overlay standby")
            && lines[2].contains("manifests/overlays/standby.toml:")
    );
    assert!(lines[2].ends_with("true (wins)"), "{stdout}");

    let out = example(&["explain", "fe-az-1", "dashboard_read_only"]);
    assert!(text(&out.stdout).contains("= false"));
    let out = example(&["explain", "fe-az-1", "no_such_var"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn catalogs_are_in_dependency_order_with_notifications() {
    let site = Site::load(&fixtures().join("minimal")).unwrap();
    let compiler = Compiler::new(&site).unwrap();
    for node in &site.nodes {
        let catalog = compiler.compile(node).unwrap();
        let ids: Vec<String> = catalog.resources.iter().map(|r| r.id.to_string()).collect();
        assert_eq!(
            ids,
            ["package:web", "file:/etc/web/web.conf", "service:web"]
        );
        let file = &catalog.resources[1];
        assert_eq!(
            file.after
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["package:web"]
        );
        assert_eq!(
            file.notify
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["service:web"]
        );
        let service = &catalog.resources[2];
        assert!(service.after.contains(&file.id));
        assert_eq!(compile(&site, node).unwrap(), catalog);
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
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

/// Writes `text` over one manifest file of a copy of the minimal site and loads it.
fn load_with(file: &str, text: &str) {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("minimal"), dir.path());
    std::fs::write(dir.path().join(file), text).unwrap();
    if let Ok(site) = Site::load(dir.path()) {
        if let Ok(compiler) = Compiler::new(&site) {
            for node in &site.nodes {
                let _ = compiler.compile(node);
            }
        }
    }
}

const MANIFESTS: [&str; 5] = [
    "manifests/site.toml",
    "manifests/nodes.toml",
    "manifests/roles/web.toml",
    "modules/web/module.toml",
    "manifests/overlays/standby.toml",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary text in any manifest never panics the loader or the compiler.
    #[test]
    fn arbitrary_manifest_text_never_panics(which in 0..5usize, text in "\\PC{0,400}") {
        load_with(MANIFESTS[which], &text);
    }

    /// Near-valid manifests (a valid one with bytes replaced, inserted or removed)
    /// reach deeper into validation and must not panic either.
    #[test]
    fn mutated_manifests_never_panic(
        which in 0..5usize,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0..3u8, "[ -~\n]{0,3}"), 1..6),
    ) {
        let path = fixtures().join("minimal").join(MANIFESTS[which]);
        let mut text: Vec<char> = std::fs::read_to_string(path).unwrap().chars().collect();
        for (at, op, insert) in edits {
            let i = at.index(text.len().max(1)).min(text.len());
            match op {
                0 => { text.splice(i..i, insert.chars()); }
                1 => { if i < text.len() { text.remove(i); } }
                _ => { if i < text.len() { text.splice(i..=i, insert.chars()); } }
            }
        }
        load_with(MANIFESTS[which], &text.into_iter().collect::<String>());
    }
}

#[test]
fn identical_declarations_merge_and_each_instances_are_ordered() {
    let site = Site::load(&repo()).unwrap();
    let node = site
        .nodes
        .iter()
        .find(|n| n.name.as_str() == "fe-az-1")
        .unwrap();
    let catalog = compile(&site, node).unwrap();
    let position = |id: &str| {
        let found: Vec<usize> = catalog
            .resources
            .iter()
            .enumerate()
            .filter(|(_, r)| r.id.to_string() == id)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(found.len(), 1, "`{id}` once in the catalog");
        found[0]
    };
    let reload = position("exec:systemd-daemon-reload");
    for app in ["dashboard", "txserver", "docs"] {
        let unit = position(&format!("file:/etc/systemd/system/{app}.service"));
        let service = position(&format!("service:{app}"));
        let config = position(&format!("file:/etc/{app}/{app}.toml"));
        assert!(
            unit < reload && reload < service && config < service,
            "{app}"
        );
        let notified = &catalog.resources[config].notify;
        assert_eq!(
            notified.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [format!("service:{app}")]
        );
    }
    // Module `requires`: mongodb requires packages, so the packages come first.
    let store = catalog_json("db-az-1");
    let ids: Vec<&str> = store["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let at = |id: &str| ids.iter().position(|i| *i == id).unwrap();
    assert!(at("package:mongodb-org") < at("group:mongodb"), "{ids:?}");
    assert!(
        at("package:mongodb-mongosh") < at("group:mongodb"),
        "{ids:?}"
    );
    // Every resource comes after everything it must follow.
    for (i, resource) in catalog.resources.iter().enumerate() {
        for dep in &resource.after {
            assert!(
                position(&dep.to_string()) < i,
                "{} after {dep}",
                resource.id
            );
        }
    }
}

#[test]
fn every_resource_type_compiles_from_its_declaration() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("minimal"), dir.path());
    std::fs::create_dir_all(dir.path().join("modules/web/files")).unwrap();
    std::fs::write(dir.path().join("modules/web/files/motd"), "static text\n").unwrap();
    let module = dir.path().join("modules/web/module.toml");
    let mut text_of = std::fs::read_to_string(&module).unwrap();
    text_of.push_str(
        r#"
[[resource]]
type = "group"
name = "web"
gid = 990
system = true

[[resource]]
type = "user"
name = "web"
uid = 990
group = "web"
groups = ["adm"]
home = "/var/lib/web"
shell = "/usr/sbin/nologin"
system = true

[[resource]]
type = "directory"
path = "/var/lib/web/"
owner = "web"
mode = "0750"

[[resource]]
type = "file"
path = "/etc/motd"
source = "motd"
backup = false

[[resource]]
type = "symlink"
path = "/etc/web/current"
target = "../releases/{{port}}"

[[resource]]
type = "package"
name = "telnetd"
ensure = "absent"

[[resource]]
type = "package"
name = "web-tools"
version = "1.2.3"

[[resource]]
type = "exec"
name = "migrate"
command = "web-migrate --port {{port}}"
creates = "/var/lib/web/migrated"
user = "web"
cwd = "/var/lib/web"
subscribe = ["package:web-tools"]

[[resource]]
type = "service"
name = "web-worker"
running = false
enabled = false
commands = { start = "web-worker start", stop = "web-worker stop", status = "web-worker status" }
"#,
    );
    std::fs::write(&module, text_of).unwrap();
    let site = Site::load(dir.path()).unwrap();
    let catalog = compile(&site, &site.nodes[0]).unwrap();
    let json = serde_json::to_value(&catalog).unwrap();
    let find = |id: &str| -> Value {
        json["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("`{id}` in {json:#}"))
            .clone()
    };
    assert_eq!(
        find("user:web")["spec"]["groups"],
        serde_json::json!(["adm"])
    );
    assert_eq!(find("directory:/var/lib/web")["spec"]["mode"], "0750");
    assert_eq!(
        find("file:/etc/motd")["spec"]["content"]["text"],
        "static text\n"
    );
    assert_eq!(
        find("symlink:/etc/web/current")["spec"]["target"],
        "../releases/8080"
    );
    assert_eq!(find("package:telnetd")["spec"]["state"], "absent");
    assert_eq!(
        find("package:web-tools")["spec"]["state"],
        serde_json::json!({"version": "1.2.3"})
    );
    let migrate = find("exec:migrate");
    assert_eq!(migrate["spec"]["command"], "web-migrate --port 8080");
    assert_eq!(migrate["after"], serde_json::json!(["package:web-tools"]));
    assert_eq!(
        find("package:web-tools")["notify"],
        serde_json::json!(["exec:migrate"])
    );
    assert_eq!(
        find("service:web-worker")["spec"]["commands"]["status"],
        "web-worker status"
    );
    assert_eq!(find("service:web-worker")["spec"]["running"], false);
}

#[test]
fn node_variables_show_in_explain_and_are_no_parity_break() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("fleet.toml");
    let mut nodes = String::new();
    for (name, dc) in [("fe-a", "azure-westus"), ("fe-b", "aws-useast1")] {
        nodes.push_str(&format!(
            "[[node]]\nname = \"{name}\"\ndatacenter = \"{dc}\"\nrole = \"frontend\"\naddress = \"127.0.0.1\"\n"
        ));
    }
    nodes.push_str("[node.vars]\napp_command_override = \"/usr/local/bin/demo-app\"\n");
    std::fs::write(&inventory, nodes).unwrap();
    let inv = inventory.to_str().unwrap();

    let out = example(&[
        "--inventory",
        inv,
        "explain",
        "fe-b",
        "app_command_override",
    ]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("fleet.toml:12"), "{stdout}");
    assert!(stdout
        .lines()
        .last()
        .unwrap()
        .ends_with("\"/usr/local/bin/demo-app\" (wins)"));

    // A node variable is a node-level value: one node having it is no datacenter
    // difference, so parity holds (it is compared per node, as if in each datacenter).
    let out = example(&["--inventory", inv, "--format", "json", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[test]
fn shared_renderings_never_mix_up_nodes() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("minimal"), dir.path());
    let template = dir.path().join("modules/web/templates/web.conf.hbs");
    let mut source = std::fs::read_to_string(&template).unwrap();
    source.push_str("host = \"{{node.name}}\"\nworkers = {{workers}}\n");
    std::fs::write(&template, source).unwrap();
    let role = dir.path().join("manifests/roles/web.toml");
    let mut role_text = std::fs::read_to_string(&role).unwrap();
    role_text.push_str("workers = 4\n");
    std::fs::write(&role, role_text).unwrap();
    let mut site = Site::load(dir.path()).unwrap();
    // Three nodes of one datacenter: one overrides a variable the template uses, one
    // sets a variable it does not use.
    let mut second = site.nodes[0].clone();
    second.name = tandem::node::NodeName::new("web-east-2").unwrap();
    second.vars.insert("workers".into(), serde_json::json!(8));
    let mut third = site.nodes[0].clone();
    third.name = tandem::node::NodeName::new("web-east-3").unwrap();
    third
        .vars
        .insert("unrelated".into(), serde_json::json!("x"));
    site.nodes.push(second);
    site.nodes.push(third);
    let compiler = Compiler::new(&site).unwrap();
    let content = |i: usize| {
        let catalog = compiler.compile(&site.nodes[i]).unwrap();
        match &catalog
            .resource(&"file:/etc/web/web.conf".parse().unwrap())
            .unwrap()
            .spec
        {
            tandem::resource::Spec::File(f) => {
                String::from_utf8(f.content.as_ref().unwrap().bytes.clone()).unwrap()
            }
            other => panic!("{other:?}"),
        }
    };
    let (first, second, third) = (content(0), content(2), content(3));
    assert!(
        first.contains("host = \"web-east-1\"") && first.contains("workers = 4"),
        "{first}"
    );
    assert!(
        second.contains("host = \"web-east-2\"") && second.contains("workers = 8"),
        "{second}"
    );
    assert!(
        third.contains("host = \"web-east-3\"") && third.contains("workers = 4"),
        "{third}"
    );
}
