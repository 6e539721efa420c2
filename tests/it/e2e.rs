//! End-to-end tests of `tandem plan` and `tandem apply` on the local fleet: the example
//! site converged onto real hosts running systemd, sshd and nginx (SPEC sections 5, 6 and
//! 11). Every test brings up its own small fleet (`support::site::SiteFleet`), drives the
//! real binary, and checks the result the way an operator would, on the hosts themselves
//! (`fleet.exec`, not through tandem) and over HTTP to the hosts' own addresses.

mod converge;
mod faults;
mod packages;
mod secrets;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::fleet::Fleet;
use crate::support::wait::wait_for;

/// `GET path` on port 80 of `address` (a fleet host the test created); the status line
/// and the body. Retries for a few seconds while the stand-ins behind nginx start.
fn http_get(address: &str, path: &str) -> (String, String) {
    let mut last = String::new();
    let what = format!("GET http://{address}{path} to answer 200");
    let got = wait_for(Duration::from_secs(10), &what, || {
        match try_get(address, path) {
            Ok((status, body)) if status.contains(" 200 ") => return Some((status, body)),
            Ok((status, body)) => last = format!("{status}\n{body}"),
            Err(err) => last = err.to_string(),
        }
        None
    });
    got.unwrap_or_else(|err| panic!("{err}; last: {last}"))
}

fn try_get(address: &str, path: &str) -> std::io::Result<(String, String)> {
    let addr = format!("{address}:80")
        .parse()
        .expect("a fleet host address");
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    Ok((
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    ))
}

/// `stat` of a path on a host: `MODE OWNER GROUP` (mode in octal, as `ls -l` would show).
fn stat(fleet: &Fleet, host: &str, path: &str) -> String {
    fleet
        .exec_ok(host, &format!("stat -c '%a %U %G' {path}"))
        .trim()
        .to_string()
}

fn sha256(fleet: &Fleet, host: &str, path: &str) -> String {
    fleet
        .exec_ok(host, &format!("sha256sum {path}"))
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// How many times nginx was told to reload on this host (`nginx -s reload`, which the
/// Debian unit's `ExecReload` runs, logs "signal process started"). `systemctl reload`
/// returns once `ExecReload` has, and `journalctl --sync` once journald has stored
/// what was logged before it: so no reload that already happened can be missing.
fn nginx_reloads(fleet: &Fleet, host: &str) -> usize {
    fleet
        .exec_ok(
            host,
            "journalctl --sync && journalctl -u nginx --no-pager -o cat",
        )
        .lines()
        .filter(|l| l.contains("signal process started"))
        .count()
}

/// Waits (bounded) until the journal shows at least `expected` reloads, then returns
/// the count, which may be more (callers assert it); after the deadline, the count
/// there is.
fn nginx_reloads_settled(fleet: &Fleet, host: &str, expected: usize) -> usize {
    let what = format!("{expected} nginx reloads on {host}");
    wait_for(Duration::from_secs(5), &what, || {
        let count = nginx_reloads(fleet, host);
        (count >= expected).then_some(count)
    })
    .unwrap_or_else(|_| nginx_reloads(fleet, host))
}

/// nginx's master pid and its sorted worker pids.
fn nginx_pids(fleet: &Fleet, host: &str) -> (String, Vec<String>) {
    let master = fleet.exec_ok(host, "cat /run/nginx.pid").trim().to_string();
    let mut workers: Vec<String> = fleet
        .exec_ok(host, &format!("pgrep -P {master} || true"))
        .split_whitespace()
        .map(String::from)
        .collect();
    workers.sort();
    (master, workers)
}
