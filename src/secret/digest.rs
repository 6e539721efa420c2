//! Keyed digests: secret fingerprints and the digests of secret-bearing content are
//! HMAC-SHA256 under a per-site key, kept inside the encrypted secrets file, so that a
//! plan file, a log or a run record cannot be used to confirm a guessed secret offline
//! (a plain `sha256(secret)` can be). Each use has its own domain label, so a content
//! digest never equals a fingerprint of the same bytes.
//!
//! Without the site key (the secrets file is not decrypted, or the site has none yet),
//! fingerprints are not computable: they say so ([`Fingerprint::unavailable`]) instead
//! of falling back to a plain hash.

use std::fmt;
use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use zeroize::Zeroizing;

/// The per-site key of every fingerprint and secret-bearing digest. 32 random bytes,
/// zeroed on drop, never printed.
#[derive(Clone)]
pub struct DigestKey(Zeroizing<[u8; 32]>);

impl DigestKey {
    /// A fresh random key (`tandem secrets set` makes one for a file that has none).
    pub fn generate() -> Result<DigestKey, getrandom::Error> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(&mut bytes[..])?;
        Ok(DigestKey(bytes))
    }

    /// The key from its hex form (as stored in the secrets file).
    pub fn from_hex(text: &str) -> Option<DigestKey> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), &mut bytes[..]).ok()?;
        Some(DigestKey(bytes))
    }

    /// The hex form, for the encrypted file only.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(&self.0[..]))
    }

    fn mac(&self, domain: &str, bytes: &[u8]) -> [u8; 32] {
        // HMAC takes keys of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0[..])
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(bytes);
        mac.finalize().into_bytes().into()
    }

    /// The fingerprint of a secret value.
    pub fn fingerprint(&self, value: &[u8]) -> Fingerprint {
        Fingerprint(hex::encode(&self.mac("tandem fingerprint", value)[..4]))
    }

    /// The keyed digest of secret-bearing content (hex, 64 digits).
    pub fn content_digest(&self, bytes: &[u8]) -> String {
        hex::encode(self.mac("tandem content", bytes))
    }

    /// A keyed digest (hex, 32 digits) of `bytes` for the use named by `domain`: the
    /// node state file's digests (`fact::applied`) are made with this.
    pub fn labelled(&self, domain: &str, bytes: &[u8]) -> String {
        hex::encode(&self.mac(domain, bytes)[..16])
    }

    /// The keyed digest of a plain SHA-256 (hex) of content, as a node reports it:
    /// what the secret-bearing ledger records, so a node's reported sum can be looked up
    /// without the ledger holding plain sums of secret content.
    pub fn sum_digest(&self, sha256_hex: &str) -> String {
        hex::encode(&self.mac("tandem sum", sha256_hex.as_bytes())[..16])
    }
}

impl fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DigestKey(..)")
    }
}

/// The key of fingerprints made without a site key ([`Fingerprint::of`]): random per
/// process, so such a fingerprint tells values apart within one run and confirms
/// nothing outside it.
pub(super) fn process_key() -> &'static DigestKey {
    static KEY: OnceLock<DigestKey> = OnceLock::new();
    KEY.get_or_init(|| {
        DigestKey::generate().unwrap_or_else(|_| {
            // No OS randomness at all: the time and pid still make the key unknown to
            // anyone reading this process's output later.
            let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
            let mut bytes = Zeroizing::new([0u8; 32]);
            bytes.copy_from_slice(&<Sha256 as sha2::Digest>::digest(seed.as_bytes()));
            DigestKey(bytes)
        })
    })
}

/// A short, non-reversible identifier of a secret value: 8 hex digits of an HMAC under
/// the site's key. Enough to tell two versions apart in a diff, useless to recover or
/// confirm the value without the key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// A fingerprint keyed for this process only (see [`process_key`]): for secrets of a
    /// site without a digest key (environment-only secrets) and for tests.
    pub fn of(value: &[u8]) -> Self {
        process_key().fingerprint(value)
    }

    /// What stands for the fingerprint when it cannot be computed: the secret's name
    /// and why (`not decrypted`, `no digest key`).
    pub fn unavailable(name: &str, why: &str) -> Self {
        Fingerprint(format!("{name}: {why}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_values_depend_on_the_key_and_the_domain() {
        let a = DigestKey::generate().unwrap();
        let b = DigestKey::generate().unwrap();
        assert_eq!(a.fingerprint(b"pw"), a.fingerprint(b"pw"));
        assert_ne!(a.fingerprint(b"pw"), b.fingerprint(b"pw"));
        assert_ne!(a.fingerprint(b"pw"), a.fingerprint(b"pw2"));
        // Not the plain SHA-256 prefix the old fingerprints were.
        let plain = hex::encode(&<Sha256 as sha2::Digest>::digest(b"pw")[..4]);
        assert_ne!(a.fingerprint(b"pw").as_str(), plain);
        assert!(!a
            .content_digest(b"pw")
            .starts_with(a.fingerprint(b"pw").as_str()));
        let back = DigestKey::from_hex(&a.to_hex()).unwrap();
        assert_eq!(back.content_digest(b"x"), a.content_digest(b"x"));
        assert!(DigestKey::from_hex("00").is_none());
        assert_eq!(format!("{a:?}"), "DigestKey(..)");
    }
}
