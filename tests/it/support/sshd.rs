//! A real OpenSSH sshd on 127.0.0.1 and a free port, with generated host and client
//! keys, for the transport tests. Needs root (sshd refuses to run otherwise) and the
//! `openssh-server` and `openssh-client` packages. Killed when dropped.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tandem::node::{DatacenterName, Node, NodeName, RoleName};
use tempfile::TempDir;

use super::wait::wait_until;

pub struct Sshd {
    dir: TempDir,
    pub port: u16,
    child: Child,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run a helper program");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Generates an ed25519 key pair at `path` (and `path.pub`).
pub fn keygen(path: &Path) {
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(path.with_extension("pub"));
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "tandem-test", "-f"])
        .arg(path));
}

impl Sshd {
    /// Starts sshd with a fresh host key and a client key it accepts for root.
    pub fn start() -> Sshd {
        Self::start_logging("VERBOSE")
    }

    /// Starts sshd with a `LogLevel`. `DEBUG1` shows every authentication request, but
    /// sshd also copies some debug lines into sessions' stderr.
    pub fn start_logging(level: &str) -> Sshd {
        assert!(
            is_root(),
            "the transport tests start sshd and must run as root"
        );
        fs::create_dir_all("/run/sshd").expect("create sshd's privilege separation dir");
        let dir = tempfile::tempdir().expect("tempdir");
        keygen(&dir.path().join("host_key"));
        keygen(&dir.path().join("client_key"));
        fs::copy(
            dir.path().join("client_key.pub"),
            dir.path().join("authorized_keys"),
        )
        .expect("authorized_keys");
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile none\n\
             UsePAM no\nStrictModes no\nAuthorizedKeysFile {d}/authorized_keys\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\nPermitRootLogin yes\nLogLevel {level}\n\
             MaxStartups 100\nMaxSessions 100\n",
            d = dir.path().display()
        );
        fs::write(dir.path().join("sshd_config"), config).expect("sshd_config");
        let child = spawn(dir.path());
        let sshd = Sshd { dir, port, child };
        sshd.wait_listening();
        sshd
    }

    /// The listening sshd's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many connections sshd is serving: the processes it forked (one per
    /// connection, which logs until it exits). Zero means every connection so far has
    /// ended and written its last log line.
    pub fn connections(&self) -> usize {
        let listener = self.pid().to_string();
        let Ok(entries) = fs::read_dir("/proc") else {
            return 0;
        };
        entries
            .filter_map(|e| fs::read_to_string(e.ok()?.path().join("stat")).ok())
            // `pid (comm) state ppid ...`; comm may hold spaces, so split after `)`. A
            // zombie has exited (and logged) already.
            .filter(|stat| {
                let fields: Vec<&str> = stat
                    .rsplit_once(')')
                    .map(|(_, rest)| rest.split_whitespace().take(2).collect())
                    .unwrap_or_default();
                fields.len() == 2 && fields[0] != "Z" && fields[1] == listener
            })
            .count()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    pub fn host_key_pub(&self) -> PathBuf {
        self.dir.path().join("host_key.pub")
    }

    /// Lets the holder of the private key behind `public_key` log in as root too.
    pub fn authorize(&self, public_key: &Path) {
        let key = fs::read_to_string(public_key).expect("public key");
        let mut keys = fs::read_to_string(self.dir.path().join("authorized_keys")).unwrap();
        keys.push_str(&key);
        fs::write(self.dir.path().join("authorized_keys"), keys).expect("authorized_keys");
    }

    /// A known_hosts line pinning the current host key, as `tandem trust` writes it.
    pub fn known_hosts_line(&self) -> String {
        let public = fs::read_to_string(self.host_key_pub()).expect("host key");
        let mut fields = public.split_whitespace();
        let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
        format!("[127.0.0.1]:{} {kind} {key}\n", self.port)
    }

    /// The fingerprint `ssh-keygen -l` prints for the host key.
    pub fn fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(self.host_key_pub())
            .output()
            .expect("ssh-keygen -l");
        let text = String::from_utf8(out.stdout).unwrap();
        text.split_whitespace().nth(1).unwrap().to_string()
    }

    pub fn node(&self, name: &str) -> Node {
        Node {
            name: NodeName::new(name).unwrap(),
            datacenter: DatacenterName::new("loopback").unwrap(),
            role: RoleName::new("test").unwrap(),
            address: "127.0.0.1".into(),
            port: self.port,
            user: None,
            facts: Default::default(),
            vars: Default::default(),
        }
    }

    /// sshd's log so far (its stderr).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Replaces the host key and restarts sshd on the same port: a rebuilt node, or an
    /// impostor.
    pub fn regenerate_host_key(&mut self) {
        self.stop();
        keygen(&self.dir.path().join("host_key"));
        self.child = spawn(self.dir.path());
        self.wait_listening();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait_listening(&self) {
        let listening = wait_until(
            Duration::from_secs(10),
            &format!("sshd to listen on port {}", self.port),
            || TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
        );
        if let Err(err) = listening {
            panic!("{err}: {}", self.log());
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(dir: &Path) -> Child {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("sshd.log"))
        .expect("sshd.log");
    Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start /usr/sbin/sshd")
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().unwrap().port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false)
}
