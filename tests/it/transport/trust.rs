//! `tandem trust` run as a binary against a real sshd: a wrong fingerprint pins
//! nothing, the right one pins a key the transport then accepts, a second run reports
//! it pinned, a changed key is refused until `--replace`, and nothing is pinned
//! without a fingerprint, `--yes` or a terminal.

use std::path::Path;
use std::process::{Command, Output};

use tandem::transport::ssh::{SshConfig, SshConnector};
use tandem::transport::Connector;

use crate::support::sshd::Sshd;

/// A site with one static datacenter and an inventory naming the sshd as `lo-1`.
fn site(sshd: &Sshd) -> tempfile::TempDir {
    let site = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(site.path().join("manifests")).unwrap();
    std::fs::write(
        site.path().join("manifests/site.toml"),
        "[site]\nname = \"trust-test\"\n\n[datacenters.loopback]\nprimary = true\n\
         provider = \"static\"\n",
    )
    .unwrap();
    std::fs::write(
        site.path().join("inventory.toml"),
        format!(
            "[[node]]\nname = \"lo-1\"\ndatacenter = \"loopback\"\nrole = \"test\"\n\
             address = \"127.0.0.1\"\nport = {}\n",
            sshd.port
        ),
    )
    .unwrap();
    site
}

fn trust(site: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("--site")
        .arg(site)
        .arg("--inventory")
        .arg(site.join("inventory.toml"))
        .arg("trust")
        .args(args)
        .env_remove("TANDEM_KNOWN_HOSTS")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn trust_pins_only_the_confirmed_key() {
    let mut sshd = Sshd::start();
    let site = site(&sshd);
    let known_hosts = site.path().join(".tandem/known_hosts");
    let fingerprint = sshd.fingerprint();

    let wrong = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
    let out = trust(site.path(), &["lo-1", "--fingerprint", wrong]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains(&fingerprint), "{}", text(&out));
    assert!(!known_hosts.exists());

    // Not a terminal and nothing to compare with: refused.
    let out = trust(site.path(), &["lo-*"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(!known_hosts.exists());

    let out = trust(site.path(), &["lo-*", "--fingerprint", &fingerprint]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("lo-1 [127.0.0.1]:"), "{}", text(&out));
    let pinned = std::fs::read_to_string(&known_hosts).unwrap();
    assert_eq!(pinned.lines().count(), 1, "{pinned}");

    // The transport accepts what was pinned.
    let mut config = SshConfig::new(known_hosts.clone());
    config.identity = Some(sshd.client_key());
    let connector = SshConnector::new(config).unwrap();
    let mut session = connector.connect(&sshd.node("lo-1")).await.unwrap();
    let out = session
        .exec("echo pinned", b"", std::time::Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"pinned\n");

    let out = trust(site.path(), &["@test", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("already-pinned"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&known_hosts).unwrap(), pinned);

    sshd.regenerate_host_key();
    let out = trust(site.path(), &["lo-1", "--yes"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("HOST KEY CHANGED"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&known_hosts).unwrap(), pinned);

    let out = trust(
        site.path(),
        &["lo-1", "--replace", "--fingerprint", &sshd.fingerprint()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("replaced"), "{}", text(&out));
    let replaced = std::fs::read_to_string(&known_hosts).unwrap();
    assert_eq!(replaced.lines().count(), 1, "{replaced}");
    assert_ne!(replaced, pinned);
}

#[test]
fn unreachable_node_exits_4() {
    let sshd = Sshd::start();
    let site = site(&sshd);
    drop(sshd);
    let out = trust(site.path(), &["lo-1", "--yes"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("unreachable"), "{}", text(&out));
}

/// A node name holding a newline once became a second known_hosts line, pinning an
/// attacker's key for another address. Now such an inventory is refused before any
/// host is contacted, nothing is written, and the good node pins once it is fixed.
#[test]
fn trust_refuses_a_node_name_that_would_forge_a_known_hosts_line() {
    let sshd = Sshd::start();
    let site = site(&sshd);
    let known_hosts = site.path().join(".tandem/known_hosts");
    let forged = "lo-2\\n10.0.0.66 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEvilEvilEvilEvilEvilEvilEvilEvilEvilEvil";
    let inventory = site.path().join("inventory.toml");
    let good = std::fs::read_to_string(&inventory).unwrap();
    std::fs::write(
        &inventory,
        // First, so that on a tandem without the checks its key would be the one pinned,
        // with the forged second line after it.
        format!(
            "[[node]]\nname = \"{forged}\"\ndatacenter = \"loopback\"\nrole = \"test\"\n\
             address = \"127.0.0.1\"\nport = {}\n\n{good}",
            sshd.port
        ),
    )
    .unwrap();
    let out = trust(site.path(), &["*", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("key `name`: node name `lo-2\\n10.0.0.66"),
        "{}",
        text(&out)
    );
    assert!(!known_hosts.exists(), "nothing may be pinned");

    // An address that would be read as an option is refused the same way.
    std::fs::write(&inventory, good.replace("127.0.0.1", "-oProxyCommand=x")).unwrap();
    let out = trust(site.path(), &["*", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("key `address`"), "{}", text(&out));
    assert!(!known_hosts.exists());

    std::fs::write(&inventory, &good).unwrap();
    let out = trust(site.path(), &["*", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let pinned = std::fs::read_to_string(&known_hosts).unwrap();
    assert_eq!(pinned.lines().count(), 1, "{pinned}");
    assert!(pinned.trim_end().ends_with(" lo-1"), "{pinned}");
}
