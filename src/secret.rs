//! Secrets: values that may reach a node's files but never a screen. A secret is known
//! by name in manifests and by a short fingerprint everywhere it would otherwise show.
//!
//! Sources, later wins:
//! 1. `manifests/secrets.age`: an [age](https://age-encryption.org) file (armored or
//!    binary, x25519 recipients) whose plaintext is a flat TOML table of strings:
//!    ```toml
//!    mongodb_keyfile = """
//!    c2VjcmV0...
//!    """
//!    dashboard_session_key = "..."
//!    ```
//!    It is decrypted with the identity file named by `TANDEM_AGE_IDENTITY` (the format
//!    `age-keygen` writes). `tandem secrets set NAME` re-encrypts it to the public keys
//!    listed in `manifests/secrets.recipients` (one `age1...` per line, `#` comments),
//!    or to the identity's own key when that file does not exist.
//! 2. Environment variables `TANDEM_SECRET_<NAME>`; the secret's name is `<NAME>`
//!    lowercased (`TANDEM_SECRET_MONGODB_KEYFILE` sets `mongodb_keyfile`).
//!
//! A site that uses no secret must not need the identity: when the file exists but no
//! identity is given, the store stays *locked*, and only asking for a secret that no
//! other source provides fails ([`SecretStore::require`]).
//!
//! Secret values are zeroed on drop and never formatted by `Debug` or by any error.

mod file;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

pub use file::{read_secrets_file, write_secrets_file, RECIPIENTS_FILE, SECRETS_FILE};

/// Environment variable naming the age identity file that decrypts the secrets file.
pub const IDENTITY_ENV: &str = "TANDEM_AGE_IDENTITY";
/// Prefix of environment variables that provide (and override) secrets.
pub const ENV_PREFIX: &str = "TANDEM_SECRET_";

/// A short, stable, non-reversible identifier of a secret value: 8 hex digits of
/// SHA-256. Enough to tell two versions apart in a diff, useless to recover the value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    pub fn of(value: &[u8]) -> Self {
        let digest = Sha256::digest(value);
        Fingerprint(hex::encode(&digest[..4]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What is printed in place of the secret.
    pub fn marker(&self) -> String {
        format!("[secret {}]", self.0)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One secret. `Debug` is redacted so that a stray `{:?}` cannot leak it; the value is
/// zeroed when dropped.
#[derive(Clone)]
pub struct Secret {
    name: String,
    value: String,
    fingerprint: Fingerprint,
}

impl Secret {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        let value = value.into();
        let fingerprint = Fingerprint::of(value.as_bytes());
        Secret {
            name: name.into(),
            value,
            fingerprint,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The clear value: only for rendering file content.
    pub fn expose(&self) -> &str {
        &self.value
    }

    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// The pieces of the value that betray it when found in text: the whole value and,
    /// for multi-line values (keyfiles, certificates), each long line on its own, since
    /// a template may re-indent or JSON-escape the value as a whole.
    fn fragments(&self) -> impl Iterator<Item = &str> {
        let lines = self.value.contains('\n').then(|| {
            self.value
                .lines()
                .map(str::trim)
                .filter(|line| line.len() >= MIN_FRAGMENT)
        });
        std::iter::once(self.value.as_str())
            .filter(|v| !v.is_empty())
            .chain(lines.into_iter().flatten())
    }
}

/// Shorter lines of a multi-line secret (a PEM `-----END...` line aside, which is
/// longer) are too likely to occur by chance to be matched on their own.
const MIN_FRAGMENT: usize = 16;

impl Drop for Secret {
    fn drop(&mut self) {
        self.value.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({}, {})", self.name, self.fingerprint.marker())
    }
}

/// Errors never carry a secret value: only names, paths and positions.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secrets file `{path}`: {reason}")]
    Read { path: String, reason: String },
    #[error("cannot read age identity `{path}` (from {IDENTITY_ENV}): {reason}")]
    Identity { path: PathBuf, reason: String },
    #[error("cannot decrypt `{path}` with identity `{identity}`: {reason}")]
    Decrypt {
        path: PathBuf,
        identity: PathBuf,
        reason: String,
    },
    #[error("`{path}` does not hold a TOML table of secrets (line {line}): {reason}")]
    Format {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("secret `{name}` in `{path}` is not a string")]
    NotString { path: PathBuf, name: String },
    #[error("invalid secret name `{name}`: use lowercase letters, digits and `_`")]
    InvalidName { name: String },
    #[error("environment variable `{var}` is not valid UTF-8")]
    EnvNotUtf8 { var: String },
    #[error(
        "secret `{name}` is used but `{path}` is locked: set {IDENTITY_ENV} to the age \
         identity file that decrypts it (or provide {ENV_PREFIX}{upper})",
        upper = name.to_ascii_uppercase()
    )]
    Locked { name: String, path: PathBuf },
    #[error(
        "unknown secret `{name}`: add it with `tandem secrets set {name}` or set \
         {ENV_PREFIX}{upper}",
        upper = name.to_ascii_uppercase()
    )]
    Unknown { name: String },
    #[error("cannot encrypt `{path}`: {reason}")]
    Encrypt { path: PathBuf, reason: String },
}

/// Where secrets come from, so that tests need not touch the process environment.
#[derive(Debug, Clone, Default)]
pub struct SecretSources {
    /// The age identity file (`TANDEM_AGE_IDENTITY`).
    pub identity: Option<PathBuf>,
    /// Environment variables; only `TANDEM_SECRET_*` ones are looked at.
    pub env: Vec<(OsString, OsString)>,
}

impl SecretSources {
    /// The sources of this process: its environment.
    pub fn from_env() -> Self {
        let identity = std::env::var_os(IDENTITY_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let env = std::env::vars_os()
            .filter(|(key, _)| key.to_string_lossy().starts_with(ENV_PREFIX))
            .collect();
        SecretSources { identity, env }
    }
}

/// All secrets of a site, by name.
#[derive(Debug, Clone, Default)]
pub struct SecretStore {
    secrets: BTreeMap<String, Secret>,
    /// The encrypted file that could not be opened for want of an identity.
    locked: Option<PathBuf>,
}

impl SecretStore {
    /// Loads the site's secrets: the age-encrypted `manifests/secrets.age` (decrypted
    /// with the identity file named by `TANDEM_AGE_IDENTITY`) and `TANDEM_SECRET_<NAME>`
    /// environment variables, which win.
    pub fn load(site_root: &Path) -> Result<Self, SecretError> {
        Self::load_from(site_root, &SecretSources::from_env())
    }

    /// [`SecretStore::load`] with explicit sources.
    pub fn load_from(site_root: &Path, sources: &SecretSources) -> Result<Self, SecretError> {
        let mut store = SecretStore::default();
        let path = site_root.join(SECRETS_FILE);
        if path.exists() {
            match &sources.identity {
                Some(identity) => {
                    for secret in file::read_secrets_file(&path, identity)? {
                        store.insert(secret);
                    }
                }
                None => store.locked = Some(path),
            }
        }
        for (key, value) in &sources.env {
            let Some(name) = key.to_str().and_then(|k| k.strip_prefix(ENV_PREFIX)) else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            let value = value.to_str().ok_or_else(|| SecretError::EnvNotUtf8 {
                var: key.to_string_lossy().into_owned(),
            })?;
            store.insert(Secret::new(name.to_ascii_lowercase(), value));
        }
        Ok(store)
    }

    pub fn insert(&mut self, secret: Secret) {
        self.secrets.insert(secret.name.clone(), secret);
    }

    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.secrets.get(name)
    }

    /// The secret `name`, or an error saying why it is not there: unknown, or held in
    /// an encrypted file that no identity was given to open.
    pub fn require(&self, name: &str) -> Result<&Secret, SecretError> {
        if let Some(secret) = self.secrets.get(name) {
            return Ok(secret);
        }
        match &self.locked {
            Some(path) => Err(SecretError::Locked {
                name: name.to_string(),
                path: path.clone(),
            }),
            None => Err(SecretError::Unknown {
                name: name.to_string(),
            }),
        }
    }

    /// The encrypted secrets file that is present but was not decrypted, if any.
    pub fn locked(&self) -> Option<&Path> {
        self.locked.as_deref()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.secrets.values()
    }

    /// The secrets whose value occurs in `text`, so that rendered content can be marked
    /// sensitive and attributes that would be printed can be refused.
    pub fn found_in(&self, text: &str) -> Vec<&Secret> {
        self.secrets
            .values()
            .filter(|s| s.fragments().any(|f| text.contains(f)))
            .collect()
    }

    /// `text` with every secret value (and every long line of a multi-line one)
    /// replaced by its marker.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        // Longest first, so that a secret containing another is replaced whole.
        let mut fragments: Vec<(&str, String)> = self
            .secrets
            .values()
            .flat_map(|s| s.fragments().map(move |f| (f, s.fingerprint.marker())))
            .collect();
        fragments.sort_by_key(|(f, _)| std::cmp::Reverse(f.len()));
        for (fragment, marker) in fragments {
            if out.contains(fragment) {
                out = out.replace(fragment, &marker);
            }
        }
        out
    }
}

/// Whether `name` can be a secret name: what an environment variable can override.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests;
