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
    // Names in clear (checkable without the key), values encrypted.
    assert!(
        on_disk.contains(
            "names = [\"api_token\", \"db_password\"]\n-----BEGIN AGE ENCRYPTED FILE-----"
        ) && !on_disk.contains("hunter2"),
        "{on_disk}"
    );

    let out = tandem(site.path(), Some(&identity), &["secrets", "list"], "");
    let listing = text(&out);
    assert!(out.status.success(), "{listing}");
    // Keyed with the site's digest key (created by the first `set`, kept inside the
    // encrypted file), not the plain SHA-256 prefix that would confirm a guess.
    let file =
        tandem::secret::open_secrets_file(&site.path().join("manifests/secrets.age"), &identity)
            .unwrap();
    let fingerprint = file.key.unwrap().fingerprint(value.as_bytes()).to_string();
    let plain = {
        use sha2::{Digest, Sha256};
        hex::encode(&Sha256::digest(value.as_bytes())[..4])
    };
    assert!(
        listing.contains("db_password") && listing.contains(&fingerprint),
        "{listing}"
    );
    assert!(!listing.contains(&plain), "{listing}");
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

    // Without the identity: the names, no fingerprint (not computable without the
    // key) and no value.
    let out = tandem(site.path(), None, &["secrets", "list"], "");
    let listing = text(&out);
    assert_eq!(out.status.code(), Some(0), "{listing}");
    assert!(
        listing.contains("db_password") && listing.contains("(not decrypted)"),
        "{listing}"
    );
    assert!(
        !listing.contains(&fingerprint) && !listing.contains("hunter2"),
        "{listing}"
    );
    // Editing needs the identity: a clear error, exit code 1.
    let out = tandem(site.path(), None, &["secrets", "set", "x"], "v");
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
