//! Webhook authentication, fail closed, over the raw body bytes and before anything is
//! parsed: GitHub's `X-Hub-Signature-256` (HMAC-SHA256, hex, `sha256=` prefix), GitLab's
//! `X-Gitlab-Token` (a shared token, compared in constant time), and the Standard
//! Webhooks scheme (`webhook-id`, `webhook-timestamp`, `webhook-signature`: HMAC-SHA256
//! over `id.timestamp.body`, base64, `v1,` prefix, the timestamp within five minutes).
//! Every comparison is constant time (`hmac`'s `verify_slice`, `subtle`'s
//! `ConstantTimeEq`). A refusal says what was wrong, never the value that was sent.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far a Standard Webhooks timestamp may be from this host's clock.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// Why a delivery was not authenticated (shown in the 401 and the log: no value sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("missing `{0}` header")]
    Missing(&'static str),
    #[error("`{0}` does not use the `{1}` scheme")]
    Scheme(&'static str, &'static str),
    #[error("`{0}` is not well-formed")]
    Malformed(&'static str),
    #[error("signature does not match")]
    Mismatch,
    #[error("token does not match")]
    Token,
    #[error("`webhook-timestamp` is more than 5 minutes from this host's clock")]
    Stale,
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length: this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!())
}

/// GitHub: `X-Hub-Signature-256: sha256=HEX` over the body.
pub fn github(secret: &[u8], header: Option<&str>, body: &[u8]) -> Result<(), Refusal> {
    const NAME: &str = "X-Hub-Signature-256";
    let header = header.ok_or(Refusal::Missing(NAME))?;
    let hex_sig = header
        .strip_prefix("sha256=")
        .ok_or(Refusal::Scheme(NAME, "sha256="))?;
    let sig = hex::decode(hex_sig.trim()).map_err(|_| Refusal::Malformed(NAME))?;
    let mut mac = mac(secret);
    mac.update(body);
    mac.verify_slice(&sig).map_err(|_| Refusal::Mismatch)
}

/// GitLab: `X-Gitlab-Token` equal to the secret.
pub fn gitlab(secret: &[u8], header: Option<&str>) -> Result<(), Refusal> {
    let token = header.ok_or(Refusal::Missing("X-Gitlab-Token"))?;
    if bool::from(token.as_bytes().ct_eq(secret)) {
        Ok(())
    } else {
        Err(Refusal::Token)
    }
}

/// The headers of a Standard Webhooks delivery.
pub struct StandardHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Standard Webhooks: any `v1,BASE64` entry of `webhook-signature` matching
/// HMAC-SHA256(`id.timestamp.body`), the timestamp within [`TOLERANCE_SECS`] of `now`.
/// A secret written as `whsec_BASE64` is the decoded bytes, as the scheme says; any
/// other secret is used as it is.
pub fn standard(
    secret: &[u8],
    headers: &StandardHeaders<'_>,
    body: &[u8],
    now: i64,
) -> Result<(), Refusal> {
    let id = headers.id.ok_or(Refusal::Missing("webhook-id"))?;
    let timestamp = headers
        .timestamp
        .ok_or(Refusal::Missing("webhook-timestamp"))?;
    let signatures = headers
        .signature
        .ok_or(Refusal::Missing("webhook-signature"))?;
    let at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Refusal::Malformed("webhook-timestamp"))?;
    if (now - at).abs() > TOLERANCE_SECS {
        return Err(Refusal::Stale);
    }
    let key = standard_key(secret);
    let mut any_v1 = false;
    for entry in signatures.split_whitespace() {
        let Some(encoded) = entry.strip_prefix("v1,") else {
            continue;
        };
        any_v1 = true;
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            continue;
        };
        let mut mac = mac(&key);
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        if mac.verify_slice(&sig).is_ok() {
            return Ok(());
        }
    }
    if any_v1 {
        Err(Refusal::Mismatch)
    } else {
        Err(Refusal::Scheme("webhook-signature", "v1,"))
    }
}

fn standard_key(secret: &[u8]) -> zeroize::Zeroizing<Vec<u8>> {
    let decoded = secret
        .strip_prefix(b"whsec_")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok());
    zeroize::Zeroizing::new(decoded.unwrap_or_else(|| secret.to_vec()))
}

/// The `webhook-signature` value for `id`, `timestamp` and `body`: what a sender
/// computes (tests and the demo use it).
pub fn standard_signature(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = mac(&standard_key(secret));
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The `X-Hub-Signature-256` value for `body`.
pub fn github_signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const VECTOR: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn githubs_documented_test_vector_verifies() {
        assert_eq!(github(SECRET, Some(VECTOR), b"Hello, World!"), Ok(()));
        assert_eq!(github_signature(SECRET, b"Hello, World!"), VECTOR);
    }

    #[test]
    fn github_refuses_a_changed_byte_a_missing_header_and_sha1() {
        assert_eq!(
            github(SECRET, Some(VECTOR), b"Hello, World?"),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            github(SECRET, None, b"Hello, World!"),
            Err(Refusal::Missing("X-Hub-Signature-256"))
        );
        let sha1 = VECTOR.replace("sha256=", "sha1=");
        assert!(matches!(
            github(SECRET, Some(&sha1), b"Hello, World!"),
            Err(Refusal::Scheme(..))
        ));
        assert_eq!(
            github(SECRET, Some("sha256=zz"), b"Hello, World!"),
            Err(Refusal::Malformed("X-Hub-Signature-256"))
        );
        // A truncated signature is a mismatch, not a prefix match.
        assert_eq!(
            github(SECRET, Some(&VECTOR[..41]), b"Hello, World!"),
            Err(Refusal::Mismatch)
        );
    }

    #[test]
    fn gitlab_compares_the_whole_token() {
        assert_eq!(gitlab(b"tok3n", Some("tok3n")), Ok(()));
        assert_eq!(gitlab(b"tok3n", Some("tok3")), Err(Refusal::Token));
        assert_eq!(gitlab(b"tok3n", Some("tok3nn")), Err(Refusal::Token));
        assert!(matches!(gitlab(b"tok3n", None), Err(Refusal::Missing(_))));
    }

    #[test]
    fn standard_webhooks_checks_signature_and_age() {
        let now = 1_800_000_000;
        let secret = b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let sig = standard_signature(secret, "msg_1", now, b"{}");
        let headers = |ts: String, sig: String| (ts, sig);
        let check = |ts: i64, sig: &str, body: &[u8]| {
            let (ts, sig) = headers(ts.to_string(), sig.to_string());
            standard(
                secret,
                &StandardHeaders {
                    id: Some("msg_1"),
                    timestamp: Some(&ts),
                    signature: Some(&sig),
                },
                body,
                now,
            )
        };
        assert_eq!(check(now, &sig, b"{}"), Ok(()));
        // Several signatures (key rotation): one match is enough.
        assert_eq!(check(now, &format!("v1,AAAA {sig}"), b"{}"), Ok(()));
        assert_eq!(check(now, &sig, b"{ }"), Err(Refusal::Mismatch));
        let old = standard_signature(secret, "msg_1", now - 600, b"{}");
        assert_eq!(check(now - 600, &old, b"{}"), Err(Refusal::Stale));
        assert!(matches!(
            check(now, &sig.replace("v1,", "v2,"), b"{}"),
            Err(Refusal::Scheme(..))
        ));
    }
}
