//! `tandem drift` and the node state file it reads, on real fleet hosts: the state an
//! apply leaves on each node (`state`), and the drift report's statuses, formats,
//! history and acknowledgements.

mod state;

use std::sync::Arc;

use tandem::run::{Settings, Workspace};
use tandem::secret::{SecretSources, SecretStore};

use crate::support::site::SiteFleet;

/// The library's workspace for the fleet's site, with the demo secrets decrypted without
/// touching the process environment.
fn workspace(sf: &SiteFleet) -> Workspace {
    let mut settings = Settings::new(sf.site());
    settings.inventory = Some(sf.inventory().to_path_buf());
    settings.connection.known_hosts = Some(sf.fleet.known_hosts_path());
    settings.connection.identity = Some(sf.fleet.key_path());
    let sources = SecretSources {
        identity: Some(sf.site().join("manifests/DEMO-ONLY-age-identity.txt")),
        env: Vec::new(),
    };
    let secrets = SecretStore::load_from(sf.site(), &sources).expect("demo secrets");
    Workspace {
        site: tandem::manifest::Site::load(sf.site()).expect("example site loads"),
        secrets: Arc::new(secrets),
        source: tandem::manifest::source::SiteSource::read(sf.site()).expect("site source"),
        settings,
    }
}
