//! End-to-end tests of `tandem promote`, `tandem status` and the epoch guard on the
//! local fleet (issue 12): the example site in two datacenters on real hosts running
//! systemd, nginx and the demo stand-ins, in a git repository of its own. What a test
//! asserts is read on the hosts (files, modification times in nanoseconds, the
//! stand-ins' own logs, HTTP through nginx), not from tandem's output alone.

mod bench;
mod both;
mod checks;
mod partition;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::fleet::Fleet;
use crate::support::site::SiteFleet;

/// The example site on a fresh fleet of `layout`, committed to a git repository of its
/// own and applied once (exit 0).
fn promote_site(hint: &str, layout: &str) -> SiteFleet {
    let sf = SiteFleet::up(hint, layout);
    let root = sf.site();
    std::fs::write(root.join(".gitignore"), ".tandem/\n").unwrap();
    git(root, &["init", "-q", "-b", "master"]);
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", "site"]);
    sf.tandem(&["apply"]).expect_code(0);
    sf
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.invalid",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Commits every change of the site (a test's edit of `site.toml`).
fn commit_all(sf: &SiteFleet, message: &str) {
    git(sf.site(), &["commit", "-q", "-a", "-m", message]);
}

/// The hosts of `fleet` in datacenter `dc` with role `role`.
fn hosts<'f>(fleet: &'f Fleet, dc: &str, role: &str) -> Vec<&'f str> {
    fleet
        .nodes()
        .iter()
        .filter(|n| n.datacenter.as_str() == dc && n.role.as_str() == role)
        .map(|n| n.name.as_str())
        .collect()
}

/// `read_only` of the dashboard config on `host`, read on the host.
fn read_only(fleet: &Fleet, host: &str) -> bool {
    let conf = fleet.exec_ok(host, "cat /etc/dashboard/dashboard.toml");
    match conf.lines().find(|l| l.starts_with("read_only = ")) {
        Some("read_only = true") => true,
        Some("read_only = false") => false,
        other => panic!("no read_only line on {host}: {other:?}\n{conf}"),
    }
}

/// Modification time of `path` on `host`, in nanoseconds since the epoch.
fn mtime_ns(fleet: &Fleet, host: &str, path: &str) -> u128 {
    let out = fleet.exec_ok(host, &format!("stat -c %.9Y {path}"));
    let text = out.trim().replace('.', "");
    text.parse()
        .unwrap_or_else(|_| panic!("bad mtime of {path} on {host}: {out}"))
}

/// Everything tandem manages or keeps on a host, as content digests plus modification
/// and change times: equal before and after means nothing was written.
fn host_state(fleet: &Fleet, host: &str) -> String {
    fleet.exec_ok(
        host,
        "for p in /etc/nginx /etc/dashboard /etc/txserver /etc/docs /etc/mongodb /etc/mongod.conf \
         /etc/systemd/system /var/lib/tandem; do [ -e $p ] || continue; \
         find $p -type f -exec sha256sum {} + ; find $p -exec stat -c '%n %.9Y %.9Z' {} + ; done | sort",
    )
}

/// The dashboard's answer through nginx on `address` (a fleet host): `Some(read_only)`
/// from the config the stand-in serves, `None` when it did not answer (restarting).
fn dashboard_read_only(address: &str) -> Option<bool> {
    let addr = format!("{address}:80").parse().ok()?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    if !response.starts_with("HTTP/1.1 200") {
        return None;
    }
    if response.contains("read_only = true") {
        Some(true)
    } else if response.contains("read_only = false") {
        Some(false)
    } else {
        None
    }
}
