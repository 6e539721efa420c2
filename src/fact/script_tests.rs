use super::*;

#[test]
fn tokens_differ() {
    assert_ne!(Token::random(), Token::random());
    assert!(Token::random().as_str().len() > 20);
}

#[test]
fn one_stat_and_one_sum_for_many_files() {
    let mut b = ProbeBuilder::new(Token::fixed("TOK"));
    for i in 0..20 {
        let p = RemotePath::parse(&format!("/etc/f{i}")).unwrap();
        b.stat(&p);
        b.content_if_differs(i, &p, "00");
    }
    let (script, stdin) = b.finish();
    assert!(stdin.is_empty());
    assert_eq!(script.matches("stat --printf").count(), 1);
    assert_eq!(script.matches("sha256sum").count(), 1);
    assert!(script.contains("'/etc/f19'"));
}

#[test]
fn one_systemctl_for_many_units() {
    let mut b = ProbeBuilder::new(Token::fixed("TOK"));
    for (i, unit) in ["nginx", "dash board", "docs"].iter().enumerate() {
        b.unit(i, unit);
    }
    let (script, _) = b.finish();
    assert_eq!(script.matches("systemctl").count(), 1);
    assert!(script.contains("echo 'r0 r1 r2'"));
    assert!(script.contains("-- 'nginx' 'dash board' 'docs' 2>/dev/null"));
}

/// The probe's account part run by a real `sh` against this machine's own NSS.
fn run(b: ProbeBuilder) -> crate::fact::NodeFacts {
    let (script, _) = b.finish();
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    crate::fact::NodeFacts::parse(&out.stdout, &Token::fixed("TOK")).unwrap()
}

#[test]
fn one_getent_each_for_all_accounts() {
    let mut b = ProbeBuilder::new(Token::fixed("TOK"));
    for user in ["root", "tandem-no-such-user", "roo"] {
        b.user(user);
    }
    for group in ["root", "tandem-no-such-group"] {
        b.group(group);
    }
    let (script, _) = b.clone().finish();
    assert_eq!(script.matches("getent passwd").count(), 1);
    assert_eq!(script.matches("getent group").count(), 1);
    assert!(script.contains("-- 'roo' 'root' 'tandem-no-such-user' 2>/dev/null"));
    let facts = run(b);
    let a = &facts.accounts;
    let root = a.user("root").unwrap();
    assert_eq!((root.uid.as_str(), root.gid.as_str()), ("0", "0"));
    assert_eq!(a.primary_group(root), "root");
    assert_eq!(a.groups_of("root").unwrap()[0], "root");
    assert_eq!(a.group("root").unwrap().gid, "0");
    assert!(a.user("tandem-no-such-user").is_none());
    assert!(a.user("roo").is_none());
    assert!(a.group("tandem-no-such-group").is_none());
}

#[test]
fn users_alone_ask_for_their_primary_gids_and_never_enumerate() {
    let mut b = ProbeBuilder::new(Token::fixed("TOK"));
    b.user("root");
    let facts = run(b);
    // Gid 0 was asked for by number: its group names the primary group.
    assert_eq!(
        facts
            .accounts
            .primary_group(facts.accounts.user("root").unwrap()),
        "root"
    );
    // Only missing users: no gid, so no group query at all (a bare `getent group`
    // would list the whole database).
    let mut b = ProbeBuilder::new(Token::fixed("TOK"));
    b.user("tandem-no-such-user");
    let (script, _) = b.clone().finish();
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let group = text.split("TOK group\n").nth(1).unwrap();
    assert_eq!(group, "\nTOK end\n");
}

/// Runs `script` with `stdin` in a real `sh`, then prints what it left of stdin.
fn run_with_stdin(script: &str, stdin: &[u8]) -> (crate::fact::NodeFacts, String) {
    use std::io::Write;
    let mut child = std::process::Command::new("sh")
        .args(["-c", &format!("{script}printf 'rest='; cat")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rest = text.rsplit_once("rest=").unwrap().1.to_string();
    let facts = crate::fact::NodeFacts::parse(&out.stdout, &Token::fixed("TOK")).unwrap();
    (facts, rest)
}

#[test]
fn secret_bytes_are_read_from_stdin_only_when_a_secret_file_differs() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&a, "key=1\n").unwrap();
    std::fs::write(&b, "user=x\npass=old\n").unwrap();
    let probe = |b_wanted: &[u8]| {
        let mut p = ProbeBuilder::new(Token::fixed("TOK"));
        for (i, (path, want)) in [(&a, &b"key=1\n"[..]), (&b, b_wanted)].iter().enumerate() {
            let path = RemotePath::parse(path.to_str().unwrap()).unwrap();
            let sum = hex::encode(Sha256::digest(want));
            p.lines_if_differs(i, &path, want, &sum);
        }
        p.finish()
    };
    // In sync: no `head`, stdin left whole.
    let (script, stdin) = probe(b"user=x\npass=old\n");
    let (facts, rest) = run_with_stdin(&script, &stdin);
    assert_eq!(rest.as_bytes(), &stdin[..]);
    assert!(facts.section(Section::Lines(0)).is_none());
    assert!(facts.section(Section::Lines(1)).is_none());
    // The second differs: the first's bytes are skipped, the second's diffed.
    let (script, stdin) = probe(b"user=x\npass=new\n");
    let (facts, rest) = run_with_stdin(&script, &stdin);
    assert_eq!(rest, "");
    assert!(facts.section(Section::Lines(0)).is_none());
    assert_eq!(facts.section(Section::Lines(1)), Some(&b"-2\n+2\n"[..]));
}

/// The package cache run by a real `sh` against this machine's own dpkg database (the
/// test machines are Debian, as nodes are), in a state directory whose name needs
/// quoting: a read-only probe writes nothing, an apply's probe stores the answer, and
/// every probe reads the same packages as one that always queries. (The fleet test
/// `packages` checks hits, misses and dpkg's changes.)
#[test]
fn package_cache_reads_what_dpkg_query_reads_and_only_writes_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state 'dir' $x");
    std::fs::create_dir(&state).unwrap();
    let state = RemotePath::parse(state.to_str().unwrap()).unwrap();
    let cached = |cache: PackageCache| {
        let mut b = ProbeBuilder::new(Token::fixed("TOK"));
        b.package_cache(cache);
        for name in ["dpkg", "tandem-no-such-package"] {
            b.package(name);
        }
        run(b).packages
    };
    let file = std::path::Path::new(state.as_str()).join(PACKAGE_CACHE);
    let always = cached(PackageCache::Off);
    assert!(always.contains_key("dpkg"), "{always:?}");
    assert_eq!(cached(PackageCache::Read(state.clone())), always);
    assert!(!file.exists(), "a read-only probe wrote the cache");
    assert_eq!(cached(PackageCache::Write(state.clone())), always);
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(stored.ends_with("\n.end\n"), "{stored}");
    assert!(
        stored
            .lines()
            .next()
            .unwrap()
            .ends_with(" dpkg tandem-no-such-package"),
        "{stored}"
    );
    assert_eq!(cached(PackageCache::Read(state.clone())), always);
    assert_eq!(cached(PackageCache::Write(state.clone())), always);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), stored);
    // Nothing else was left in the directory (the temporary file was renamed).
    assert_eq!(std::fs::read_dir(state.as_str()).unwrap().count(), 1);
}
