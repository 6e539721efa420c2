//! The age-encrypted secrets file: decrypting it into secrets and writing it back. The
//! plaintext only ever lives in zeroed-on-drop buffers and in [`Secret`]s.
//!
//! Layout (always armored): a clear TOML header listing the secret *names*, then the
//! age armor, whose plaintext is a flat TOML table of the values plus the site's
//! digest key (see [`super::digest`]):
//! ```text
//! # tandem secrets: the names are in clear, the values age-encrypted below
//! names = ["dashboard_session_key", "mongodb_keyfile"]
//! -----BEGIN AGE ENCRYPTED FILE-----
//! ...
//! ```
//! So which secrets exist can be checked without the key (as SOPS keeps its keys in
//! clear), and a header that does not match the encrypted names is refused on decrypt
//! (edited outside tandem). For the `age` CLI: `sed '/^-----BEGIN/,$!d' FILE | age -d`.
//! A file without a header (plain age output, armored or binary) is still read.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use zeroize::Zeroizing;

use super::{is_valid_name, DigestKey, Secret, SecretError};

/// The secrets file, relative to the site root.
pub const SECRETS_FILE: &str = "manifests/secrets.age";
/// Public keys the secrets file is encrypted to, relative to the site root.
pub const RECIPIENTS_FILE: &str = "manifests/secrets.recipients";

fn identity_file(identity: &Path) -> Result<age::IdentityFile<age::NoCallbacks>, SecretError> {
    let err = |reason: String| SecretError::Identity {
        path: identity.to_path_buf(),
        reason,
    };
    let text = Zeroizing::new(std::fs::read(identity).map_err(|e| err(e.to_string()))?);
    age::IdentityFile::from_buffer(text.as_slice()).map_err(|e| err(e.to_string()))
}

/// The line the age armor starts with; what precedes it is the clear header.
const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";
/// The reserved plaintext key holding the site's digest key (not a valid secret name).
const DIGEST_KEY: &str = "tandem.digest_key";
const HEADER_COMMENT: &str =
    "# tandem secrets: the names are in clear, the values age-encrypted below.\n\
# Edit with `tandem secrets set NAME` / `tandem secrets remove NAME`, never by hand.\n";

/// What a decrypted secrets file holds.
#[derive(Debug)]
pub struct Decrypted {
    pub secrets: Vec<Secret>,
    /// The site's digest key; `None` in a file written before keys existed.
    pub key: Option<DigestKey>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    names: Vec<String>,
}

/// Splits the file into its clear header (if any) and the age part.
fn split(bytes: &[u8]) -> (Option<&str>, &[u8]) {
    let Some(at) = bytes
        .windows(ARMOR_BEGIN.len())
        .position(|w| w == ARMOR_BEGIN.as_bytes())
    else {
        return (None, bytes);
    };
    match std::str::from_utf8(&bytes[..at]) {
        Ok(head) if !head.trim().is_empty() => (Some(head), &bytes[at..]),
        _ => (None, bytes),
    }
}

/// The secret names listed in clear in the secrets file at `path`, readable without any
/// key; `None` for a file without a header (written before names were kept in clear).
pub fn read_secret_names(path: &Path) -> Result<Option<BTreeSet<String>>, SecretError> {
    let bytes = std::fs::read(path).map_err(|e| SecretError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let (head, _) = split(&bytes);
    head.map(|head| parse_header(path, head)).transpose()
}

fn parse_header(path: &Path, head: &str) -> Result<BTreeSet<String>, SecretError> {
    let header: Header = toml::from_str(head).map_err(|e| SecretError::Format {
        path: path.to_path_buf(),
        line: e
            .span()
            .map(|span| head[..span.start.min(head.len())].matches('\n').count() + 1)
            .unwrap_or(1),
        reason: format!("in the clear header: {}", e.message()),
    })?;
    let mut names = BTreeSet::new();
    for name in header.names {
        if !is_valid_name(&name) {
            return Err(SecretError::InvalidName { name });
        }
        names.insert(name);
    }
    Ok(names)
}

/// Decrypts the secrets file at `path` with the identity file `identity` and parses it.
pub fn read_secrets_file(path: &Path, identity: &Path) -> Result<Vec<Secret>, SecretError> {
    open_secrets_file(path, identity).map(|d| d.secrets)
}

/// Decrypts the secrets file at `path`: its secrets and digest key. The clear list of
/// names must match the encrypted one.
pub fn open_secrets_file(path: &Path, identity: &Path) -> Result<Decrypted, SecretError> {
    let identities =
        identity_file(identity)?
            .into_identities()
            .map_err(|e| SecretError::Identity {
                path: identity.to_path_buf(),
                reason: e.to_string(),
            })?;
    if identities.is_empty() {
        return Err(SecretError::Identity {
            path: identity.to_path_buf(),
            reason: "no age identity in this file".into(),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| SecretError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let (head, body) = split(&bytes);
    let clear_names = head.map(|head| parse_header(path, head)).transpose()?;
    let decrypt_err = |reason: String| SecretError::Decrypt {
        path: path.to_path_buf(),
        identity: identity.to_path_buf(),
        reason,
    };
    let decryptor = age::Decryptor::new_buffered(ArmoredReader::new(body))
        .map_err(|e| decrypt_err(describe(&e)))?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| decrypt_err(describe(&e)))?;
    let mut plaintext = Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut plaintext)
        .map_err(|e| decrypt_err(e.to_string()))?;
    let text = std::str::from_utf8(&plaintext).map_err(|_| SecretError::Format {
        path: path.to_path_buf(),
        line: 1,
        reason: "the decrypted content is not UTF-8".into(),
    })?;
    let decrypted = parse(path, text)?;
    if let Some(clear) = clear_names {
        let inside: BTreeSet<String> = decrypted
            .secrets
            .iter()
            .map(|s| s.name().to_string())
            .collect();
        if clear != inside {
            let list = |set: BTreeSet<&String>| {
                set.into_iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut detail = Vec::new();
            let only_clear: BTreeSet<&String> = clear.difference(&inside).collect();
            let only_inside: BTreeSet<&String> = inside.difference(&clear).collect();
            if !only_clear.is_empty() {
                detail.push(format!("listed but not encrypted: {}", list(only_clear)));
            }
            if !only_inside.is_empty() {
                detail.push(format!("encrypted but not listed: {}", list(only_inside)));
            }
            return Err(SecretError::NamesTampered {
                path: path.to_path_buf(),
                detail: detail.join("; "),
            });
        }
    }
    Ok(decrypted)
}

/// age's own messages are localized and capitalized; ours are lowercase.
fn describe(err: &age::DecryptError) -> String {
    match err {
        age::DecryptError::NoMatchingKeys => {
            "the file is not encrypted to this identity".to_string()
        }
        age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => {
            "not an age file".to_string()
        }
        age::DecryptError::DecryptionFailed | age::DecryptError::InvalidMac => {
            "the file is corrupted or was tampered with".to_string()
        }
        other => other.to_string(),
    }
}

/// Parses the plaintext: a flat TOML table of strings. Errors name keys and lines, and
/// never quote the text (which would show values).
fn parse(path: &Path, text: &str) -> Result<Decrypted, SecretError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| SecretError::Format {
        path: path.to_path_buf(),
        line: e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1)
            .unwrap_or(1),
        reason: e.message().to_string(),
    })?;
    let mut secrets = Vec::with_capacity(table.len());
    let mut key = None;
    for (name, value) in table {
        if name == DIGEST_KEY {
            key = value.as_str().and_then(DigestKey::from_hex);
            if key.is_none() {
                return Err(SecretError::Format {
                    path: path.to_path_buf(),
                    line: 1,
                    reason: format!("`{DIGEST_KEY}` is not 64 hex digits"),
                });
            }
            continue;
        }
        if !is_valid_name(&name) {
            return Err(SecretError::InvalidName { name });
        }
        match value {
            toml::Value::String(value) => {
                let value = Zeroizing::new(value);
                secrets.push(Secret::new(name, value.as_str()));
            }
            _ => {
                return Err(SecretError::NotString {
                    path: path.to_path_buf(),
                    name,
                })
            }
        }
    }
    if let Some(key) = &key {
        for secret in &mut secrets {
            secret.rekey(key);
        }
    }
    Ok(Decrypted { secrets, key })
}

/// Encrypts `secrets` and the digest `key` into `<site_root>/manifests/secrets.age`
/// (armored, names in a clear header), to the keys of `manifests/secrets.recipients`
/// or, without that file, to `identity`'s own key. The file is replaced atomically.
pub fn write_secrets_file<'a>(
    site_root: &Path,
    identity: &Path,
    secrets: impl IntoIterator<Item = &'a Secret>,
    key: &DigestKey,
) -> Result<PathBuf, SecretError> {
    let path = site_root.join(SECRETS_FILE);
    let encrypt_err = |reason: String| SecretError::Encrypt {
        path: path.clone(),
        reason,
    };
    let recipients = recipients(site_root, identity)?;
    let mut table: BTreeMap<&str, &str> = secrets
        .into_iter()
        .map(|s| (s.name(), s.expose()))
        .collect();
    let names: Vec<&str> = table.keys().copied().collect();
    let header = toml::to_string(&BTreeMap::from([("names", names)]))
        .map_err(|e| encrypt_err(e.to_string()))?;
    let key_hex = key.to_hex();
    table.insert(DIGEST_KEY, key_hex.as_str());
    let plaintext =
        Zeroizing::new(toml::to_string(&table).map_err(|e| encrypt_err(e.to_string()))?);
    let encryptor = age::Encryptor::with_recipients(
        recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient),
    )
    .map_err(|e| encrypt_err(e.to_string()))?;
    let mut armored = format!("{HEADER_COMMENT}{header}").into_bytes();
    let io = |e: std::io::Error| encrypt_err(e.to_string());
    let mut writer = encryptor
        .wrap_output(ArmoredWriter::wrap_output(&mut armored, Format::AsciiArmor).map_err(io)?)
        .map_err(io)?;
    writer.write_all(plaintext.as_bytes()).map_err(io)?;
    writer
        .finish()
        .and_then(|armor| armor.finish())
        .map_err(io)?;

    let staged = path.with_extension("age.tmp");
    std::fs::write(&staged, &armored)
        .and_then(|()| std::fs::rename(&staged, &path))
        .map_err(io)?;
    Ok(path)
}

fn recipients(
    site_root: &Path,
    identity: &Path,
) -> Result<Vec<Box<dyn age::Recipient + Send>>, SecretError> {
    let file = site_root.join(RECIPIENTS_FILE);
    if !file.exists() {
        return identity_file(identity)?
            .to_recipients()
            .map_err(|e| SecretError::Identity {
                path: identity.to_path_buf(),
                reason: e.to_string(),
            });
    }
    let text = std::fs::read_to_string(&file).map_err(|e| SecretError::Read {
        path: file.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut out: Vec<Box<dyn age::Recipient + Send>> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let recipient: age::x25519::Recipient =
            line.parse().map_err(|reason: &str| SecretError::Format {
                path: file.clone(),
                line: index + 1,
                reason: format!("`{line}` is not an age x25519 public key: {reason}"),
            })?;
        out.push(Box::new(recipient));
    }
    if out.is_empty() {
        return Err(SecretError::Format {
            path: file,
            line: 1,
            reason: "no recipient listed".into(),
        });
    }
    Ok(out)
}
