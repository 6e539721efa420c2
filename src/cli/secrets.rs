//! `tandem secrets`: create and edit the site's encrypted secrets file
//! (`manifests/secrets.age`) without the `age` CLI, and list what a run would see.
//! Values are read from standard input and never printed: only names and fingerprints.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;
use anyhow::{bail, Context};
use zeroize::Zeroizing;

use crate::cli::{Format, Global};
use crate::exit::Status;
use crate::secret::{
    is_valid_name, open_secrets_file, write_secrets_file, DigestKey, Secret, SecretSources,
    SecretStore, ENV_PREFIX, IDENTITY_ENV, SECRETS_FILE,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The age identity file that decrypts (and re-encrypts) the secrets file
    #[arg(long, global = true, env = IDENTITY_ENV)]
    pub age_identity: Option<PathBuf>,
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// List secret names, fingerprints and where each comes from
    List,
    /// Set a secret from standard input (one trailing newline is dropped unless --raw);
    /// the first set also creates the site's digest key, inside the encrypted file
    Set {
        name: String,
        /// Keep standard input byte for byte, trailing newline included
        #[arg(long)]
        raw: bool,
    },
    /// Remove a secret from the encrypted file
    Remove { name: String },
    /// Write a new age identity file (mode 0600) and print its public key
    Keygen { out: PathBuf },
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<Status> {
    let site = &global.site;
    match args.action {
        Action::List => list(site, args.age_identity, global.format),
        Action::Set { name, raw } => set(site, &identity(args.age_identity)?, &name, raw),
        Action::Remove { name } => remove(site, &identity(args.age_identity)?, &name),
        Action::Keygen { out } => keygen(&out),
    }
}

fn identity(identity: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    identity.with_context(|| {
        format!("no age identity: set {IDENTITY_ENV} or pass --age-identity to edit secrets")
    })
}

/// The secrets currently in the file (none when it does not exist yet) and the site's
/// digest key: the file's own, or a new one for a file that has none yet (so every
/// rewrite leaves a keyed file).
fn file_secrets(site: &Path, identity: &Path) -> anyhow::Result<(Vec<Secret>, DigestKey)> {
    let path = site.join(SECRETS_FILE);
    let (secrets, key) = if path.exists() {
        let decrypted = open_secrets_file(&path, identity)?;
        (decrypted.secrets, decrypted.key)
    } else {
        (Vec::new(), None)
    };
    let key = match key {
        Some(key) => key,
        None => DigestKey::generate().context("cannot generate the site's digest key")?,
    };
    Ok((secrets, key))
}

fn list(site: &Path, identity: Option<PathBuf>, format: Format) -> anyhow::Result<Status> {
    let mut sources = SecretSources::from_env();
    sources.identity = identity;
    let store = SecretStore::load_from(site, &sources)?;
    if store.locked().is_some() && store.locked_names().is_none() {
        bail!(
            "`{SECRETS_FILE}` is encrypted and lists no names in clear (an older file): set {IDENTITY_ENV} or pass --age-identity to list it"
        );
    }
    // Locked: the names the file lists in clear, without fingerprints (not computable
    // without the key), then what the environment provides.
    let locked_rows = store
        .locked_names()
        .into_iter()
        .flatten()
        .filter(|n| store.get(n).is_none())
        .map(|name| {
            (
                name.clone(),
                "-".to_string(),
                format!("{SECRETS_FILE} (not decrypted)"),
            )
        });
    let rows: Vec<(String, String, String)> = locked_rows
        .chain(store.iter().map(|secret| {
            let var = format!("{ENV_PREFIX}{}", secret.name().to_ascii_uppercase());
            let source = if sources
                .env
                .iter()
                .any(|(key, _)| key.to_str() == Some(&var))
            {
                format!("env {var}")
            } else {
                SECRETS_FILE.to_string()
            };
            let fingerprint = if store.key().is_some() {
                secret.fingerprint().to_string()
            } else {
                "-".to_string()
            };
            (secret.name().to_string(), fingerprint, source)
        }))
        .collect();
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            let json: Vec<_> = rows
                .iter()
                .map(|(name, fingerprint, source)| {
                    serde_json::json!({"name": name, "fingerprint": fingerprint, "source": source})
                })
                .collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        }
        Format::Text => {
            let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(4).max(4);
            writeln!(out, "{:width$}  FINGERPRINT  SOURCE", "NAME")?;
            for (name, fingerprint, source) in &rows {
                writeln!(out, "{name:width$}  {fingerprint:11}  {source}")?;
            }
        }
    }
    Ok(Status::Ok)
}

fn set(site: &Path, identity: &Path, name: &str, raw: bool) -> anyhow::Result<Status> {
    if !is_valid_name(name) {
        bail!("invalid secret name `{name}`: use lowercase letters, digits and `_`");
    }
    let (mut secrets, key) = file_secrets(site, identity)?;
    if std::io::stdin().is_terminal() {
        eprintln!("reading the value of `{name}` from standard input; end with Ctrl-D");
    }
    let mut value = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut value)
        .context("cannot read the secret value from standard input")?;
    if !raw && value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        bail!("refusing to set `{name}` to an empty value");
    }
    let mut secret = Secret::new(name, value.as_str());
    secret.rekey(&key);
    let marker = secret.fingerprint().marker();
    secrets.retain(|s| s.name() != name);
    secrets.push(secret);
    let path = write_secrets_file(site, identity, &secrets, &key)?;
    println!("set `{name}` {marker} in {}", path.display());
    Ok(Status::Ok)
}

fn remove(site: &Path, identity: &Path, name: &str) -> anyhow::Result<Status> {
    let (mut secrets, key) = file_secrets(site, identity)?;
    let before = secrets.len();
    secrets.retain(|s| s.name() != name);
    if secrets.len() == before {
        bail!("no secret `{name}` in `{SECRETS_FILE}`");
    }
    let path = write_secrets_file(site, identity, &secrets, &key)?;
    println!("removed `{name}` from {}", path.display());
    Ok(Status::Ok)
}

fn keygen(out: &Path) -> anyhow::Result<Status> {
    use std::os::unix::fs::OpenOptionsExt;

    let identity = age::x25519::Identity::generate();
    let public = identity.to_public().to_string();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("cannot create identity file `{}`", out.display()))?;
    let text = Zeroizing::new(format!(
        "# age identity written by `tandem secrets keygen`\n# public key: {public}\n{}\n",
        identity.to_string().expose_secret()
    ));
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write identity file `{}`", out.display()))?;
    println!("{public}");
    Ok(Status::Ok)
}
