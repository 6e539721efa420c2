//! Integration tests: the SSH transport against a real OpenSSH sshd on loopback
//! (`support::sshd`, needs root): output and exit status, one connection for many
//! commands, large stdin, quoting of hostile strings, host key refusal before any
//! authentication, auth and reachability errors, and timeouts that kill the remote
//! process.

mod connecting;
mod held;
mod trust;

use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tandem::transport::quote::quote;
use tandem::transport::ssh::{JumpHost, SshConfig, SshConnector};
use tandem::transport::{Connector, TransportError};

use crate::support::sshd::{keygen, Sshd};
use crate::support::wait::wait_until_async;

const SECOND: Duration = Duration::from_secs(1);

/// A connector trusting the sshd's current host key and using its client key.
fn connector(sshd: &Sshd) -> SshConnector {
    let known_hosts = sshd.dir().join("tandem_known_hosts");
    std::fs::write(&known_hosts, sshd.known_hosts_line()).unwrap();
    connector_with(&known_hosts, &sshd.client_key())
}

fn connector_with(known_hosts: &Path, identity: &Path) -> SshConnector {
    let mut config = SshConfig::new(known_hosts.to_path_buf());
    config.identity = Some(identity.to_path_buf());
    config.connect_timeout = Duration::from_secs(5);
    SshConnector::new(config).unwrap()
}

/// Deterministic bytes that do not compress into a trivial pattern.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[tokio::test]
async fn exec_returns_output_status_over_one_connection() {
    let sshd = Sshd::start();
    let mut session = connector(&sshd).connect(&sshd.node("n1")).await.unwrap();
    let out = session
        .exec("echo out; echo err >&2; exit 3", b"", 10 * SECOND)
        .await
        .unwrap();
    assert_eq!(out.status, Some(3));
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    for i in 0..5 {
        let out = session
            .exec(&format!("echo {i}"), b"", 10 * SECOND)
            .await
            .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout, format!("{i}\n").as_bytes());
    }
    // A command killed by a signal has no status.
    let out = session.exec("kill -9 $$", b"", 10 * SECOND).await.unwrap();
    assert_eq!(out.status, None);
    assert_eq!(session.round_trips(), 7);
    let log = sshd.log();
    // One login, seven channels on it (the readiness probe of `Sshd` never logs in).
    assert_eq!(
        log.matches("Accepted publickey for root").count(),
        1,
        "{log}"
    );
    assert_eq!(log.matches("Starting session: command").count(), 7, "{log}");
}

#[tokio::test]
async fn megabytes_of_stdin_do_not_deadlock() {
    let sshd = Sshd::start();
    let mut session = connector(&sshd).connect(&sshd.node("n1")).await.unwrap();
    let input = noise(8 << 20);
    let out = session
        .exec("sha256sum", &input, 60 * SECOND)
        .await
        .unwrap();
    let expected = hex::encode(Sha256::digest(&input));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{expected}  -\n")
    );
    // Input and output both in megabytes at once: the case that deadlocks a transport
    // writing all of stdin before reading anything.
    let started = Instant::now();
    let out = session
        .exec("cat; cat >&2 </dev/null", &input, 60 * SECOND)
        .await
        .unwrap();
    eprintln!("8 MiB in and out through `cat`: {:?}", started.elapsed());
    assert!(out.success());
    assert!(
        out.stdout == input,
        "stdout differs ({} bytes)",
        out.stdout.len()
    );
    // A command that ignores its input still completes.
    let out = session
        .exec("echo ignored", &input, 60 * SECOND)
        .await
        .unwrap();
    assert_eq!(out.stdout, b"ignored\n");
}

#[test]
fn quoting_round_trips_hostile_strings_through_a_real_shell() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sshd = Sshd::start();
    let session = runtime
        .block_on(connector(&sshd).connect(&sshd.node("n1")))
        .unwrap();
    // proptest wants `Fn`; the one session is borrowed per case.
    let session = std::cell::RefCell::new(session);
    let echo = |arg: &[u8]| -> Vec<u8> {
        let command = format!("printf '%s' {}", quote(arg));
        let out = runtime
            .block_on(session.borrow_mut().exec(&command, b"", 10 * SECOND))
            .unwrap();
        assert!(
            out.success(),
            "{command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let fixed: [&[u8]; 12] = [
        b"",
        b"it's",
        b"'\"'\"",
        b"$(touch /tmp/tandem-pwned)",
        b"`id`",
        b"a\nb\n\n",
        b"-n",
        b"--help",
        b"* ? [a-z]",
        b"back\\slash\\",
        b"\xff\xfe\x80 latin1 \xe9",
        b"$HOME ${IFS} ; | & > < ! # ~",
    ];
    for arg in fixed {
        assert_eq!(echo(arg), arg, "{:?}", String::from_utf8_lossy(arg));
    }
    assert!(!Path::new("/tmp/tandem-pwned").exists());

    // A shell word cannot hold NUL, so it is the one byte left out.
    let config = Config {
        cases: 64,
        ..Config::default()
    };
    TestRunner::new(config.clone())
        .run(&proptest::collection::vec(1u8..=255, 0..64), |arg| {
            prop_assert_eq!(echo(&arg), arg);
            Ok(())
        })
        .unwrap();
    // Printable-heavy strings too, where quotes and `$` cluster.
    TestRunner::new(config)
        .run(&"[ -~\n\t'\"$`\\\\]{0,40}", |arg| {
            prop_assert_eq!(echo(arg.as_bytes()), arg.as_bytes());
            Ok(())
        })
        .unwrap();
    let trips = session.borrow().round_trips();
    assert_eq!(trips, 12 + 64 + 64, "{trips} round trips");
}

#[tokio::test]
async fn unknown_host_key_gets_no_authentication() {
    let sshd = Sshd::start_logging("DEBUG1");
    let empty = sshd.dir().join("empty_known_hosts");
    let err = match connector_with(&empty, &sshd.client_key())
        .connect(&sshd.node("n1"))
        .await
    {
        Err(err) => err,
        Ok(_) => panic!("connected to an unknown host"),
    };
    let TransportError::HostKey { node, reason } = &err else {
        panic!("expected a host key error, got {err}");
    };
    assert_eq!(node.as_str(), "n1");
    assert!(reason.contains(&sshd.fingerprint()), "{reason}");
    assert!(reason.contains("tandem trust n1"), "{reason}");
    // Once sshd's process for the connection has exited, its log is complete: then
    // check that it saw no login.
    wait_until_async(5 * SECOND, "sshd to end the refused connection", || {
        sshd.connections() == 0
    })
    .await
    .unwrap();
    let log = sshd.log();
    assert!(log.contains("Connection from 127.0.0.1"), "{log}");
    assert!(!log.contains("userauth-request"), "{log}");
    assert!(!log.contains("Accepted"), "{log}");
}

#[tokio::test]
async fn changed_host_key_is_refused() {
    let mut sshd = Sshd::start();
    let connector = connector(&sshd);
    drop(connector.connect(&sshd.node("n1")).await.unwrap());
    sshd.regenerate_host_key();
    let err = match connector.connect(&sshd.node("n1")).await {
        Err(err) => err,
        Ok(_) => panic!("connected despite a changed host key"),
    };
    let TransportError::HostKey { reason, .. } = &err else {
        panic!("expected a host key error, got {err}");
    };
    assert!(reason.contains("HOST KEY CHANGED"), "{reason}");
    assert!(reason.contains(&sshd.fingerprint()), "{reason}");
}

#[tokio::test]
async fn wrong_client_key_is_an_auth_error() {
    let sshd = Sshd::start();
    let other = sshd.dir().join("other_key");
    keygen(&other);
    let known_hosts = sshd.dir().join("kh");
    std::fs::write(&known_hosts, sshd.known_hosts_line()).unwrap();
    let err = match connector_with(&known_hosts, &other)
        .connect(&sshd.node("n1"))
        .await
    {
        Err(err) => err,
        Ok(_) => panic!("authenticated with a key sshd does not know"),
    };
    assert!(matches!(err, TransportError::Auth { .. }), "{err}");
    assert!(err.to_string().contains("`root`"), "{err}");
}

#[tokio::test]
async fn closed_port_is_unreachable_quickly() {
    let port = crate::support::sshd::free_port();
    let dir = tempfile::tempdir().unwrap();
    let connector = connector_with(&dir.path().join("kh"), &dir.path().join("key"));
    let node = tandem::node::Node {
        name: tandem::node::NodeName::new("gone").unwrap(),
        datacenter: tandem::node::DatacenterName::new("loopback").unwrap(),
        role: tandem::node::RoleName::new("test").unwrap(),
        address: "127.0.0.1".into(),
        port,
        user: None,
        facts: Default::default(),
        vars: Default::default(),
    };
    let started = Instant::now();
    let err = match connector.connect(&node).await {
        Err(err) => err,
        Ok(_) => panic!("connected to a closed port"),
    };
    assert!(matches!(err, TransportError::Unreachable { .. }), "{err}");
    assert!(started.elapsed() < SECOND, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn timed_out_command_is_killed_on_the_node() {
    let sshd = Sshd::start();
    let mut session = connector(&sshd).connect(&sshd.node("n1")).await.unwrap();
    let pids = sshd.dir().join("pids");
    let command = format!(
        "sleep 300 & echo $! > {p}; echo $$ >> {p}; wait",
        p = pids.display()
    );
    let started = Instant::now();
    let err = session
        .exec(&command, b"", Duration::from_millis(700))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Timeout { .. }), "{err}");
    assert!(
        started.elapsed() < 3 * SECOND,
        "took {:?}",
        started.elapsed()
    );
    // sshd runs on this machine, so its processes are visible here.
    let pids = std::fs::read_to_string(&pids).unwrap();
    let pids: Vec<&str> = pids.lines().collect();
    assert_eq!(pids.len(), 2, "{pids:?}");
    wait_until_async(2 * SECOND, &format!("{pids:?} to be killed"), || {
        !pids
            .iter()
            .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
    })
    .await
    .unwrap();
    // The session survives the timeout.
    let out = session.exec("echo alive", b"", 10 * SECOND).await.unwrap();
    assert_eq!(out.stdout, b"alive\n");
}

/// Connect plus one command, against OpenSSH's own client on the same sshd. Prints both
/// medians; fails only when tandem is far slower (the machine may be loaded).
#[tokio::test]
async fn connect_and_one_command_is_as_fast_as_openssh() {
    let sshd = Sshd::start();
    let connector = connector(&sshd);
    let known_hosts = sshd.dir().join("tandem_known_hosts");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        let started = Instant::now();
        let mut session = connector.connect(&sshd.node("n1")).await.unwrap();
        assert!(session
            .exec("true", b"", 10 * SECOND)
            .await
            .unwrap()
            .success());
        drop(session);
        ours.push(started.elapsed());

        let started = Instant::now();
        let status = tokio::process::Command::new("ssh")
            .args(["-F", "/dev/null", "-o", "BatchMode=yes"])
            .args(["-o", "KexAlgorithms=curve25519-sha256"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .arg("-i")
            .arg(sshd.client_key())
            .args(["-p", &sshd.port.to_string(), "root@127.0.0.1", "true"])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        theirs.push(started.elapsed());
    }
    ours.sort();
    theirs.sort();
    let (ours, theirs) = (ours[3], theirs[3]);
    let ratio = ours.as_secs_f64() / theirs.as_secs_f64();
    eprintln!("connect + `true`: tandem {ours:?}, openssh {theirs:?}, ratio {ratio:.2}");
    assert!(ratio < 2.0, "tandem {ours:?} vs openssh {theirs:?}");
}

/// Without `--identity`, keys come from ssh-agent (`SSH_AUTH_SOCK`), the operators'
/// default.
#[tokio::test]
async fn agent_keys_authenticate() {
    let sshd = Sshd::start();
    let socket = sshd.dir().join("agent.sock");
    let mut agent = std::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until_async(5 * SECOND, "ssh-agent to listen", || socket.exists())
        .await
        .unwrap();
    let added = std::process::Command::new("ssh-add")
        .arg(sshd.client_key())
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
    // Only this test reads SSH_AUTH_SOCK; the others authenticate with key files.
    std::env::set_var("SSH_AUTH_SOCK", &socket);
    let known_hosts = sshd.dir().join("kh");
    std::fs::write(&known_hosts, sshd.known_hosts_line()).unwrap();
    let connector = SshConnector::new(SshConfig::new(known_hosts)).unwrap();
    let result = connector.connect(&sshd.node("n1")).await;
    let _ = agent.kill();
    let _ = agent.wait();
    let mut session = result.unwrap();
    let out = session.exec("whoami", b"", 10 * SECOND).await.unwrap();
    assert_eq!(out.stdout, b"root\n");
}

/// Through a bastion: the bastion's key is checked, the node's key is checked end to
/// end, and the bastion's log shows the forwarding to the node.
#[tokio::test]
async fn jump_host_tunnels_to_the_node() {
    let bastion = Sshd::start_logging("DEBUG1");
    let target = Sshd::start();
    bastion.authorize(&target.client_key().with_extension("pub"));
    let known_hosts = target.dir().join("kh");
    let mut config = SshConfig::new(known_hosts.clone());
    config.identity = Some(target.client_key());
    config.jump = Some(JumpHost {
        address: "127.0.0.1".into(),
        port: bastion.port,
        user: "root".into(),
    });

    // Only the node is pinned: the unknown bastion is refused.
    std::fs::write(&known_hosts, target.known_hosts_line()).unwrap();
    let err = match SshConnector::new(config.clone())
        .unwrap()
        .connect(&target.node("n1"))
        .await
    {
        Err(err) => err,
        Ok(_) => panic!("went through an unknown bastion"),
    };
    assert!(matches!(err, TransportError::HostKey { .. }), "{err}");
    assert!(err.to_string().contains("via bastion"), "{err}");

    let both = format!(
        "{}{}",
        bastion.known_hosts_line(),
        target.known_hosts_line()
    );
    std::fs::write(&known_hosts, both).unwrap();
    let connector = SshConnector::new(config).unwrap();
    let mut session = connector.connect(&target.node("n1")).await.unwrap();
    let input = noise(1 << 20);
    for _ in 0..3 {
        let out = session.exec("cat", &input, 30 * SECOND).await.unwrap();
        assert!(
            out.stdout == input,
            "stdout differs ({} bytes)",
            out.stdout.len()
        );
    }
    let target_port = format!("target 127.0.0.1 port {}", target.port);
    assert_eq!(
        bastion.log().matches(&target_port).count(),
        1,
        "{}",
        bastion.log()
    );
    assert_eq!(
        target.log().matches("Accepted publickey for root").count(),
        1,
        "{}",
        target.log()
    );
    drop(session);
}

/// The pids of the sshd processes serving `session`'s connection: the session
/// process (the command's grandparent, above `timeout`) and its privileged monitor.
async fn connection_pids(session: &mut Box<dyn tandem::transport::Session>) -> [i32; 2] {
    let out = session
        .exec(
            "p=$(cut -d' ' -f4 /proc/$PPID/stat); echo $p $(cut -d' ' -f4 /proc/$p/stat)",
            b"",
            10 * SECOND,
        )
        .await
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let pids: Vec<i32> = text
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    [pids[0], pids[1]]
}

fn signal(pids: &[i32], name: &str) {
    for pid in pids {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} {pid}");
    }
}

#[tokio::test]
async fn dead_peer_cannot_hang_a_command() {
    let sshd = Sshd::start();
    let mut session = connector(&sshd).connect(&sshd.node("n1")).await.unwrap();
    let pids = connection_pids(&mut session).await;
    // Frozen, not closed: the socket stays open and silent, as in a partition.
    signal(&pids, "STOP");
    let started = Instant::now();
    let result = session.exec("true", b"", SECOND).await;
    signal(&pids, "CONT");
    let err = result.unwrap_err();
    assert!(matches!(err, TransportError::Timeout { .. }), "{err}");
    assert!(
        started.elapsed() < 5 * SECOND,
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn peer_frozen_mid_command_cannot_hang_it() {
    let sshd = Sshd::start();
    let mut session = connector(&sshd).connect(&sshd.node("n1")).await.unwrap();
    let pids = connection_pids(&mut session).await;
    // Frozen once the command runs on the node (it leaves a mark first).
    let mark = sshd.dir().join("running");
    let command = format!("touch {}; exec sleep 30", mark.display());
    let freezer = tokio::spawn(async move {
        wait_until_async(5 * SECOND, "the command to start on the node", || {
            mark.exists()
        })
        .await
        .unwrap();
        signal(&pids, "STOP");
    });
    let started = Instant::now();
    let result = session.exec(&command, b"", SECOND).await;
    freezer.await.unwrap();
    signal(&pids, "CONT");
    let err = result.unwrap_err();
    assert!(matches!(err, TransportError::Timeout { .. }), "{err}");
    // The timeout, plus the grace the node gets to report the kill, plus slack.
    assert!(
        started.elapsed() < Duration::from_millis(4500),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn killed_connection_is_lost_and_stays_lost() {
    let sshd = Sshd::start();
    let mut session = connector(&sshd).connect(&sshd.node("n1")).await.unwrap();
    let pids = connection_pids(&mut session).await;
    signal(&pids, "KILL");
    // No channel opens on a dead connection: certainly nothing ran (a pool may send the
    // command again on a fresh connection).
    let err = session.exec("true", b"", 10 * SECOND).await.unwrap_err();
    assert!(matches!(err, TransportError::NotSent { .. }), "{err}");
    assert!(!session.is_open());
    let started = Instant::now();
    let err = session.exec("true", b"", 10 * SECOND).await.unwrap_err();
    assert!(matches!(err, TransportError::Lost { .. }), "{err}");
    assert!(started.elapsed() < SECOND, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn silent_server_is_unreachable_within_the_connect_timeout() {
    let sshd = Sshd::start();
    let known_hosts = sshd.dir().join("kh");
    std::fs::write(&known_hosts, sshd.known_hosts_line()).unwrap();
    let mut config = SshConfig::new(known_hosts);
    config.identity = Some(sshd.client_key());
    config.connect_timeout = SECOND;
    let connector = SshConnector::new(config).unwrap();
    // The kernel still accepts the TCP connection; sshd never says hello.
    let pid = sshd.pid() as i32;
    signal(&[pid], "STOP");
    let started = Instant::now();
    let result = connector.connect(&sshd.node("n1")).await;
    signal(&[pid], "CONT");
    let err = match result {
        Err(err) => err,
        Ok(_) => panic!("connected to a frozen sshd"),
    };
    assert!(matches!(err, TransportError::Unreachable { .. }), "{err}");
    assert!(
        started.elapsed() < 3 * SECOND,
        "took {:?}",
        started.elapsed()
    );
}

/// Sessions run side by side (each on its own blocking thread): twenty nodes' worth of
/// connections and commands at once, with no mixing of outputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sessions_run_concurrently() {
    let sshd = Sshd::start();
    let connector = connector(&sshd);
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for i in 0..20 {
        let (connector, node) = (connector.clone(), sshd.node(&format!("n{i}")));
        tasks.spawn(async move {
            let mut session = connector.connect(&node).await.unwrap();
            let out = session
                .exec(&format!("sleep 1; echo {i}"), b"", 30 * SECOND)
                .await
                .unwrap();
            assert_eq!(out.stdout, format!("{i}\n").as_bytes());
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    // In series: twenty one-second sleeps plus twenty handshakes, near thirty seconds.
    let elapsed = started.elapsed();
    eprintln!("20 concurrent connect + `sleep 1`: {elapsed:?}");
    assert!(elapsed < 15 * SECOND, "took {elapsed:?}");
}

/// A node that is alive but sends nothing for several keepalive budgets (a long step
/// whose output goes to a file, with stdin waiting for it to read) is not taken for a
/// dead one: the kernel's keepalive ACKs and the SSH keepalives keep it heard. And
/// megabytes of stdin are not stalled by keepalives meeting a full socket.
#[tokio::test]
async fn a_silent_live_node_is_not_lost_and_keepalives_do_not_stall_stdin() {
    let sshd = Sshd::start();
    let known_hosts = sshd.dir().join("tandem_known_hosts");
    std::fs::write(&known_hosts, sshd.known_hosts_line()).unwrap();
    let mut config = SshConfig::new(known_hosts);
    config.identity = Some(sshd.client_key());
    config.keepalive_interval = SECOND;
    config.keepalive_count = 2;
    let connector = SshConnector::new(config).unwrap();
    let mut session = connector.connect(&sshd.node("n1")).await.unwrap();
    let started = Instant::now();
    let stdin = noise(8 << 20);
    let out = session
        .exec("sleep 5; wc -c", &stdin, 60 * SECOND)
        .await
        .unwrap_or_else(|err| panic!("a live, silent node was given up: {err}"));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "8388608");
    assert!(
        started.elapsed() < 20 * SECOND,
        "took {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let out = session
        .exec("cat | wc -c", &stdin, 60 * SECOND)
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "8388608");
    eprintln!(
        "8 MiB through stdin with 1 s keepalives: {:.1?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < 10 * SECOND,
        "took {:?}",
        started.elapsed()
    );
}

/// A command far past what an SSH exec request may carry (libssh2 refuses requests
/// past about 32 KiB) still runs whole, in one round trip, and reads its own stdin
/// exactly as a short one does: the transport ships it on stdin behind a bootstrap.
#[tokio::test]
async fn a_command_of_hundreds_of_kilobytes_runs_and_reads_its_own_stdin() {
    let sshd = Sshd::start();
    let mut session = connector(&sshd).connect(&sshd.node("n1")).await.unwrap();
    // 20,000 assignments (about 300 KiB of shell), then the input's digest.
    let mut command: String = (0..20_000).map(|i| format!("v{i}=value{i}\n")).collect();
    command.push_str("echo \"$v0 $v19999\"\nsha256sum\n");
    assert!(command.len() > 10 * tandem::transport::INLINE_COMMAND_MAX);
    let input = noise(1 << 20);
    let out = session.exec(&command, &input, 60 * SECOND).await.unwrap();
    assert!(out.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected = hex::encode(Sha256::digest(&input));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("value0 value19999\n{expected}  -\n")
    );
    // A short command is sent as it is, and exit statuses come through either way.
    let out = session
        .exec(&format!("{command}exit 7\n"), b"", 60 * SECOND)
        .await
        .unwrap();
    assert_eq!(out.status, Some(7));
    assert_eq!(session.round_trips(), 2);
}
