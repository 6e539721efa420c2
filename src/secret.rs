//! Secrets: values that may reach a node's files but never a screen. A secret is known
//! by name in manifests and by a short fingerprint everywhere it would otherwise show.
//!
//! SKELETON: environment source only; the encrypted-file source (age) comes next.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// A short, stable, non-reversible identifier of a secret value: 8 hex digits of
/// SHA-256. Enough to tell two versions apart in a diff, useless to recover the value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
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

/// One secret. `Debug` is redacted so that a stray `{:?}` cannot leak it.
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
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({}, {})", self.name, self.fingerprint.marker())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secrets file `{path}`: {reason}")]
    Read { path: String, reason: String },
}

/// All secrets of a site, by name.
#[derive(Debug, Clone, Default)]
pub struct SecretStore {
    secrets: BTreeMap<String, Secret>,
}

impl SecretStore {
    /// Loads the site's secrets: the age-encrypted `manifests/secrets.age` (decrypted
    /// with the identity file named by `TANDEM_AGE_IDENTITY`) and `TANDEM_SECRET_<NAME>`
    /// environment variables, which win.
    /// SKELETON: environment only.
    pub fn load(_site_root: &std::path::Path) -> Result<Self, SecretError> {
        let mut store = SecretStore::default();
        for (key, value) in std::env::vars() {
            if let Some(name) = key.strip_prefix("TANDEM_SECRET_") {
                store.insert(Secret::new(name.to_ascii_lowercase(), value));
            }
        }
        Ok(store)
    }

    pub fn insert(&mut self, secret: Secret) {
        self.secrets.insert(secret.name.clone(), secret);
    }

    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.secrets.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.secrets.values()
    }

    /// The secrets whose value occurs in `text`, so that rendered content can be marked
    /// sensitive and attributes that would be printed can be refused.
    pub fn found_in(&self, text: &str) -> Vec<&Secret> {
        self.secrets
            .values()
            .filter(|s| !s.value.is_empty() && text.contains(&s.value))
            .collect()
    }

    /// `text` with every secret value replaced by its marker.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in self.secrets.values().filter(|s| !s.value.is_empty()) {
            out = out.replace(&secret.value, &secret.fingerprint.marker());
        }
        out
    }
}
