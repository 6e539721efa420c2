//! `tandem secrets` through the real binary: keygen, set from stdin, list, remove, and
//! that no value ever reaches its output.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn tandem(site: &Path, identity: Option<&Path>, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
    cmd.arg("--site").arg(site).args(args);
    cmd.env_remove("TANDEM_AGE_IDENTITY");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TANDEM_SECRET_") {
            cmd.env_remove(key);
        }
    }
    if let Some(identity) = identity {
        cmd.env("TANDEM_AGE_IDENTITY", identity);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn secrets_cli_creates_edits_and_lists_without_showing_values() {
    let site = tempfile::tempdir().unwrap();
    std::fs::create_dir(site.path().join("manifests")).unwrap();
    let identity = site.path().join("id.txt");

    let out = tandem(
        site.path(),
        None,
        &["secrets", "keygen", identity.to_str().unwrap()],
        "",
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("age1"));

    let value = "hunter2-integration-value";
    let out = tandem(
        site.path(),
        Some(&identity),
        &["secrets", "set", "db_password"],
        &format!("{value}\n"),
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = tandem(
        site.path(),
        Some(&identity),
        &["secrets", "set", "api_token"],
        "tok-abcdef-123456",
    );
    assert!(out.status.success(), "{}", text(&out));
    let on_disk = std::fs::read_to_string(site.path().join("manifests/secrets.age")).unwrap();
    assert!(
        on_disk.starts_with("-----BEGIN AGE ENCRYPTED FILE-----") && !on_disk.contains("hunter2")
    );

    let out = tandem(site.path(), Some(&identity), &["secrets", "list"], "");
    let listing = text(&out);
    assert!(out.status.success(), "{listing}");
    let fingerprint = tandem::secret::Fingerprint::of(value.as_bytes()).to_string();
    assert!(
        listing.contains("db_password") && listing.contains(&fingerprint),
        "{listing}"
    );
    assert!(listing.contains("api_token"), "{listing}");
    assert!(
        !listing.contains("hunter2") && !listing.contains("tok-abcdef"),
        "{listing}"
    );

    let out = tandem(
        site.path(),
        Some(&identity),
        &["secrets", "remove", "api_token"],
        "",
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = tandem(
        site.path(),
        Some(&identity),
        &["secrets", "list", "--format", "json"],
        "",
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["name"], "db_password");

    // Without the identity: a clear error, exit code 1, no value.
    let out = tandem(site.path(), None, &["secrets", "list"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("TANDEM_AGE_IDENTITY"), "{}", text(&out));

    // With the wrong identity: refused, naming the file.
    let other = site.path().join("other.txt");
    tandem(
        site.path(),
        None,
        &["secrets", "keygen", other.to_str().unwrap()],
        "",
    );
    let out = tandem(site.path(), Some(&other), &["secrets", "set", "x"], "v");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("not encrypted to this identity"),
        "{}",
        text(&out)
    );
}
