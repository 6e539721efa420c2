//! A held command over a real sshd (`Session::hold`, `Session::resume`): how an apply's
//! settling probe carries its script. Both halves are one command (sshd logs one
//! session), the input given to the hold reaches the command whole and before the
//! resumption's, closing the input lets the command end, a command that exits before
//! its marker is not held, and the node's own bound (`whole`) kills a held command
//! that is never resumed.

use super::*;

fn digest(bytes: &[u8]) -> String {
    format!("{}  -\n", hex::encode(Sha256::digest(bytes)))
}

#[tokio::test]
async fn a_held_command_takes_its_second_input_on_the_same_channel() {
    let sshd = Sshd::start();
    let mut s = connector(&sshd).connect(&sshd.node("n1")).await.unwrap();
    let (first, second) = (noise(1 << 20), noise(3 << 20));
    // The first half reads exactly its input (`head -c`), then the marker; the second
    // reads the rest to its end.
    let out = s
        .hold(
            "head -c 1048576 | sha256sum; printf 'HELD\\n'; sha256sum",
            &first,
            b"HELD\n",
            30 * SECOND,
            60 * SECOND,
        )
        .await
        .unwrap()
        .expect("the SSH transport holds commands");
    assert!(s.holding());
    assert!(
        !s.is_open(),
        "a pool must not hand out a session that holds"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}HELD\n", digest(&first))
    );
    let rest = s.resume(&second, 30 * SECOND).await.unwrap();
    assert!(!s.holding());
    assert_eq!(rest.status, Some(0));
    assert_eq!(String::from_utf8_lossy(&rest.stdout), digest(&second));
    assert_eq!(
        s.round_trips(),
        1,
        "a held command and its resumption are one"
    );
    let after = s.exec("echo after", b"", 10 * SECOND).await.unwrap();
    assert_eq!(after.stdout, b"after\n");
    let log = sshd.log();
    assert_eq!(log.matches("Starting session: command").count(), 2, "{log}");
}

#[tokio::test]
async fn input_the_first_half_leaves_unread_still_comes_first_and_whole() {
    let sshd = Sshd::start();
    let mut s = connector(&sshd).connect(&sshd.node("n1")).await.unwrap();
    // The marker comes at once; all 2 MiB must still go in before the hold returns,
    // and ahead of what the resumption sends.
    let (first, second) = (noise(2 << 20), b"and the rest".to_vec());
    let out = s
        .hold(
            "printf 'HELD\\n'; sha256sum",
            &first,
            b"HELD\n",
            30 * SECOND,
            60 * SECOND,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.stdout, b"HELD\n");
    let rest = s.resume(&second, 30 * SECOND).await.unwrap();
    let whole: Vec<u8> = first.iter().chain(&second).copied().collect();
    assert_eq!(String::from_utf8_lossy(&rest.stdout), digest(&whole));
}

#[tokio::test]
async fn closing_the_input_ends_it_and_an_early_exit_is_not_held() {
    let sshd = Sshd::start();
    let mut s = connector(&sshd).connect(&sshd.node("n1")).await.unwrap();
    let held = "printf 'HELD\\n'; if read -r line; then echo \"ran $line\"; else exit 7; fi";
    s.hold(held, b"", b"HELD\n", 10 * SECOND, 30 * SECOND)
        .await
        .unwrap()
        .unwrap();
    let released = s.resume(b"", 10 * SECOND).await.unwrap();
    assert_eq!(released.status, Some(7), "{released:?}");
    assert!(released.stdout.is_empty(), "{released:?}");
    // A command that ends before its marker comes back whole, and nothing is held.
    let early = s
        .hold(
            "echo early; exit 3",
            b"",
            b"HELD\n",
            10 * SECOND,
            30 * SECOND,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (early.status, early.stdout.as_slice()),
        (Some(3), &b"early\n"[..])
    );
    assert!(!s.holding());
    let err = s.resume(b"", 10 * SECOND).await.unwrap_err();
    assert!(err.to_string().contains("no command is held"), "{err}");
}

#[tokio::test]
async fn the_node_kills_a_held_command_at_its_whole_bound() {
    let sshd = Sshd::start();
    let mut s = connector(&sshd).connect(&sshd.node("n1")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("outlived");
    let command = format!(
        "printf 'HELD\\n'; read -r line; sleep 30; touch {}",
        marker.display()
    );
    let started = Instant::now();
    s.hold(&command, b"", b"HELD\n", 10 * SECOND, 2 * SECOND)
        .await
        .unwrap()
        .unwrap();
    let err = s.resume(b"go\n", 60 * SECOND).await.unwrap_err();
    assert!(matches!(err, TransportError::Timeout { .. }), "{err}");
    assert!(
        started.elapsed() < 20 * SECOND,
        "killed at its bound, not at the resumption's: {:?}",
        started.elapsed()
    );
    assert!(!marker.exists());
}
