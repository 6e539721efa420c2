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
