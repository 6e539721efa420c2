//! The short-lived inventory cache: one JSON file per datacenter under `.tandem/`,
//! keyed by the site name, the datacenter and its discovery settings, so that `plan`
//! then `apply` lists the clouds once and a settings change is never served stale
//! nodes. Entries older than the TTL (60 s by default) are ignored; `--refresh`
//! bypasses reading. Only node lists are stored, never credentials.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{DatacenterSpec, Discovered, ProviderConfig};

pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// Bumped when `Discovered` changes shape, so old files are ignored, not misread.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Entry {
    format: u32,
    key: String,
    /// Seconds since the Unix epoch when the listing was taken.
    listed_at: u64,
    found: Discovered,
}

/// The cache slot of one datacenter.
#[derive(Debug, Clone)]
pub struct Cache {
    path: PathBuf,
    key: String,
    ttl: Duration,
}

impl Cache {
    pub fn new(dir: &Path, site: &str, spec: &DatacenterSpec, ttl: Duration) -> Self {
        let settings = match &spec.provider {
            ProviderConfig::Static => String::new(),
            ProviderConfig::Aws(aws) => serde_json::to_string(aws).unwrap_or_default(),
            ProviderConfig::Azure(azure) => serde_json::to_string(azure).unwrap_or_default(),
        };
        let mut hash = Sha256::new();
        for part in [
            site,
            spec.name.as_str(),
            &spec.provider.kind().to_string(),
            &settings,
        ] {
            hash.update(part.len().to_le_bytes());
            hash.update(part.as_bytes());
        }
        let key = hex::encode(hash.finalize());
        Cache {
            path: dir.join(format!("inventory-{}.json", sanitize(spec.name.as_str()))),
            key,
            ttl,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cached listing, when it is for these settings and fresh enough.
    pub fn read(&self) -> Option<Discovered> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let entry: Entry = serde_json::from_str(&text).ok()?;
        let age = now().checked_sub(entry.listed_at)?;
        (entry.format == FORMAT && entry.key == self.key && age < self.ttl.as_secs())
            .then_some(entry.found)
    }

    /// Stores a listing: written beside the final name and renamed, so a reader sees
    /// the old file or the new one.
    pub fn write(&self, found: &Discovered) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or_else(|| Path::new("."));
        crate::state_dir::create(dir)?;
        let entry = Entry {
            format: FORMAT,
            key: self.key.clone(),
            listed_at: now(),
            found: found.clone(),
        };
        let text = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        let staged = self
            .path
            .with_extension(format!("json.{}", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&staged)?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&staged, &self.path)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datacenter::AwsSettings;
    use crate::node::DatacenterName;

    fn spec(region: &str) -> DatacenterSpec {
        let settings: AwsSettings =
            toml::from_str(&format!("regions = [\"{region}\"]")).expect("valid settings");
        DatacenterSpec {
            name: DatacenterName::new("aws-x").unwrap(),
            primary: false,
            provider: ProviderConfig::Aws(settings),
        }
    }

    #[test]
    fn a_listing_is_served_back_until_settings_change_or_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let found = Discovered::default();
        let cache = Cache::new(dir.path(), "site", &spec("us-east-1"), DEFAULT_TTL);
        assert!(cache.read().is_none());
        cache.write(&found).unwrap();
        assert_eq!(cache.read(), Some(found));
        let other = Cache::new(dir.path(), "site", &spec("eu-west-1"), DEFAULT_TTL);
        assert_eq!(other.path(), cache.path());
        assert!(other.read().is_none(), "different settings must miss");
        let expired = Cache::new(dir.path(), "site", &spec("us-east-1"), Duration::ZERO);
        assert!(expired.read().is_none(), "a zero TTL must miss");
    }
}
