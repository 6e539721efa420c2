use std::collections::HashMap;

use super::*;
use crate::fact::protocol::{preamble, Token};
use crate::fact::NodeFacts;
use crate::node_state::rid_digest;
use crate::resource::ResourceId;

fn sample() -> AppliedState {
    let mut resources = BTreeMap::new();
    let id: ResourceId = "file:/etc/a b\n".parse().unwrap();
    resources.insert(
        rid_digest(&id),
        AppliedResource {
            desired: "ab".repeat(16),
            expect: Some("cd".repeat(16)),
            attrs: vec!["type".into(), "sum".into(), "mode".into()],
        },
    );
    resources.insert(
        rid_digest(&"exec:make".parse().unwrap()),
        AppliedResource {
            desired: "ef".repeat(16),
            expect: None,
            attrs: Vec::new(),
        },
    );
    AppliedState {
        version: FORMAT_VERSION,
        run: Some(42),
        commit: Some("0123abcd".into()),
        epoch: 7,
        side: Side::Standby,
        key: "1a2b3c4d".into(),
        at: Some("2026-12-01T11:00:00Z".into()),
        resources,
    }
}

fn sh_with(script: &str, stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new("sh")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn sh(script: &str) -> std::process::Output {
    std::process::Command::new("sh")
        .args(["-c", script])
        .output()
        .unwrap()
}

#[test]
fn render_and_parse_are_inverses() {
    let state = sample();
    let text = state.render();
    assert!(text.starts_with("tandem-applied 1\nrun 42\ncommit 0123abcd\nepoch 7\nside standby\n"));
    // Grep-safe: a path with spaces and a newline is only a hex key.
    assert!(!text.contains("/etc/a"), "{text}");
    assert_eq!(AppliedState::parse(&text).unwrap(), state);
    let id: ResourceId = "file:/etc/a b\n".parse().unwrap();
    assert_eq!(
        crate::node_state::line(&state, &id).unwrap().attrs,
        ["type", "sum", "mode"]
    );
    // Unknown keys from a later minor version are ignored.
    let later = text.replace("epoch 7\n", "epoch 7\nfuture thing\nx 1\n");
    assert_eq!(AppliedState::parse(&later).unwrap(), state);
}

#[test]
fn malformed_files_are_refused_with_the_line() {
    let good = sample().render();
    for (bad, line) in [
        ("", 1),
        ("not tandem\nepoch 1\n", 1),
        ("tandem-applied 1\nepoch x\n", 2),
        ("tandem-applied 1\nside middle\nepoch 1\n", 2),
        ("tandem-applied 1\nepoch 1\nr zz 00 - -\n", 3),
        ("tandem-applied 1\nepoch 1\nr 00 00\n", 3),
        ("tandem-applied 1\nside primary\n", 1),
    ] {
        match AppliedState::parse(bad) {
            Err(AppliedError::Malformed { line: l, .. }) => assert_eq!(l, line, "{bad:?}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    assert_eq!(
        AppliedState::parse(&good.replace("tandem-applied 1", "tandem-applied 9")),
        Err(AppliedError::Newer { found: 9 })
    );
}

#[test]
fn staleness_ignores_run_commit_and_time_only() {
    let state = sample();
    assert!(state.is_stale(None));
    let mut same = state.clone();
    same.run = Some(1);
    same.commit = None;
    same.at = None;
    assert!(!state.is_stale(Some(&same)));
    let mut other = state.clone();
    other.epoch = 8;
    assert!(state.is_stale(Some(&other)));
    let mut other = state.clone();
    other.side = Side::Primary;
    assert!(state.is_stale(Some(&other)));
    let mut other = state.clone();
    other.resources.pop_first();
    assert!(state.is_stale(Some(&other)));
}

/// The apply script's write, through a real shell: a failed step keeps its old line,
/// the file is replaced whole (no staged file left), and the probe reads it back.
#[test]
fn write_then_probe_through_a_real_shell() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    std::fs::create_dir(&state_dir).unwrap();
    let mut old = sample();
    old.epoch = 3;
    std::fs::write(state_dir.join(FILE_NAME), old.render()).unwrap();

    let mut new = sample();
    let failed = rid_digest(&"file:/etc/a b\n".parse().unwrap());
    let ok = rid_digest(&"exec:make".parse().unwrap());
    for r in new.resources.values_mut() {
        r.desired = "99".repeat(16);
    }
    let stepped: HashMap<String, usize> = [(failed.clone(), 0), (ok.clone(), 1)].into();
    let (shell, input) = write_shell(&new, &stepped);
    let script = format!(
        "STATE='{}'\nW=$(mktemp -d \"$STATE/run.XXXXXX\")\ns0=fail\ns1=ok\n{shell}cat\nrm -rf \"$W\"\n",
        state_dir.display(),
    );
    // What follows the file's bytes on stdin is the next reader's (here `cat`).
    let mut stdin = input;
    stdin.extend_from_slice(b"after\n");
    let out = sh_with(&script, &stdin);
    assert_eq!(out.stdout, b"after\n", "{out:?}");
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    let names: Vec<_> = std::fs::read_dir(&state_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from(FILE_NAME)]);
    let written =
        AppliedState::parse(&std::fs::read_to_string(state_dir.join(FILE_NAME)).unwrap()).unwrap();
    assert_eq!(written.epoch, 7);
    assert_eq!(written.resources[&ok].desired, "99".repeat(16));
    assert_eq!(written.resources[&failed], old.resources[&failed]);

    let token = Token::fixed("TOK");
    let path = RemotePath::parse(state_dir.to_str().unwrap()).unwrap();
    let probe = format!(
        "{}{}{}\n",
        preamble(&token),
        probe_shell(&path),
        Section::End.emit()
    );
    let out = sh(&probe);
    let facts = NodeFacts::parse(&out.stdout, &token).unwrap();
    assert_eq!(facts.applied.as_ref(), Some(&written));
    assert!(facts.applied_error.is_none());

    // No file: no record, no error. A corrupt file: an error, not a guess.
    std::fs::write(state_dir.join(FILE_NAME), "garbage\n").unwrap();
    let facts = NodeFacts::parse(&sh(&probe).stdout, &token).unwrap();
    assert!(facts.applied.is_none());
    assert!(facts.applied_error.as_deref().unwrap().contains("line 1"));
    std::fs::remove_file(state_dir.join(FILE_NAME)).unwrap();
    let facts = NodeFacts::parse(&sh(&probe).stdout, &token).unwrap();
    assert!(facts.applied.is_none() && facts.applied_error.is_none());
}
