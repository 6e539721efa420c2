//! Who may read the status pages and metrics. Bound to a loopback address, anyone who
//! can reach the port is already on the machine: no login. Bound anywhere else, a read
//! token is required (`Authorization: Bearer TOKEN`), and [`check_bind`] refuses to
//! start without one. The token is compared in constant time, as SHA-256 digests so
//! that not even its length shows in the timing. `/healthz` stays open for liveness
//! probes; the hook endpoints never serve run data, so they need no read token.

use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// Environment variable naming a file that holds the read token (preferred: systemd's
/// `LoadCredential=` puts it in one).
pub const READ_TOKEN_FILE_ENV: &str = "TANDEM_SERVE_READ_TOKEN_FILE";
/// Environment variable holding the read token itself.
pub const READ_TOKEN_ENV: &str = "TANDEM_SERVE_READ_TOKEN";

/// Shortest accepted token: 16 bytes of a random token's text.
const MIN_TOKEN_LEN: usize = 16;

/// The read token. Its `Debug` shows no part of it; it is zeroed when dropped.
#[derive(Clone)]
pub struct ReadToken(Zeroizing<String>);

impl fmt::Debug for ReadToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReadToken(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("`tandem serve` listens on `{addr}`, which is not a loopback address: set a read token for the status pages and metrics (a file named by `{READ_TOKEN_FILE_ENV}`, or `{READ_TOKEN_ENV}`), or listen on 127.0.0.1")]
    TokenRequired { addr: SocketAddr },
    #[error("the read token is {len} characters long: use at least {MIN_TOKEN_LEN} (for example `openssl rand -hex 32`)")]
    TooShort { len: usize },
    #[error(
        "the read token holds whitespace or control characters: it must be one printable word"
    )]
    NotPrintable,
    #[error("cannot read the read token file `{path}` (from `{READ_TOKEN_FILE_ENV}`): {error}")]
    File { path: PathBuf, error: String },
    #[error("`{READ_TOKEN_ENV}` is not valid UTF-8")]
    NotUtf8,
}

impl ReadToken {
    /// A token from the environment or a file (surrounding whitespace trimmed): at least
    /// 16 characters, printable, no spaces.
    pub fn new(text: &str) -> Result<ReadToken, AuthError> {
        let text = text.trim();
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(AuthError::NotPrintable);
        }
        let len = text.chars().count();
        if len < MIN_TOKEN_LEN {
            return Err(AuthError::TooShort { len });
        }
        Ok(ReadToken(Zeroizing::new(text.to_string())))
    }

    /// Whether `offered` is this token, in time independent of where they differ.
    pub fn matches(&self, offered: &[u8]) -> bool {
        let want = Sha256::digest(self.0.as_bytes());
        let got = Sha256::digest(offered);
        want.ct_eq(&got).into()
    }
}

/// The read token from the environment: the file `TANDEM_SERVE_READ_TOKEN_FILE` names,
/// else `TANDEM_SERVE_READ_TOKEN`; `None` when neither is set.
pub fn read_token_from_env() -> Result<Option<ReadToken>, AuthError> {
    read_token(
        std::env::var_os(READ_TOKEN_FILE_ENV).filter(|v| !v.is_empty()),
        std::env::var_os(READ_TOKEN_ENV).filter(|v| !v.is_empty()),
    )
}

fn read_token(
    file: Option<OsString>,
    value: Option<OsString>,
) -> Result<Option<ReadToken>, AuthError> {
    if let Some(path) = file.map(PathBuf::from) {
        let text = std::fs::read_to_string(&path).map_err(|error| AuthError::File {
            path: path.clone(),
            error: error.to_string(),
        })?;
        return ReadToken::new(&Zeroizing::new(text)).map(Some);
    }
    match value {
        Some(value) => {
            let text = Zeroizing::new(value.into_string().map_err(|_| AuthError::NotUtf8)?);
            ReadToken::new(&text).map(Some)
        }
        None => Ok(None),
    }
}

/// Whether `ip` is a loopback address (IPv4-mapped IPv6 loopback included).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The daemon calls this before binding: a non-loopback address needs a read token.
pub fn check_bind(addr: SocketAddr, token: Option<&ReadToken>) -> Result<(), AuthError> {
    if token.is_none() && !is_loopback(addr.ip()) {
        return Err(AuthError::TokenRequired { addr });
    }
    Ok(())
}

/// Middleware: with a token configured, a request without `Authorization: Bearer` and
/// that token gets 401 and nothing else.
pub async fn require(
    State(token): State<Option<ReadToken>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = token else {
        return next.run(request).await;
    };
    let offered = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    match offered {
        Some(offered) if token.matches(offered) => next.run(request).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [
                (header::WWW_AUTHENTICATE, "Bearer realm=\"tandem\""),
                (header::CACHE_CONTROL, "no-store"),
            ],
            "a read token is required: send `Authorization: Bearer TOKEN`\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_needs_a_token() {
        let token = ReadToken::new("0123456789abcdef0123").unwrap();
        for open in [
            "127.0.0.1:8088",
            "127.1.2.3:1",
            "[::1]:8088",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert_eq!(check_bind(open.parse().unwrap(), None), Ok(()), "{open}");
        }
        for exposed in [
            "0.0.0.0:8088",
            "10.0.0.5:8088",
            "[::]:8088",
            "[2001:db8::1]:80",
        ] {
            let addr: SocketAddr = exposed.parse().unwrap();
            assert_eq!(
                check_bind(addr, None),
                Err(AuthError::TokenRequired { addr })
            );
            assert_eq!(check_bind(addr, Some(&token)), Ok(()));
        }
    }

    #[test]
    fn tokens_are_checked_and_never_shown() {
        assert_eq!(
            ReadToken::new("short").unwrap_err(),
            AuthError::TooShort { len: 5 }
        );
        assert_eq!(
            ReadToken::new("has a space in it ok").unwrap_err(),
            AuthError::NotPrintable
        );
        let token = ReadToken::new(" 0123456789abcdef0123\n").unwrap();
        assert!(token.matches(b"0123456789abcdef0123"));
        assert!(!token.matches(b"0123456789abcdef0124"));
        assert!(!token.matches(b"0123456789abcdef012"));
        assert!(!format!("{token:?}").contains("0123"));
    }

    #[test]
    fn the_token_comes_from_a_file_first() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("read-token");
        std::fs::write(&file, "from-the-file-0123456789\n").unwrap();
        let value = Some(OsString::from("from-the-variable-0123456789"));
        let token = read_token(Some(file.clone().into()), value.clone())
            .unwrap()
            .unwrap();
        assert!(token.matches(b"from-the-file-0123456789"));
        let token = read_token(None, value).unwrap().unwrap();
        assert!(token.matches(b"from-the-variable-0123456789"));
        assert!(read_token(None, None).unwrap().is_none());
        let missing = dir.path().join("missing");
        let err = read_token(Some(missing.into()), None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read the read token file `"),
            "{err}"
        );
    }
}
