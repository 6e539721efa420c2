//! The small HTTP client the Azure provider talks through: hyper 1 over rustls, the
//! same stack the AWS SDK brings, so the binary has one TLS implementation. It bounds
//! every request in time and body size, retries throttling (429 with `Retry-After`) and
//! transient 5xx a bounded number of times, and refuses plain `http://` except to
//! loopback and the instance metadata service, because requests carry a bearer token or
//! a client secret.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Largest response body read (an ARM page of VMs is far below this).
const MAX_BODY: usize = 32 * 1024 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per request, the first included.
const MAX_ATTEMPTS: u32 = 5;
/// Longest wait honoured from a `Retry-After` header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// An HTTP failure, phrased for an operator; never holds headers or request bodies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("`{url}`: {reason}")]
    Transport { url: String, reason: String },
    #[error("`{url}` answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("refusing plain http to `{url}`: only loopback may be reached without tls")]
    Insecure { url: String },
}

/// A response that arrived with a status, successful or not.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub body: Bytes,
}

/// One request to send, possibly more than once.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpClient {
    pub fn new() -> Result<Self, HttpError> {
        // An unreachable endpoint (a dead server, no metadata service off Azure) must
        // fail in seconds, not after the operating system's connect timeout.
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(|err| HttpError::Transport {
                url: "(tls setup)".to_string(),
                reason: format!("cannot load the system's root certificates: {err}"),
            })?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(HttpClient { client })
    }

    /// Sends with bounded retries on throttling, 5xx and connection failures. Other
    /// statuses (4xx included) come back as a `Response` for the caller to judge.
    pub async fn send(&self, outgoing: &Outgoing) -> Result<Response, HttpError> {
        let uri: Uri = outgoing.url.parse().map_err(|err| HttpError::Transport {
            url: outgoing.url.clone(),
            reason: format!("invalid url: {err}"),
        })?;
        check_scheme(&uri, &outgoing.url)?;
        let mut attempt = 1;
        loop {
            let result = self.send_once(outgoing, &uri).await;
            let wait = match &result {
                Ok((response, retry_after)) if retryable(response.status) => {
                    retry_after.unwrap_or_else(|| backoff(attempt))
                }
                Ok(_) => return result.map(|(response, _)| response),
                Err(_) => backoff(attempt),
            };
            if attempt >= MAX_ATTEMPTS {
                return match result {
                    Ok((response, _)) => Err(status_error(&outgoing.url, &response)),
                    Err(err) => Err(err),
                };
            }
            tokio::time::sleep(wait.min(MAX_RETRY_AFTER)).await;
            attempt += 1;
        }
    }

    async fn send_once(
        &self,
        outgoing: &Outgoing,
        uri: &Uri,
    ) -> Result<(Response, Option<Duration>), HttpError> {
        let transport = |reason: String| HttpError::Transport {
            url: outgoing.url.clone(),
            reason,
        };
        let mut builder = Request::builder()
            .method(outgoing.method.clone())
            .uri(uri.clone());
        for (name, value) in &outgoing.headers {
            builder = builder.header(*name, value);
        }
        let request = builder
            .body(Full::new(outgoing.body.clone()))
            .map_err(|err| transport(format!("invalid request: {err}")))?;
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| transport(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())))?
            .map_err(|err| transport(error_chain(&err)))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = tokio::time::timeout(
            REQUEST_TIMEOUT,
            Limited::new(response.into_body(), MAX_BODY).collect(),
        )
        .await
        .map_err(|_| transport("body not received in time".to_string()))?
        .map_err(|err| transport(format!("reading the body: {err}")))?
        .to_bytes();
        Ok((Response { status, body }, retry_after))
    }
}

/// A non-success response as an error, with a short excerpt of its body.
pub fn status_error(url: &str, response: &Response) -> HttpError {
    let text = String::from_utf8_lossy(&response.body);
    let excerpt: String = text.chars().take(300).collect();
    HttpError::Status {
        url: url.to_string(),
        status: response.status.as_u16(),
        body: excerpt,
    }
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250 * 2u64.pow(attempt.min(6)))
}

fn check_scheme(uri: &Uri, url: &str) -> Result<(), HttpError> {
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if uri.host().is_some_and(is_local) => Ok(()),
        _ => Err(HttpError::Insecure {
            url: url.to_string(),
        }),
    }
}

/// Loopback, or the link-local instance metadata service (plain http by design, and
/// never routed off the VM).
fn is_local(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host == "169.254.169.254"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        let ok = |url: &str| check_scheme(&url.parse().unwrap(), url).is_ok();
        assert!(ok("http://127.0.0.1:8080/x"));
        assert!(ok("http://localhost/x"));
        assert!(ok("http://[::1]:80/x"));
        assert!(ok("https://management.azure.com/"));
        assert!(!ok("http://management.azure.com/"));
        assert!(!ok("http://10.0.0.1/"));
        assert!(ok("http://169.254.169.254/metadata"));
    }

    #[test]
    fn form_encoding_escapes_reserved_characters() {
        assert_eq!(form_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
