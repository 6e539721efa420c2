//! Azure access tokens. A service principal (tenant, client id, client secret from the
//! environment or from a file as `az ad sp create-for-rbac` prints it) goes through the
//! OAuth 2.0 client-credentials flow, one POST to the login endpoint; a VM's managed
//! identity asks the instance metadata service; or the Azure CLI hands out a token for
//! the operator's own login. Tokens are reused until a minute
//! before they expire, and dropped when Resource Manager answers 401. The secret is
//! only ever in a request body: never in a URL, a message or `Debug` output.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use hyper::Method;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::http::{form_encode, HttpClient, HttpError, Outgoing, Response};
use crate::datacenter::{AzureCredentialSource, AzureSettings};

pub const DEFAULT_LOGIN: &str = "https://login.microsoftonline.com";
/// The instance metadata service, reachable only from inside an Azure VM.
pub const DEFAULT_IDENTITY: &str = "http://169.254.169.254";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Missing(String),
    #[error("token request refused ({status}): {reason}")]
    Refused { status: u16, reason: String },
    #[error("token request failed: {0}")]
    Http(HttpError),
    #[error("azure cli: {0}")]
    Cli(String),
}

// By hand: `#[from]` would make the HTTP error the source as well, and a printed chain
// would show it twice.
impl From<HttpError> for TokenError {
    fn from(err: HttpError) -> TokenError {
        TokenError::Http(err)
    }
}

/// A client secret; `Debug` shows nothing of it.
struct ClientSecret(String);

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(..)")
    }
}

#[derive(Debug)]
enum Credential {
    ServicePrincipal {
        tenant: String,
        client_id: String,
        secret: ClientSecret,
    },
    ManagedIdentity {
        endpoint: String,
        client_id: Option<String>,
    },
    Cli,
}

#[derive(Clone)]
struct Token {
    value: String,
    renew_at: Instant,
}

/// Hands out bearer tokens for Resource Manager.
pub struct TokenSource {
    credential: Credential,
    login: String,
    /// The resource the token is for: `{management}/.default`.
    scope: String,
    resource: String,
    cached: Mutex<Option<Token>>,
}

/// The file `az ad sp create-for-rbac` prints.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpFile {
    app_id: String,
    password: String,
    tenant: String,
}

impl TokenSource {
    pub fn new(settings: &AzureSettings, management: &str) -> Result<Self, TokenError> {
        let credential = match settings.credentials {
            AzureCredentialSource::Environment => {
                let var = |name: &str| {
                    std::env::var(name)
                        .ok()
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| TokenError::Missing(format!("`{name}` is not set")))
                };
                Credential::ServicePrincipal {
                    tenant: var("AZURE_TENANT_ID")?,
                    client_id: var("AZURE_CLIENT_ID")?,
                    secret: ClientSecret(var("AZURE_CLIENT_SECRET")?),
                }
            }
            AzureCredentialSource::File => {
                let path: PathBuf = settings.credentials_file.clone().ok_or_else(|| {
                    TokenError::Missing(
                        "`credentials = \"file\"` needs `credentials_file`".to_string(),
                    )
                })?;
                let text = std::fs::read_to_string(&path).map_err(|err| {
                    TokenError::Missing(format!("cannot read `{}`: {err}", path.display()))
                })?;
                // serde's message could quote the file's content: keep only its position.
                let file: SpFile = serde_json::from_str(&text).map_err(|err| {
                    TokenError::Missing(format!(
                        "`{}` is not a service principal file (appId, password, tenant) \
                         near line {}",
                        path.display(),
                        err.line()
                    ))
                })?;
                Credential::ServicePrincipal {
                    tenant: file.tenant,
                    client_id: file.app_id,
                    secret: ClientSecret(file.password),
                }
            }
            AzureCredentialSource::ManagedIdentity => Credential::ManagedIdentity {
                endpoint: settings
                    .identity_endpoint
                    .clone()
                    .unwrap_or_else(|| DEFAULT_IDENTITY.to_string())
                    .trim_end_matches('/')
                    .to_string(),
                client_id: std::env::var("AZURE_CLIENT_ID")
                    .ok()
                    .filter(|v| !v.is_empty()),
            },
            AzureCredentialSource::Cli => Credential::Cli,
        };
        let login = settings
            .login_endpoint
            .clone()
            .unwrap_or_else(|| DEFAULT_LOGIN.to_string());
        let resource = management.trim_end_matches('/').to_string();
        Ok(TokenSource {
            credential,
            login: login.trim_end_matches('/').to_string(),
            scope: format!("{resource}/.default"),
            resource,
            cached: Mutex::new(None),
        })
    }

    /// A valid token, fetched when none is held or it is about to expire.
    pub async fn token(&self, http: &HttpClient) -> Result<String, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.renew_at) {
            return Ok(token.value.clone());
        }
        let token = match &self.credential {
            Credential::ServicePrincipal {
                tenant,
                client_id,
                secret,
            } => {
                self.client_credentials(http, tenant, client_id, secret)
                    .await?
            }
            Credential::ManagedIdentity {
                endpoint,
                client_id,
            } => {
                self.managed_identity(http, endpoint, client_id.as_deref())
                    .await?
            }
            Credential::Cli => self.cli().await?,
        };
        *cached = Some(token.clone());
        Ok(token.value)
    }

    /// Forgets the held token (Resource Manager said it is expired or revoked).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn client_credentials(
        &self,
        http: &HttpClient,
        tenant: &str,
        client_id: &str,
        secret: &ClientSecret,
    ) -> Result<Token, TokenError> {
        let url = format!("{}/{}/oauth2/v2.0/token", self.login, form_encode(tenant));
        let body = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
            form_encode(client_id),
            form_encode(&secret.0),
            form_encode(&self.scope)
        );
        let outgoing = Outgoing {
            method: Method::POST,
            url,
            headers: vec![(
                "content-type",
                "application/x-www-form-urlencoded".to_string(),
            )],
            body: Bytes::from(body),
        };
        let response = http.send(&outgoing).await?;
        granted(&response, Some(&secret.0))
    }

    async fn managed_identity(
        &self,
        http: &HttpClient,
        endpoint: &str,
        client_id: Option<&str>,
    ) -> Result<Token, TokenError> {
        let mut url = format!(
            "{endpoint}/metadata/identity/oauth2/token?api-version=2018-02-01&resource={}",
            form_encode(&self.resource)
        );
        if let Some(id) = client_id {
            url.push_str(&format!("&client_id={}", form_encode(id)));
        }
        let outgoing = Outgoing {
            method: Method::GET,
            url,
            headers: vec![("metadata", "true".to_string())],
            body: Bytes::new(),
        };
        let response = http.send(&outgoing).await?;
        granted(&response, None)
    }

    async fn cli(&self) -> Result<Token, TokenError> {
        let output = tokio::process::Command::new("az")
            .args([
                "account",
                "get-access-token",
                "--output",
                "json",
                "--resource",
            ])
            .arg(&self.resource)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|err| TokenError::Cli(format!("cannot run `az`: {err}")))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(TokenError::Cli(
                stderr.lines().next().unwrap_or("").to_string(),
            ));
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct CliToken {
            access_token: String,
        }
        let token: CliToken = serde_json::from_slice(&output.stdout).map_err(|_| {
            TokenError::Cli("unreadable `az account get-access-token` output".into())
        })?;
        // The CLI's expiry is in local time; five minutes is well inside any token life.
        Ok(Token {
            value: token.access_token,
            renew_at: Instant::now() + Duration::from_secs(300),
        })
    }
}

fn default_expiry() -> serde_json::Value {
    serde_json::Value::from(300)
}

/// A token from a token endpoint's answer, or the refusal it contains. `secret`, when
/// given, is blanked out of the message should a login server ever echo it back.
fn granted(response: &Response, secret: Option<&str>) -> Result<Token, TokenError> {
    let status = response.status.as_u16();
    if !response.status.is_success() {
        #[derive(Deserialize)]
        struct OAuthError {
            error: String,
            #[serde(default)]
            error_description: String,
        }
        let reason = match serde_json::from_slice::<OAuthError>(&response.body) {
            Ok(e) => {
                let first = e.error_description.lines().next().unwrap_or_default();
                format!("{}: {first}", e.error)
            }
            Err(_) => String::from_utf8_lossy(&response.body)
                .chars()
                .take(200)
                .collect(),
        };
        let reason = match secret {
            Some(secret) if !secret.is_empty() => reason.replace(secret, "[secret]"),
            _ => reason,
        };
        return Err(TokenError::Refused { status, reason });
    }
    #[derive(Deserialize)]
    struct Granted {
        access_token: String,
        #[serde(default = "default_expiry")]
        expires_in: serde_json::Value,
    }
    let granted: Granted =
        serde_json::from_slice(&response.body).map_err(|err| TokenError::Refused {
            status,
            reason: format!("unreadable token response near line {}", err.line()),
        })?;
    // Microsoft sends `expires_in` as a number, the metadata service as a string.
    let seconds = match &granted.expires_in {
        serde_json::Value::Number(n) => n.as_u64().unwrap_or(300),
        serde_json::Value::String(s) => s.parse().unwrap_or(300),
        _ => 300,
    };
    Ok(Token {
        value: granted.access_token,
        renew_at: Instant::now() + Duration::from_secs(seconds.saturating_sub(60)),
    })
}
