use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;

use super::*;

const KEYFILE: &str = "c2VjcmV0LWtleWZpbGUtbGluZS1vbmUtYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo=\n\
                       bGluZS10d28tb2YtdGhlLWtleWZpbGUtMDEyMzQ1Njc4OS1BQkNERUZHSElKS0xNTk9Q\n";

/// A site root with an identity file; returns (root, identity path, recipient).
fn site() -> (tempfile::TempDir, PathBuf, age::x25519::Recipient) {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("manifests")).unwrap();
    let identity = age::x25519::Identity::generate();
    let path = root.path().join("identity.txt");
    std::fs::write(
        &path,
        format!(
            "# created: in a test\n# public key: {}\n{}\n",
            identity.to_public(),
            identity.to_string().expose_secret()
        ),
    )
    .unwrap();
    (root, path, identity.to_public())
}

fn encrypt(root: &Path, recipient: &age::x25519::Recipient, plaintext: &str, armor: bool) {
    let bytes = if armor {
        age::encrypt_and_armor(recipient, plaintext.as_bytes())
            .unwrap()
            .into_bytes()
    } else {
        age::encrypt(recipient, plaintext.as_bytes()).unwrap()
    };
    std::fs::File::create(root.join(SECRETS_FILE))
        .unwrap()
        .write_all(&bytes)
        .unwrap();
}

fn sources(identity: Option<&Path>, env: &[(&str, &str)]) -> SecretSources {
    SecretSources {
        identity: identity.map(Path::to_path_buf),
        env: env
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect(),
    }
}

fn plaintext() -> String {
    format!("mongodb_keyfile = \"\"\"\n{KEYFILE}\"\"\"\ndashboard_session_key = \"s3ss10n-k3y-value\"\n")
}

#[test]
fn age_file_round_trips_armored_and_binary() {
    for armor in [true, false] {
        let (root, identity, recipient) = site();
        encrypt(root.path(), &recipient, &plaintext(), armor);
        let store = SecretStore::load_from(root.path(), &sources(Some(&identity), &[])).unwrap();
        assert_eq!(store.get("mongodb_keyfile").unwrap().expose(), KEYFILE);
        assert_eq!(
            store.get("dashboard_session_key").unwrap().expose(),
            "s3ss10n-k3y-value"
        );
        assert_eq!(store.iter().count(), 2);
        assert!(store.locked().is_none());
    }
}

#[test]
fn environment_wins_over_the_file_and_is_lowercased() {
    let (root, identity, recipient) = site();
    encrypt(root.path(), &recipient, &plaintext(), true);
    let env = [
        ("TANDEM_SECRET_DASHBOARD_SESSION_KEY", "from-env"),
        ("TANDEM_SECRET_EXTRA", "only-env"),
        ("UNRELATED", "x"),
    ];
    let store = SecretStore::load_from(root.path(), &sources(Some(&identity), &env)).unwrap();
    assert_eq!(
        store.get("dashboard_session_key").unwrap().expose(),
        "from-env"
    );
    assert_eq!(store.get("extra").unwrap().expose(), "only-env");
    assert!(store.get("unrelated").is_none());
}

#[test]
fn without_identity_the_store_is_locked_and_fails_only_on_use() {
    let (root, _identity, recipient) = site();
    encrypt(root.path(), &recipient, &plaintext(), true);
    let env = [("TANDEM_SECRET_FROM_ENV", "v")];
    let store = SecretStore::load_from(root.path(), &sources(None, &env)).unwrap();
    assert_eq!(
        store.locked(),
        Some(root.path().join(SECRETS_FILE).as_path())
    );
    assert_eq!(store.require("from_env").unwrap().expose(), "v");
    let err = store.require("mongodb_keyfile").unwrap_err().to_string();
    assert!(err.contains("`mongodb_keyfile`"), "{err}");
    assert!(err.contains("TANDEM_AGE_IDENTITY"), "{err}");
    assert!(err.contains("TANDEM_SECRET_MONGODB_KEYFILE"), "{err}");
}

#[test]
fn no_file_means_unknown_not_locked() {
    let (root, _identity, _) = site();
    let store = SecretStore::load_from(root.path(), &sources(None, &[])).unwrap();
    assert!(store.locked().is_none());
    let err = store.require("nope").unwrap_err().to_string();
    assert_eq!(
        err,
        "unknown secret `nope`: add it with `tandem secrets set nope` or set TANDEM_SECRET_NOPE"
    );
}

#[test]
fn wrong_identity_is_an_error_naming_both_files() {
    let (root, _identity, recipient) = site();
    encrypt(root.path(), &recipient, &plaintext(), true);
    let (_other_root, other_identity, _) = site();
    let err = SecretStore::load_from(root.path(), &sources(Some(&other_identity), &[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("secrets.age"), "{err}");
    assert!(err.contains("not encrypted to this identity"), "{err}");
    assert!(err.contains(&other_identity.display().to_string()), "{err}");
}

#[test]
fn malformed_plaintext_errors_name_key_or_line_never_value() {
    let (root, identity, recipient) = site();
    encrypt(
        root.path(),
        &recipient,
        "a = \"fine\"\nport = 27017\n",
        true,
    );
    let err = SecretStore::load_from(root.path(), &sources(Some(&identity), &[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("secret `port`") && err.contains("not a string"),
        "{err}"
    );
    assert!(!err.contains("27017"), "{err}");

    encrypt(
        root.path(),
        &recipient,
        "a = \"fine\"\nb = \"hunter2-unterminated\n",
        true,
    );
    let err = SecretStore::load_from(root.path(), &sources(Some(&identity), &[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn a_secret_never_shows_in_debug_or_errors() {
    let secret = Secret::new("db_password", "hunter2-very-secret");
    let mut store = SecretStore::default();
    store.insert(secret.clone());
    for text in [
        format!("{secret:?}"),
        format!("{store:?}"),
        format!("{store:#?}"),
    ] {
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains(&secret.fingerprint().marker()), "{text}");
    }
    let err = SecretError::Locked {
        name: "db_password".into(),
        path: "manifests/secrets.age".into(),
    };
    assert!(!format!("{err} {err:?}").contains("hunter2"));
}

#[test]
fn redact_and_found_in_see_whole_and_reindented_values() {
    let mut store = SecretStore::default();
    store.insert(Secret::new("keyfile", KEYFILE));
    store.insert(Secret::new("password", "hunter2-very-secret"));
    let fp = store.get("keyfile").unwrap().fingerprint().clone();

    let text = format!("pass: hunter2-very-secret\nkey: |\n{KEYFILE}");
    let redacted = store.redact(&text);
    assert!(
        !redacted.contains("hunter2") && !redacted.contains("c2VjcmV0"),
        "{redacted}"
    );
    assert!(redacted.contains(&fp.marker()), "{redacted}");
    assert_eq!(store.found_in(&text).len(), 2);

    // Re-indented inside YAML: the value as a whole is no longer there, its lines are.
    let indented: String = KEYFILE.lines().map(|l| format!("    {l}\n")).collect();
    assert!(!indented.contains(KEYFILE));
    let found = store.found_in(&indented);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name(), "keyfile");
    assert!(!store.redact(&indented).contains("bGluZS10d28t"));

    assert!(store.found_in("nothing here").is_empty());
    assert_eq!(store.redact("nothing here"), "nothing here");
}

#[test]
fn fingerprint_is_short_stable_and_distinct() {
    let a = Fingerprint::of(b"one");
    assert_eq!(a.as_str().len(), 8);
    assert_eq!(a, Fingerprint::of(b"one"));
    assert_ne!(a, Fingerprint::of(b"two"));
    assert_eq!(a.marker(), format!("[secret {a}]"));
}

#[test]
fn write_then_load_round_trips_to_listed_recipients() {
    let (root, identity, _) = site();
    // Without a recipients file: encrypted to the identity itself.
    let secrets = [
        Secret::new("mongodb_keyfile", KEYFILE),
        Secret::new("quote", "with \"quotes\" and 'apostrophes' \\ back"),
    ];
    let key = DigestKey::generate().unwrap();
    write_secrets_file(root.path(), &identity, &secrets, &key).unwrap();
    let text = std::fs::read_to_string(root.path().join(SECRETS_FILE)).unwrap();
    assert!(text.starts_with("# tandem secrets"), "{text}");
    assert!(text
        .contains("names = [\"mongodb_keyfile\", \"quote\"]\n-----BEGIN AGE ENCRYPTED FILE-----"));
    assert!(!text.contains("c2VjcmV0") && !text.contains(key.to_hex().as_str()));
    let store = SecretStore::load_from(root.path(), &sources(Some(&identity), &[])).unwrap();
    assert_eq!(store.get("mongodb_keyfile").unwrap().expose(), KEYFILE);
    assert_eq!(store.get("quote").unwrap().expose(), secrets[1].expose());
    // Fingerprints are keyed with the file's digest key.
    assert_eq!(
        store.get("quote").unwrap().fingerprint(),
        &key.fingerprint(secrets[1].expose().as_bytes())
    );
    assert_eq!(
        store.key().unwrap().content_digest(b"x"),
        key.content_digest(b"x")
    );

    // With one: a second identity listed there can read it too.
    let (_other, other_identity, other_recipient) = site();
    let own = identity_public(&identity);
    std::fs::write(
        root.path().join(RECIPIENTS_FILE),
        format!("# team\n{own}\n\n{other_recipient}\n"),
    )
    .unwrap();
    write_secrets_file(root.path(), &identity, &secrets[..1], &key).unwrap();
    for id in [&identity, &other_identity] {
        let store = SecretStore::load_from(root.path(), &sources(Some(id), &[])).unwrap();
        assert_eq!(store.iter().count(), 1);
    }
}

fn identity_public(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    line.parse::<age::x25519::Identity>()
        .unwrap()
        .to_public()
        .to_string()
}

#[test]
fn names_are_readable_without_the_identity_and_a_tampered_list_is_refused() {
    let (root, identity, _) = site();
    let secrets = [
        Secret::new("db_password", "hunter2-very-secret"),
        Secret::new("mongodb_keyfile", KEYFILE),
    ];
    let key = DigestKey::generate().unwrap();
    write_secrets_file(root.path(), &identity, &secrets, &key).unwrap();

    let locked = SecretStore::load_from(root.path(), &sources(None, &[])).unwrap();
    let names: Vec<&str> = locked
        .locked_names()
        .unwrap()
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["db_password", "mongodb_keyfile"]);
    assert!(locked.key().is_none());
    // Known but locked: the identity is what is missing. Not listed: unknown.
    let err = locked.require("db_password").unwrap_err().to_string();
    assert!(err.contains("is locked"), "{err}");
    let err = locked.require("db_pasword").unwrap_err().to_string();
    assert!(err.starts_with("unknown secret `db_pasword`"), "{err}");
    // Placeholders (for `check`): listed names render, unlisted ones still fail.
    let checking = locked.with_placeholders();
    let placeholder = checking.require("mongodb_keyfile").unwrap();
    assert!(!placeholder.expose().contains("c2VjcmV0"));
    assert_eq!(
        placeholder.fingerprint().marker(),
        "[secret mongodb_keyfile: not decrypted]"
    );
    assert!(checking.require("nope").is_err());

    // Someone adds a name to the clear list (or removes one): refused on decrypt.
    let path = root.path().join(SECRETS_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    for forged in [
        text.replace("\"db_password\", ", "\"db_password\", \"admin\", "),
        text.replace("\"db_password\", ", ""),
    ] {
        std::fs::write(&path, &forged).unwrap();
        let err = SecretStore::load_from(root.path(), &sources(Some(&identity), &[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not match its encrypted content"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }
    // A plain age file (no clear header) still opens with the identity.
    std::fs::write(&path, &text[text.find("-----BEGIN").unwrap()..]).unwrap();
    let store = SecretStore::load_from(root.path(), &sources(Some(&identity), &[])).unwrap();
    assert_eq!(store.iter().count(), 2);
}

#[test]
fn names_are_lowercase_identifiers() {
    assert!(is_valid_name("mongodb_keyfile2"));
    assert!(!is_valid_name("MongoKey"));
    assert!(!is_valid_name("a-b"));
    assert!(!is_valid_name(""));
}

#[test]
fn example_site_secrets_open_with_the_demo_identity_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let identity = root.join("manifests/DEMO-ONLY-age-identity.txt");
    let store = SecretStore::load_from(root, &sources(Some(&identity), &[])).unwrap();
    // `openssl rand -base64 756`: 1008 base64 characters in lines of 64.
    let keyfile = store.get("mongodb_keyfile").unwrap().expose();
    let chars: String = keyfile.split_whitespace().collect();
    assert_eq!(chars.len(), 1008);
    assert!(chars
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'));
    assert!(keyfile.lines().all(|l| l.len() <= 64));
    let session = store.get("dashboard_session_key").unwrap().expose();
    assert!(session.len() == 64 && session.bytes().all(|b| b.is_ascii_hexdigit()));

    let (_other, other_identity, _) = site();
    assert!(SecretStore::load_from(root, &sources(Some(&other_identity), &[])).is_err());
    let locked = SecretStore::load_from(root, &sources(None, &[])).unwrap();
    assert!(locked.locked().is_some() && locked.iter().next().is_none());
    // The example file lists its names in clear and carries a digest key.
    let names: Vec<&str> = locked
        .locked_names()
        .unwrap()
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["dashboard_session_key", "mongodb_keyfile"]);
    assert!(store.key().is_some());
}

proptest::proptest! {
    #[test]
    fn redaction_leaves_no_trace_and_found_in_agrees(
        value in "[A-Za-z0-9+/=]{12,40}(\n[A-Za-z0-9+/=]{16,64}){0,3}\n?",
        before in "[ -~\n]{0,40}",
        after in "[ -~\n]{0,40}",
        indent in 0usize..6,
    ) {
        let mut store = SecretStore::default();
        store.insert(Secret::new("s", value.clone()));
        let pad = " ".repeat(indent);
        let reindented: String = value.lines().map(|l| format!("{pad}{l}\n")).collect();
        for text in [format!("{before}{value}{after}"), format!("{before}\n{reindented}{after}")] {
            proptest::prop_assert_eq!(store.found_in(&text).len(), 1);
            let redacted = store.redact(&text);
            proptest::prop_assert!(!redacted.contains(value.as_str()));
            for line in value.lines().filter(|l| l.len() >= MIN_FRAGMENT) {
                proptest::prop_assert!(!redacted.contains(line), "{}", redacted);
            }
        }
    }
}
