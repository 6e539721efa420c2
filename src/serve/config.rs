//! The daemon's configuration: `manifests/serve.toml` beside `site.toml`, read once at
//! start. Unknown keys are refused with file and line like every manifest; a receiver
//! that is configured is enabled, and must name where its secret comes from (an
//! environment variable or a file, never the command line). [`Config::load`] resolves
//! every secret before the daemon binds its port, so a missing one stops it there,
//! naming the receiver.
//!
//! ```toml
//! [repository]
//! url = "git://git.internal/site.git"   # git://, ssh://, https://, file:// or a path
//! branch = "master"
//!
//! [deploy]
//! policy = "apply"            # or "plan": plan and save, an operator applies
//! allow_rewind = false
//! require_signed = true
//! allowed_signers = "manifests/allowed_signers"   # relative to the site
//!
//! [receivers.github]
//! secret_env = "TANDEM_GITHUB_SECRET"
//! [receivers.generic]
//! secret_file = "/etc/tandem/ci-webhook-secret"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::manifest::{toml_error, ManifestError};
use crate::serve::observe::Receiver;

/// The configuration file, relative to the site root.
pub const CONFIG_FILE: &str = "manifests/serve.toml";

/// The body cap unless set: GitHub's pushes are a few KiB, its cap is 25 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{path}: receiver `{receiver}` is enabled but has no secret: set `secret_env` or `secret_file`")]
    NoSecret { path: PathBuf, receiver: String },
    #[error("{path}: receiver `{receiver}` is enabled but its secret variable `{var}` is unset or empty")]
    EmptyEnv {
        path: PathBuf,
        receiver: String,
        var: String,
    },
    #[error("{path}: receiver `{receiver}` is enabled but its secret file `{file}` cannot be read: {error}")]
    SecretFile {
        path: PathBuf,
        receiver: String,
        file: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: receiver `{receiver}` is enabled but its secret file `{file}` is empty")]
    EmptyFile {
        path: PathBuf,
        receiver: String,
        file: PathBuf,
    },
    #[error("{path}: no receiver is enabled: add a `[receivers.github]`, `[receivers.gitlab]` or `[receivers.generic]` table")]
    NoReceiver { path: PathBuf },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    repository: RawRepository,
    #[serde(default)]
    deploy: RawDeploy,
    #[serde(default)]
    receivers: BTreeMap<String, toml::Spanned<RawReceiver>>,
    #[serde(default)]
    serve: RawServe,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepository {
    url: toml::Spanned<String>,
    branch: Option<String>,
    deploy_key: Option<PathBuf>,
    host_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeploy {
    policy: Option<Policy>,
    allow_rewind: Option<bool>,
    require_signed: Option<bool>,
    allowed_signers: Option<toml::Spanned<PathBuf>>,
    parallel: Option<usize>,
    lock_wait: Option<String>,
    grace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceiver {
    enabled: Option<bool>,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServe {
    body_limit: Option<usize>,
    audit_interval: Option<String>,
    keep_connections: Option<String>,
    state_dir: Option<PathBuf>,
}

/// Plan only (saved for an operator), or plan and apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    Plan,
    Apply,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Plan => "plan",
            Policy::Apply => "apply",
        }
    }
}

/// A receiver's shared secret; zeroed on drop, never printed.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(Zeroizing::new(bytes.into()))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// How an `ssh://` repository is reached: a deploy key, and the server's host key
/// pinned (any other key fails the fetch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshRemote {
    pub deploy_key: PathBuf,
    /// The key blob (the base64 part of a known_hosts line, decoded).
    pub host_key: Vec<u8>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub url: String,
    pub ssh: Option<SshRemote>,
    pub branch: String,
    pub policy: Policy,
    pub allow_rewind: bool,
    /// The allowed signers file when the head must be signed.
    pub allowed_signers: Option<PathBuf>,
    pub parallel: usize,
    /// How long a run waits for an operator's site lock.
    pub lock_wait: Duration,
    /// After SIGTERM, how long in-flight nodes may go on.
    pub grace: Duration,
    pub receivers: BTreeMap<&'static str, (Receiver, Secret)>,
    pub body_limit: usize,
    pub audit_interval: Option<Duration>,
    /// How long an idle connection to a node is kept open between runs (`0s`: none).
    pub keep_connections: Duration,
    /// Mirror, checkouts and saved plans.
    pub state_dir: PathBuf,
}

impl Config {
    /// Reads `manifests/serve.toml` of the site at `site` and resolves every enabled
    /// receiver's secret.
    pub fn load(site: &Path) -> Result<Config, ConfigError> {
        let path = site.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|err| ManifestError::Read {
            path: path.clone(),
            reason: err.to_string(),
        })?;
        Config::parse(site, &path, &text, |var| std::env::var(var).ok())
    }

    /// [`Config::load`] on `text`, with `env` reading variables.
    pub fn parse(
        site: &Path,
        path: &Path,
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|err| toml_error(path, text, &err))?;
        let invalid = |offset: usize, message: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            line: crate::manifest::model::line_of(text, offset),
            message,
        };
        let url = raw.repository.url.get_ref().trim().to_string();
        check_url(&url).map_err(|m| invalid(raw.repository.url.span().start, m))?;
        let repo_line = key_line(text, "url");
        let ssh = match (
            url.starts_with("ssh://"),
            &raw.repository.deploy_key,
            &raw.repository.host_key,
        ) {
            (true, Some(key), Some(host_key)) => Some(SshRemote {
                deploy_key: site.join(key),
                host_key: host_key_blob(host_key).ok_or_else(|| ManifestError::Invalid {
                    path: path.to_path_buf(),
                    line: key_line(text, "host_key"),
                    message: "`host_key` is not an OpenSSH public key (`ssh-ed25519 AAAA...` or a known_hosts line)".into(),
                })?,
            }),
            (true, _, _) => {
                return Err(ManifestError::Invalid {
                    path: path.to_path_buf(),
                    line: repo_line,
                    message: "an `ssh://` repository needs `deploy_key` and `host_key` (the server's key, pinned)".into(),
                }
                .into())
            }
            (false, None, None) => None,
            (false, _, _) => {
                return Err(ManifestError::Invalid {
                    path: path.to_path_buf(),
                    line: repo_line,
                    message: "`deploy_key` and `host_key` are for `ssh://` repositories only".into(),
                }
                .into())
            }
        };
        let duration = |key: &str, value: Option<&String>, default: Duration| {
            value.map_or(Ok(default), |v| {
                humantime::parse_duration(v).map_err(|err| ManifestError::Invalid {
                    path: path.to_path_buf(),
                    line: key_line(text, key),
                    message: format!("`{key}`: `{v}` is not a duration: {err}"),
                })
            })
        };
        let require_signed = raw.deploy.require_signed.unwrap_or(false);
        let allowed_signers = match (&raw.deploy.allowed_signers, require_signed) {
            (Some(file), true) => Some(site.join(file.get_ref())),
            (None, true) => {
                return Err(ManifestError::Invalid {
                    path: path.to_path_buf(),
                    line: key_line(text, "require_signed"),
                    message: "`require_signed = true` needs `allowed_signers`".into(),
                }
                .into())
            }
            (Some(file), false) => {
                return Err(invalid(
                    file.span().start,
                    "`allowed_signers` is set but `require_signed` is not".into(),
                )
                .into())
            }
            (None, false) => None,
        };
        let mut receivers = BTreeMap::new();
        for (name, spanned) in &raw.receivers {
            let receiver = match name.as_str() {
                "github" => Receiver::Github,
                "gitlab" => Receiver::Gitlab,
                "generic" => Receiver::Generic,
                other => {
                    return Err(invalid(
                        spanned.span().start,
                        format!(
                            "unknown receiver `{other}` (known: `github`, `gitlab`, `generic`)"
                        ),
                    )
                    .into())
                }
            };
            let raw = spanned.get_ref();
            if raw.enabled == Some(false) {
                continue;
            }
            let secret = receiver_secret(site, path, receiver, raw, &env)?;
            receivers.insert(receiver.as_str(), (receiver, secret));
        }
        if receivers.is_empty() {
            return Err(ConfigError::NoReceiver {
                path: path.to_path_buf(),
            });
        }
        let audit_interval = match &raw.serve.audit_interval {
            Some(v) => Some(duration("audit_interval", Some(v), Duration::ZERO)?),
            None => None,
        };
        Ok(Config {
            url,
            ssh,
            branch: raw.repository.branch.unwrap_or_else(|| "master".into()),
            policy: raw.deploy.policy.unwrap_or(Policy::Apply),
            allow_rewind: raw.deploy.allow_rewind.unwrap_or(false),
            allowed_signers,
            parallel: raw.deploy.parallel.unwrap_or(50).max(1),
            lock_wait: duration(
                "lock_wait",
                raw.deploy.lock_wait.as_ref(),
                Duration::from_secs(600),
            )?,
            grace: duration(
                "grace",
                raw.deploy.grace.as_ref(),
                crate::apply::interrupt::DEFAULT_GRACE,
            )?,
            receivers,
            body_limit: raw.serve.body_limit.unwrap_or(DEFAULT_BODY_LIMIT),
            audit_interval: audit_interval.filter(|d| !d.is_zero()),
            keep_connections: duration(
                "keep_connections",
                raw.serve.keep_connections.as_ref(),
                crate::transport::pool::DEFAULT_MAX_IDLE,
            )?,
            state_dir: site.join(
                raw.serve
                    .state_dir
                    .unwrap_or_else(|| PathBuf::from(".tandem/serve")),
            ),
        })
    }
}

/// The line of the first `key =` in `text` (1 when absent).
fn key_line(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(1, |i| i + 1)
}

/// git://, ssh:// and local paths are fetched by this build; https:// needs a libgit2
/// TLS transport this build leaves out, so it is refused at start, not at first push.
fn check_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Err("`url` is empty".into());
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return match scheme {
            "git" | "file" | "ssh" => Ok(()),
            "https" | "http" => Err(format!(
                "`url`: `{scheme}://` is not supported by this build of tandem (it fetches over `git://`, `ssh://`, `file://` and local paths)"
            )),
            other => Err(format!("`url`: unknown scheme `{other}://`")),
        };
    }
    if url.contains('@') && url.contains(':') {
        return Err(format!(
            "`url`: `{url}` looks like an scp-style ssh address, which this build does not fetch"
        ));
    }
    Ok(())
}

/// The key blob of `ssh-TYPE BASE64 [comment]` or of a known_hosts line.
fn host_key_blob(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let fields: Vec<&str> = text.split_whitespace().collect();
    let at = fields
        .iter()
        .position(|f| f.starts_with("ssh-") || f.starts_with("ecdsa-"))?;
    base64::engine::general_purpose::STANDARD
        .decode(fields.get(at + 1)?)
        .ok()
        .filter(|blob| blob.len() > 16)
}

fn receiver_secret(
    site: &Path,
    path: &Path,
    receiver: Receiver,
    raw: &RawReceiver,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Secret, ConfigError> {
    let name = receiver.as_str().to_string();
    if let Some(var) = &raw.secret_env {
        return match env(var).filter(|v| !v.is_empty()) {
            Some(value) => Ok(Secret::new(value.into_bytes())),
            None => Err(ConfigError::EmptyEnv {
                path: path.to_path_buf(),
                receiver: name,
                var: var.clone(),
            }),
        };
    }
    let Some(file) = &raw.secret_file else {
        return Err(ConfigError::NoSecret {
            path: path.to_path_buf(),
            receiver: name,
        });
    };
    let file = site.join(file);
    let bytes = std::fs::read(&file).map_err(|error| ConfigError::SecretFile {
        path: path.to_path_buf(),
        receiver: name.clone(),
        file: file.clone(),
        error,
    })?;
    // A trailing newline is an editor's, not part of the secret.
    let text = Zeroizing::new(bytes);
    let trimmed = text.strip_suffix(b"\n").unwrap_or(&text);
    let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Err(ConfigError::EmptyFile {
            path: path.to_path_buf(),
            receiver: name,
            file,
        });
    }
    Ok(Secret::new(trimmed.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("/site"), Path::new("serve.toml"), text, |v| {
            (v == "SET").then(|| "s3cret".to_string())
        })
        .map_err(|e| e.to_string())
    }

    const BASE: &str = "[repository]\nurl = \"git://127.0.0.1/site.git\"\n";

    #[test]
    fn defaults_and_a_receiver_from_the_environment() {
        let config = parse(&format!("{BASE}[receivers.github]\nsecret_env = \"SET\"\n")).unwrap();
        assert_eq!(config.branch, "master");
        assert_eq!(config.policy, Policy::Apply);
        assert_eq!(config.body_limit, DEFAULT_BODY_LIMIT);
        assert_eq!(config.receivers["github"].1.expose(), b"s3cret");
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn kept_connections_idle_ten_minutes_unless_configured() {
        let github = "[receivers.github]\nsecret_env = \"SET\"\n";
        let config = parse(&format!("{BASE}{github}")).unwrap();
        assert_eq!(config.keep_connections, Duration::from_secs(600));
        let config = parse(&format!(
            "{BASE}[serve]\nkeep_connections = \"0s\"\n{github}"
        ))
        .unwrap();
        assert_eq!(config.keep_connections, Duration::ZERO);
        let err = parse(&format!(
            "{BASE}[serve]\nkeep_connections = \"long\"\n{github}"
        ))
        .unwrap_err();
        assert!(
            err.contains("`keep_connections`: `long` is not a duration"),
            "{err}"
        );
    }

    #[test]
    fn a_receiver_without_its_secret_is_refused_by_name() {
        let err = parse(&format!(
            "{BASE}[receivers.gitlab]\nsecret_env = \"UNSET\"\n"
        ))
        .unwrap_err();
        assert!(
            err.contains("receiver `gitlab`") && err.contains("`UNSET`"),
            "{err}"
        );
        let err = parse(&format!("{BASE}[receivers.generic]\n")).unwrap_err();
        assert!(
            err.contains("receiver `generic` is enabled but has no secret"),
            "{err}"
        );
        // Disabled receivers need nothing.
        let err = parse(&format!("{BASE}[receivers.generic]\nenabled = false\n")).unwrap_err();
        assert!(err.contains("no receiver is enabled"), "{err}");
    }

    #[test]
    fn unknown_keys_and_schemes_name_file_and_line() {
        let err = parse(&format!(
            "{BASE}[deploy]\npolicy = \"apply\"\nrewind = true\n[receivers.github]\nsecret_env = \"SET\"\n"
        ))
        .unwrap_err();
        assert!(
            err.starts_with("serve.toml:5:") && err.contains("rewind"),
            "{err}"
        );
        let err =
            parse("[repository]\nurl = \"ftp://x/y\"\n[receivers.github]\nsecret_env = \"SET\"\n")
                .unwrap_err();
        assert!(
            err.starts_with("serve.toml:2:") && err.contains("ftp"),
            "{err}"
        );
        let err = parse(&format!(
            "{BASE}[deploy]\nrequire_signed = true\n[receivers.github]\nsecret_env = \"SET\"\n"
        ))
        .unwrap_err();
        assert!(
            err.starts_with("serve.toml:4:") && err.contains("allowed_signers"),
            "{err}"
        );
    }

    #[test]
    fn an_ssh_repository_needs_a_deploy_key_and_a_pinned_host_key() {
        let err = parse("[repository]\nurl = \"ssh://git@h/site.git\"\n[receivers.github]\nsecret_env = \"SET\"\n")
            .unwrap_err();
        assert!(
            err.starts_with("serve.toml:2:") && err.contains("host_key"),
            "{err}"
        );
        let config = parse(
            "[repository]\nurl = \"ssh://git@h/site.git\"\ndeploy_key = \"/k\"\nhost_key = \"10.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBbq2Zy6tYFxPOfTn6o2nHA3Cpi1SUMDWTYsXe+wMfWd\"\n[receivers.github]\nsecret_env = \"SET\"\n",
        )
        .unwrap();
        let ssh = config.ssh.unwrap();
        assert_eq!(ssh.deploy_key, PathBuf::from("/k"));
        assert_eq!(&ssh.host_key[4..15], b"ssh-ed25519");
    }
}
