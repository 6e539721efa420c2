//! The node state file's link to catalogs and specs: which record an apply writes for a
//! catalog ([`record`]), the digest of a resource's desired state ([`desired`]), the key
//! of a resource's line ([`rid_digest`]) and what the probe reads when a resource is in
//! sync with its spec ([`insync`]). The file itself (format, parsing, the shell that
//! writes and reads it) is `fact::applied`, below resources and catalogs, because every
//! probe's facts carry it; this module sits above both.

pub mod insync;

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::fact::applied::{
    AppliedContext, AppliedResource, AppliedState, Digester, FORMAT_VERSION,
};
use crate::resource::{ResourceId, Spec};
use crate::secret::SecretStore;

/// The key of a resource's line: 16 hex digits of SHA-256 of its id.
pub fn rid_digest(id: &ResourceId) -> String {
    hex::encode(&Sha256::digest(id.to_string().as_bytes())[..8])
}

/// The digest of a resource's desired state: its spec as compiled (secret-bearing
/// content serializes as its keyed digest, never as text).
pub fn desired(digester: &Digester<'_>, spec: &Spec) -> String {
    // Specs are plain data: serializing cannot fail; an empty text would only make
    // every resource look changed.
    let bytes = serde_json::to_vec(spec).unwrap_or_default();
    digester.digest("tandem applied desired", &bytes)
}

/// A resource's line in a node's record, if it has one.
pub fn line<'a>(state: &'a AppliedState, id: &ResourceId) -> Option<&'a AppliedResource> {
    state.resources.get(&rid_digest(id))
}

/// The record an apply of `catalog` writes when every step succeeds.
pub fn record(catalog: &Catalog, ctx: &AppliedContext, secrets: &SecretStore) -> AppliedState {
    let digester = Digester::new(secrets);
    let mut resources = BTreeMap::new();
    for r in &catalog.resources {
        let (expect, attrs) = match insync::expected(&r.spec, digester.keyed()) {
            Some(pairs) => (
                Some(digester.projection(&pairs)),
                pairs.iter().map(|(a, _)| a.to_string()).collect(),
            ),
            None => (None, Vec::new()),
        };
        resources.insert(
            rid_digest(&r.id),
            AppliedResource {
                desired: desired(&digester, &r.spec),
                expect,
                attrs,
            },
        );
    }
    AppliedState {
        version: FORMAT_VERSION,
        run: ctx.run,
        commit: ctx.commit.clone(),
        epoch: ctx.epoch,
        side: ctx.side_of(&catalog.node.datacenter),
        key: digester.key_id(),
        at: Some(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()),
        resources,
    }
}
