//! The MongoDB keyfile secret on the store role: it reaches the node's file with the
//! right mode, and nothing else: not the plan (text or JSON), not the apply output, not
//! a remote command line.

use super::stat;
use crate::support::site::SiteFleet;

/// Root's login shell on the watched host: sshd runs every remote command as
/// `SHELL -c COMMAND`, so this records exactly the command lines tandem sent.
const RECORDING_SHELL: &str = r#"#!/bin/sh
printf '%s\n' "$*" >> /var/log/e2e-remote-commands.log
exec /bin/sh "$@"
"#;

/// Pieces of the secret that must not appear: the whole, and any 24-byte window of it
/// (a truncated or re-wrapped leak is still a leak).
fn leaks(haystack: &str, secret: &str) -> bool {
    let bytes = secret.as_bytes();
    haystack.contains(secret)
        || bytes
            .windows(24.min(bytes.len()))
            .step_by(8)
            .any(|w| haystack.contains(std::str::from_utf8(w).unwrap_or("\u{0}")))
}

#[test]
fn mongodb_keyfile_secret_reaches_only_the_file() {
    let sf = SiteFleet::up("e2e-secrets", "azure-westus:store:1,aws-useast1:store:1");
    let fleet = &sf.fleet;
    let watched = "store-azure-1";
    let secret = sf.secret("mongodb_keyfile");
    assert!(
        secret.len() >= 24,
        "the example keyfile secret is suspiciously short"
    );

    fleet.exec_ok(
        watched,
        &format!(
            "cat > /usr/local/sbin/e2e-recording-shell <<'EOF'\n{RECORDING_SHELL}EOF\n\
             chmod 755 /usr/local/sbin/e2e-recording-shell \
             && usermod -s /usr/local/sbin/e2e-recording-shell root"
        ),
    );

    let plan = sf.tandem(&["plan"]);
    plan.expect_code(2);
    assert!(
        plan.stdout.contains("create file:/etc/mongodb/keyfile")
            && plan.stdout.contains("secret-bearing content"),
        "the plan should show the keyfile as secret-bearing\n{plan}"
    );
    let json = sf.tandem(&["plan", "--format", "json"]);
    json.expect_code(2);
    serde_json::from_str::<serde_json::Value>(&json.stdout)
        .unwrap_or_else(|e| panic!("`plan --format json` is not JSON: {e}\n{json}"));
    assert!(json.stdout.contains("/etc/mongodb/keyfile"), "{json}");
    let apply = sf.tandem(&["apply"]);
    apply.expect_code(0);
    let again = sf.tandem(&["plan"]);
    again.expect_code(0);

    for run in [&plan, &json, &apply, &again] {
        assert!(
            !leaks(&run.all_output(), &secret),
            "the secret leaked into the output of `tandem {}`",
            run.args.join(" ")
        );
    }

    let commands = fleet.exec_ok(watched, "cat /var/log/e2e-remote-commands.log");
    assert!(
        commands.lines().count() >= 2 && commands.contains("/etc/mongodb/keyfile"),
        "the recording shell saw no tandem commands (is the watch broken?):\n{commands}"
    );
    assert!(
        !leaks(&commands, &secret),
        "the secret appeared on a remote command line on {watched}"
    );

    for host in ["store-azure-1", "store-aws-1"] {
        assert_eq!(
            stat(fleet, host, "/etc/mongodb/keyfile"),
            "400 mongodb mongodb",
            "keyfile mode and owner on {host}"
        );
        let content = fleet.exec_ok(host, "cat /etc/mongodb/keyfile");
        assert!(
            content == format!("{secret}\n"),
            "the keyfile on {host} does not hold the secret (lengths {} vs {})",
            content.len(),
            secret.len() + 1
        );
        // No staged copy of the secret left anywhere under /etc/mongodb.
        let listing = fleet.exec_ok(host, "ls -a /etc/mongodb");
        assert_eq!(
            listing.split_whitespace().collect::<Vec<_>>(),
            [".", "..", "keyfile", "member.js"],
            "{host}"
        );
    }
}

/// Rotated out: the site stops putting the secret in the keyfile. The node still holds
/// the old secret content, and the next plan must not diff it in clear, neither on
/// screen nor in `plan --out`. The secret-bearing ledger (`.tandem/secret-bearing`) is
/// what knows: by path, and by a keyed digest of the content the node reports. Also:
/// a secret-bearing file without a declared mode is created 0600, and `.tandem/` is
/// private.
#[test]
fn old_secret_content_is_never_diffed_in_clear_after_rotation() {
    use std::os::unix::fs::PermissionsExt;

    let sf = SiteFleet::up("e2e-rotate", "azure-westus:store:1");
    let host = "store-azure-1";
    let secret = sf.secret("mongodb_keyfile");
    // No declared mode: secret-bearing content defaults to 0600, not 0644.
    sf.edit_site(
        "modules/mongodb/module.toml",
        "content = \"{{secret \\\"mongodb_keyfile\\\"}}\\n\"\nowner = \"mongodb\"\ngroup = \"mongodb\"\nmode = \"0400\"\n",
        "content = \"{{secret \\\"mongodb_keyfile\\\"}}\\n\"\nowner = \"mongodb\"\ngroup = \"mongodb\"\n",
    );
    sf.tandem(&["apply"]).expect_code(0);
    assert_eq!(
        stat(&sf.fleet, host, "/etc/mongodb/keyfile"),
        "600 mongodb mongodb"
    );

    let tandem_dir = sf.site().join(".tandem");
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&tandem_dir), 0o700);
    for file in [
        "history.sqlite",
        "history.sqlite-wal",
        "history.sqlite-shm",
        "secret-bearing",
        "run.lock",
    ] {
        let path = tandem_dir.join(file);
        if file.ends_with("-wal") || file.ends_with("-shm") {
            // SQLite may have checkpointed them away; when present they are private.
            if !path.exists() {
                continue;
            }
        }
        assert_eq!(mode(&path), 0o600, "{file}");
    }
    let ledger = std::fs::read_to_string(tandem_dir.join("secret-bearing")).unwrap();
    assert!(ledger.contains("path /etc/mongodb/keyfile\n"), "{ledger}");
    assert!(!leaks(&ledger, &secret));

    // Rotated: a new value (as `tandem secrets set` writes it: same file, same digest
    // key), so the old one is no longer known to redact; and the site stops using the
    // secret in the keyfile.
    let file = sf.site().join(tandem::secret::SECRETS_FILE);
    let identity = sf.site().join("manifests/DEMO-ONLY-age-identity.txt");
    let mut current = tandem::secret::open_secrets_file(&file, &identity).unwrap();
    let key = current
        .key
        .take()
        .expect("the example secrets file has a digest key");
    current.secrets.retain(|s| s.name() != "mongodb_keyfile");
    current.secrets.push(tandem::secret::Secret::new(
        "mongodb_keyfile",
        "rotated-keyfile-value-0123456789abcdef",
    ));
    tandem::secret::write_secrets_file(sf.site(), &identity, &current.secrets, &key).unwrap();
    sf.edit_site(
        "modules/mongodb/module.toml",
        "content = \"{{secret \\\"mongodb_keyfile\\\"}}\\n\"",
        "content = \"keyfile now comes from the vault agent\\n\"",
    );
    let out = sf.site().join("rotated.plan.json");
    let plan = sf.tandem(&["plan", "--out", out.to_str().unwrap()]);
    plan.expect_code(2);
    let saved = std::fs::read_to_string(&out).unwrap();
    for (what, text) in [
        ("plan output", plan.all_output()),
        ("plan --out file", saved),
    ] {
        assert!(
            !leaks(&text, &secret),
            "the old secret leaked into the {what}"
        );
        assert!(
            !text.contains("+keyfile now comes from the vault agent"),
            "the {what} shows a text diff of a file that held a secret"
        );
    }
    assert!(
        plan.stdout.contains("file:/etc/mongodb/keyfile")
            && plan.stdout.contains("the node's copy held a secret"),
        "{plan}"
    );

    // Without the path entries, the keyed digest of the node's content still matches.
    let sums: String = ledger
        .lines()
        .filter(|l| l.starts_with("sum "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!sums.is_empty(), "{ledger}");
    std::fs::write(tandem_dir.join("secret-bearing"), &sums).unwrap();
    let plan = sf.tandem(&["plan"]);
    plan.expect_code(2);
    assert!(
        !leaks(&plan.all_output(), &secret)
            && plan.stdout.contains("the node's copy held a secret"),
        "the keyed digest did not identify the node's old secret content"
    );

    // Non-vacuity: with no ledger at all (a fresh checkout), nothing knows, and the
    // plan shows the old secret in a text diff (not printed here).
    std::fs::remove_file(tandem_dir.join("secret-bearing")).unwrap();
    let plan = sf.tandem(&["plan"]);
    assert_eq!(plan.code, Some(2), "exit code of the plan without a ledger");
    assert!(
        plan.stdout
            .contains("+keyfile now comes from the vault agent")
            && leaks(&plan.stdout, &secret),
        "without a ledger the plan was expected to show the old content"
    );
}
