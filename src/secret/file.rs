//! The age-encrypted secrets file: decrypting it into secrets and writing it back. The
//! plaintext only ever lives in zeroed-on-drop buffers and in [`Secret`]s.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use zeroize::Zeroizing;

use super::{is_valid_name, Secret, SecretError};

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

/// Decrypts the secrets file at `path` with the identity file `identity` and parses it.
pub fn read_secrets_file(path: &Path, identity: &Path) -> Result<Vec<Secret>, SecretError> {
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
    let file = std::fs::File::open(path).map_err(|e| SecretError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let decrypt_err = |reason: String| SecretError::Decrypt {
        path: path.to_path_buf(),
        identity: identity.to_path_buf(),
        reason,
    };
    let decryptor = age::Decryptor::new_buffered(ArmoredReader::new(std::io::BufReader::new(file)))
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
    parse(path, text)
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
fn parse(path: &Path, text: &str) -> Result<Vec<Secret>, SecretError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| SecretError::Format {
        path: path.to_path_buf(),
        line: e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1)
            .unwrap_or(1),
        reason: e.message().to_string(),
    })?;
    let mut secrets = Vec::with_capacity(table.len());
    for (name, value) in table {
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
    Ok(secrets)
}

/// Encrypts `secrets` into `<site_root>/manifests/secrets.age` (armored), to the keys
/// of `manifests/secrets.recipients` or, without that file, to `identity`'s own key.
/// The file is replaced atomically.
pub fn write_secrets_file<'a>(
    site_root: &Path,
    identity: &Path,
    secrets: impl IntoIterator<Item = &'a Secret>,
) -> Result<PathBuf, SecretError> {
    let path = site_root.join(SECRETS_FILE);
    let encrypt_err = |reason: String| SecretError::Encrypt {
        path: path.clone(),
        reason,
    };
    let recipients = recipients(site_root, identity)?;
    let table: BTreeMap<&str, &str> = secrets
        .into_iter()
        .map(|s| (s.name(), s.expose()))
        .collect();
    let plaintext =
        Zeroizing::new(toml::to_string(&table).map_err(|e| encrypt_err(e.to_string()))?);
    let encryptor = age::Encryptor::with_recipients(
        recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient),
    )
    .map_err(|e| encrypt_err(e.to_string()))?;
    let mut armored = Vec::new();
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
