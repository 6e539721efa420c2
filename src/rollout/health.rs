//! Health checks between batches. The HTTP probe is a minimal HTTP/1.1 GET over a tokio
//! `TcpStream` (status line only; 2xx is healthy) so that no HTTP stack is pulled in for
//! one request. Command probes need the transport, so the driver takes them as a
//! callback.

use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::node::NodeName;

/// A node that did not pass the health check, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthFailure {
    pub node: NodeName,
    pub reason: String,
}

/// `http://host:port/path` with `{address}` already substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpTarget {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl HttpTarget {
    /// Parses `template` with `{address}` replaced by `address` (IPv6 in brackets).
    pub(crate) fn parse(template: &str, address: &str) -> Result<HttpTarget, String> {
        let address = if address.contains(':') && !address.starts_with('[') {
            format!("[{address}]")
        } else {
            address.to_string()
        };
        let url = template.replace("{address}", &address);
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("health check url `{template}` must start with `http://`"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => {
                let port = port.parse::<u16>().map_err(|_| {
                    format!("health check url `{template}` has a bad port `{port}`")
                })?;
                (host, port)
            }
            _ => (authority, 80),
        };
        if host.is_empty() || path.contains(char::is_whitespace) {
            return Err(format!("health check url `{template}` is not a valid url"));
        }
        Ok(HttpTarget {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            path: path.to_string(),
        })
    }
}

/// GETs `template` (with `{address}` replaced) and succeeds on a 2xx status; connect,
/// request and status line must all complete within `timeout`.
pub async fn check_http(template: &str, address: &str, timeout: Duration) -> Result<(), String> {
    let target = HttpTarget::parse(template, address)?;
    match tokio::time::timeout(timeout, get_status(&target)).await {
        Err(_) => Err(format!(
            "no answer from `{}:{}` within {}s",
            target.host,
            target.port,
            timeout.as_secs_f64()
        )),
        Ok(Err(err)) => Err(err),
        Ok(Ok(status)) if (200..300).contains(&status) => Ok(()),
        Ok(Ok(status)) => Err(format!("`GET {}` answered status {status}", target.path)),
    }
}

async fn get_status(target: &HttpTarget) -> Result<u16, String> {
    let mut stream = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|err| format!("cannot connect to `{}:{}`: {err}", target.host, target.port))?;
    let host_header = if target.host.contains(':') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: tandem\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|err| format!("cannot send the request to `{host_header}`: {err}"))?;
    let mut line = String::new();
    // The status line is short; a server sending more without a newline is not HTTP.
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(stream, 1024));
    reader
        .read_line(&mut line)
        .await
        .map_err(|err| format!("cannot read the answer of `{host_header}`: {err}"))?;
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(version), Some(Ok(status))) if version.starts_with("HTTP/1.") => Ok(status),
        _ => Err(format!(
            "`{host_header}` did not answer with an http status line: `{}`",
            line.trim_end().chars().take(80).collect::<String>()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    #[test]
    fn urls_parse_with_the_address_substituted() {
        let t = HttpTarget::parse("http://{address}:8080/healthz?full=1", "10.0.0.5").unwrap();
        assert_eq!(
            t,
            HttpTarget {
                host: "10.0.0.5".into(),
                port: 8080,
                path: "/healthz?full=1".into()
            }
        );
        let t = HttpTarget::parse("http://{address}", "fe-1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("fe-1", 80, "/")
        );
        let t = HttpTarget::parse("http://{address}:81/", "fd00::5").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("fd00::5", 81));
        assert!(HttpTarget::parse("https://{address}/", "a").is_err());
        assert!(HttpTarget::parse("http://{address}:99999/", "a").is_err());
        assert!(HttpTarget::parse("http://:80/", "a").is_err());
    }

    /// A one-shot HTTP server on loopback answering `status_line`, or never answering.
    async fn server(status_line: Option<&'static str>) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = socket.read(&mut buf).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            match status_line {
                Some(line) => {
                    let body = format!("{line}\r\nContent-Length: 2\r\n\r\nok");
                    socket.write_all(body.as_bytes()).await.unwrap();
                }
                None => tokio::time::sleep(Duration::from_secs(5)).await,
            }
            request
        });
        (port, handle)
    }

    #[tokio::test]
    async fn a_2xx_answer_is_healthy_and_the_request_is_well_formed() {
        let (port, handle) = server(Some("HTTP/1.1 204 No Content")).await;
        let url = format!("http://{{address}}:{port}/healthz");
        check_http(&url, "127.0.0.1", Duration::from_secs(2))
            .await
            .unwrap();
        let request = handle.await.unwrap();
        assert!(
            request.starts_with("GET /healthz HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
            "{request}"
        );
    }

    #[tokio::test]
    async fn a_5xx_answer_is_unhealthy() {
        let (port, _handle) = server(Some("HTTP/1.1 503 Service Unavailable")).await;
        let err = check_http(
            &format!("http://{{address}}:{port}/"),
            "127.0.0.1",
            Duration::from_secs(2),
        )
        .await
        .unwrap_err();
        assert_eq!(err, "`GET /` answered status 503");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let (port, _handle) = server(None).await;
        let started = std::time::Instant::now();
        let err = check_http(
            &format!("http://{{address}}:{port}/"),
            "127.0.0.1",
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
        assert!(err.contains("within 0.3s"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn a_closed_port_is_unhealthy() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = check_http(
            &format!("http://{{address}}:{port}/"),
            "127.0.0.1",
            Duration::from_secs(2),
        )
        .await
        .unwrap_err();
        assert!(err.starts_with("cannot connect to `127.0.0.1:"), "{err}");
    }
}
