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
//! other source provides fails ([`SecretStore::require`]). The names are in clear in the
//! file (see [`file`]), so a locked store still knows which secrets exist: a name that
//! is not there is unknown with or without the key, and `check` renders the known ones
//! as placeholders ([`SecretStore::with_placeholders`]).
//!
//! Fingerprints and digests of secret-bearing content are keyed with the site's digest
//! key, kept inside the encrypted file ([`digest`]). The [`ledger`] remembers which
//! files held secret-bearing content, so that their old content is never diffed in
//! clear once the site stops putting a secret in them.
//!
//! Secret values are zeroed on drop and never formatted by `Debug` or by any error.

mod digest;
mod file;
mod ledger;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use zeroize::Zeroize;

pub use digest::{DigestKey, Fingerprint};
pub use file::{
    open_secrets_file, read_secret_names, read_secrets_file, write_secrets_file, Decrypted,
    RECIPIENTS_FILE, SECRETS_FILE,
};
pub use ledger::{Ledger, LEDGER_FILE};

/// Environment variable naming the age identity file that decrypts the secrets file.
pub const IDENTITY_ENV: &str = "TANDEM_AGE_IDENTITY";
/// Prefix of environment variables that provide (and override) secrets.
pub const ENV_PREFIX: &str = "TANDEM_SECRET_";

/// One secret. `Debug` is redacted so that a stray `{:?}` cannot leak it; the value is
/// zeroed when dropped.
#[derive(Clone)]
pub struct Secret {
    name: String,
    value: String,
    fingerprint: Fingerprint,
}

impl Secret {
    /// A secret fingerprinted for this process only ([`Fingerprint::of`]); a store with
    /// the site's digest key re-keys it on [`SecretStore::insert`].
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        let value = value.into();
        let fingerprint = Fingerprint::of(value.as_bytes());
        Secret {
            name: name.into(),
            value,
            fingerprint,
        }
    }

    /// Recomputes the fingerprint under `key`.
    pub fn rekey(&mut self, key: &DigestKey) {
        self.fingerprint = key.fingerprint(self.value.as_bytes());
    }

    /// What a template gets for a secret that exists but was not decrypted (`check`
    /// without the identity): a placeholder, marked secret like the real value.
    fn placeholder(name: &str) -> Self {
        Secret {
            name: name.to_string(),
            value: format!("(secret `{name}` not decrypted)"),
            fingerprint: Fingerprint::unavailable(name, "not decrypted"),
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
    #[error("the clear list of secret names in `{path}` does not match its encrypted content ({detail}): it was edited outside tandem; restore it from git or re-create it with `tandem secrets set`")]
    NamesTampered { path: PathBuf, detail: String },
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
    /// The names listed in clear in the locked file (`None`: a file without them).
    locked_names: Option<BTreeSet<String>>,
    /// Stand-ins for the locked file's secrets, when placeholders are allowed.
    placeholders: BTreeMap<String, Secret>,
    /// The site's digest key (from the decrypted file).
    key: Option<DigestKey>,
    ledger: Ledger,
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
        let mut store = SecretStore {
            ledger: Ledger::load(site_root),
            ..SecretStore::default()
        };
        let path = site_root.join(SECRETS_FILE);
        if path.exists() {
            match &sources.identity {
                Some(identity) => {
                    let decrypted = file::open_secrets_file(&path, identity)?;
                    store.key = decrypted.key;
                    for secret in decrypted.secrets {
                        store.insert(secret);
                    }
                }
                None => {
                    store.locked_names = file::read_secret_names(&path)?;
                    store.locked = Some(path);
                }
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

    /// Lets a locked store hand out placeholders for the secrets its file lists (for
    /// `check`, which validates everything but secret values). Names the file does not
    /// list stay unknown.
    pub fn with_placeholders(mut self) -> Self {
        if let Some(names) = &self.locked_names {
            self.placeholders = names
                .iter()
                .filter(|n| !self.secrets.contains_key(*n))
                .map(|n| (n.clone(), Secret::placeholder(n)))
                .collect();
        }
        self
    }

    /// A secret from its source, fingerprinted with the site key when there is one.
    pub fn insert(&mut self, mut secret: Secret) {
        if let Some(key) = &self.key {
            secret.rekey(key);
        }
        self.secrets.insert(secret.name.clone(), secret);
    }

    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.secrets.get(name)
    }

    /// The secret `name`, or an error saying why it is not there: unknown, or held in
    /// an encrypted file that no identity was given to open.
    pub fn require(&self, name: &str) -> Result<&Secret, SecretError> {
        if let Some(secret) = self.secrets.get(name).or(self.placeholders.get(name)) {
            return Ok(secret);
        }
        match (&self.locked, &self.locked_names) {
            (Some(path), names) if names.as_ref().is_none_or(|n| n.contains(name)) => {
                Err(SecretError::Locked {
                    name: name.to_string(),
                    path: path.clone(),
                })
            }
            _ => Err(SecretError::Unknown {
                name: name.to_string(),
            }),
        }
    }

    /// The encrypted secrets file that is present but was not decrypted, if any.
    pub fn locked(&self) -> Option<&Path> {
        self.locked.as_deref()
    }

    /// The names a locked file lists in clear (`None` when not locked, or for a file
    /// written before names were kept in clear).
    pub fn locked_names(&self) -> Option<&BTreeSet<String>> {
        self.locked.as_ref().and(self.locked_names.as_ref())
    }

    /// The site's digest key, when the secrets file was decrypted and has one.
    pub fn key(&self) -> Option<&DigestKey> {
        self.key.as_ref()
    }

    /// The digest that stands for secret-bearing content in plans and catalogs: keyed
    /// with the site key, or with this process's key when there is none (so it confirms
    /// nothing, but is only comparable within the run).
    pub fn content_digest(&self, bytes: &[u8]) -> String {
        match &self.key {
            Some(key) => key.content_digest(bytes),
            None => format!("ephemeral:{}", digest::process_key().content_digest(bytes)),
        }
    }

    /// A node-reported SHA-256 (hex) in the form that may be shown or recorded: keyed
    /// when the site key is known, as is otherwise (it can then only be a sum of
    /// content that holds no secret this run knows).
    pub fn shown_sum(&self, sha256_hex: &str) -> String {
        match &self.key {
            Some(key) => format!("k:{}", key.sum_digest(sha256_hex)),
            None => sha256_hex.to_string(),
        }
    }

    /// The ledger of files that held secret-bearing content.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Whether the content now at `path` on a node (its SHA-256 as the node reported it)
    /// may hold a secret though the site no longer puts one there: the path or that
    /// content was secret-bearing in an earlier catalog. Its diff must not show text.
    pub fn was_secret_bearing(&self, path: &str, node_sum: Option<&str>) -> bool {
        self.ledger.has_path(path)
            || node_sum
                .zip(self.key.as_ref())
                .is_some_and(|(sum, key)| self.ledger.has_sum(&key.sum_digest(sum)))
    }

    /// Records that the site renders secret-bearing content (with this SHA-256) at
    /// `path`; best effort, see [`Ledger::record`].
    pub fn record_secret_bearing(&self, path: &str, sha256_hex: &str) {
        let sum = self.key.as_ref().map(|key| key.sum_digest(sha256_hex));
        self.ledger.record(path, sum.as_deref());
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
