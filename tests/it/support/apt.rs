//! A local apt repository for end-to-end tests of the `package` resource (SPEC section
//! 13): the fleet's hosts have no route out, so the test builds a flat repository on the
//! control side and serves it over HTTP on the fleet's bridge address, the one address
//! outside the fleet that its hosts reach.
//!
//! The repository holds one real Debian package, `hello`, fetched with `apt-get download`
//! from the machine's own apt sources (cached under the test target directory, so one
//! download serves every run), and two versions of `tandem-test-greeting`, a package this
//! module builds with `dpkg-deb` so that a pin, an upgrade and a downgrade have versions
//! to move between; its name and description say it is a test fixture. The index is
//! written by `dpkg-scanpackages` (dpkg-dev, installed by `scripts/setup`). The server is
//! `python3 -m http.server`, started on a free port, polled until it answers, and killed
//! (by its own pid) on drop. `point` makes a host use this repository and nothing else.

// Shared by several test modules; not every one uses every accessor.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::fleet::Fleet;

/// The real Debian package in the repository (depends only on libc6).
pub const REAL: &str = "hello";
/// The package this module builds, in two versions.
pub const BUILT: &str = "tandem-test-greeting";
pub const OLD: &str = "1.0-1";
pub const NEW: &str = "2.0-1";
/// Where the built package records its version on a host.
pub const BUILT_MARKER: &str = "/usr/share/tandem-test-greeting/version";

/// A running repository server; stopped on drop.
pub struct AptRepo {
    dir: tempfile::TempDir,
    server: Child,
    url: String,
    log: PathBuf,
}

fn run_ok(command: &mut Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {what}: {err}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `hello`'s .deb, downloaded once into the target directory's cache.
fn real_deb() -> PathBuf {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("apt-debs");
    std::fs::create_dir_all(&cache).unwrap();
    let find = || {
        std::fs::read_dir(&cache)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{REAL}_")) && n.ends_with(".deb"))
            })
    };
    if let Some(deb) = find() {
        return deb;
    }
    let download = || {
        Command::new("apt-get")
            .args(["download", "-q", "-o", "APT::Sandbox::User=root", REAL])
            .current_dir(&cache)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    // A machine whose package lists are missing or stale gets them refreshed once.
    if !download() {
        run_ok(
            Command::new("apt-get").args(["update", "-qq"]),
            "apt-get update",
        );
        run_ok(
            Command::new("apt-get")
                .args(["download", "-q", "-o", "APT::Sandbox::User=root", REAL])
                .current_dir(&cache),
            &format!("`apt-get download {REAL}`"),
        );
    }
    find().unwrap_or_else(|| panic!("`apt-get download {REAL}` left no .deb in {cache:?}"))
}

/// Builds `tandem-test-greeting_VERSION_all.deb` in `dir`.
fn build_deb(dir: &Path, version: &str) {
    let tree = dir.join(format!("tree-{version}"));
    let marker = tree.join(BUILT_MARKER.trim_start_matches('/'));
    std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
    std::fs::write(
        tree.join("DEBIAN/control"),
        format!(
            "Package: {BUILT}\nVersion: {version}\nArchitecture: all\n\
             Maintainer: tandem tests <tests@tandem.invalid>\nSection: misc\nPriority: optional\n\
             Description: test fixture built by tandem's tests\n \
             Serves the package resource's end-to-end tests; not a Debian package.\n"
        ),
    )
    .unwrap();
    std::fs::write(&marker, format!("{version}\n")).unwrap();
    let deb = dir.join(format!("{BUILT}_{version}_all.deb"));
    run_ok(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&tree)
            .arg(&deb),
        "dpkg-deb --build",
    );
    std::fs::remove_dir_all(&tree).unwrap();
}

impl AptRepo {
    /// Builds the repository and serves it on `fleet`'s bridge address.
    pub fn serve(fleet: &Fleet) -> AptRepo {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        std::fs::create_dir_all(&root).unwrap();
        let real = real_deb();
        std::fs::copy(&real, root.join(real.file_name().unwrap())).unwrap();
        for version in [OLD, NEW] {
            build_deb(&root, version);
        }
        let index = run_ok(
            Command::new("dpkg-scanpackages")
                .args(["--multiversion", "."])
                .current_dir(&root)
                .stderr(Stdio::null()),
            "dpkg-scanpackages (from dpkg-dev; scripts/setup installs it)",
        );
        std::fs::write(root.join("Packages"), index).unwrap();

        let address = fleet.gateway_address();
        let log = dir.path().join("http.log");
        let mut server = Command::new("python3")
            .args(["-u", "-m", "http.server", "--bind", &address, "--directory"])
            .arg(&root)
            .arg("0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("cannot start python3 -m http.server");
        let port = served_port(&mut server, &log);
        let url = format!("http://{address}:{port}/");
        let socket: SocketAddr = format!("{address}:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&socket, Duration::from_millis(500)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the apt repository server on {socket} did not answer within 10s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        AptRepo {
            dir,
            server,
            url,
            log,
        }
    }

    /// `http://ADDRESS:PORT/`, the repository's URL as hosts reach it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's request log (one line per request, with the path).
    pub fn requests(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Makes `host`'s apt use this repository only: every other source is removed (in
    /// the host's own overlay layer; the machine's files are untouched), the package
    /// lists it inherited are dropped, and no proxy is used for the repository.
    pub fn point(&self, fleet: &Fleet, host: &str) {
        let address = fleet.gateway_address();
        fleet.exec_ok(
            host,
            &format!(
                "set -e\nrm -rf /etc/apt/sources.list /etc/apt/sources.list.d /var/lib/apt/lists\n\
                 mkdir -p /etc/apt/sources.list.d /var/lib/apt/lists/partial\n\
                 echo 'deb [trusted=yes] {} ./' > /etc/apt/sources.list.d/tandem-test.list\n\
                 echo 'Acquire::http::Proxy::{address} \"DIRECT\";' > /etc/apt/apt.conf.d/99tandem-test\n",
                self.url
            ),
        );
    }
}

/// Reads the port from the server's first line (`Serving HTTP on ADDR port N ...`),
/// waiting at most 10 s.
fn served_port(server: &mut Child, log: &Path) -> u16 {
    let stdout = server.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).ok();
        tx.send(line).ok();
    });
    let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
    let port = line
        .split_whitespace()
        .skip_while(|w| *w != "port")
        .nth(1)
        .and_then(|p| p.parse().ok());
    port.unwrap_or_else(|| {
        server.kill().ok();
        server.wait().ok();
        panic!(
            "the apt repository server did not say its port within 10s (said `{}`); log:\n{}",
            line.trim(),
            std::fs::read_to_string(log).unwrap_or_default()
        )
    })
}

impl Drop for AptRepo {
    fn drop(&mut self) {
        self.server.kill().ok();
        self.server.wait().ok();
    }
}
