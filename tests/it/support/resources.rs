//! Resources built by hand, for tests that apply catalogs through the library rather
//! than from a site's manifests.

use tandem::path::RemotePath;
use tandem::resource::*;

/// `spec` as the resource `KIND:name`, declared at line 1 of `file`, ordered after
/// `after`, notifying nothing.
pub fn resource(spec: Spec, name: &str, file: &str, after: &[&Resource]) -> Resource {
    Resource {
        id: ResourceId::new(spec.kind(), name),
        spec,
        origin: Origin {
            file: file.into(),
            line: 1,
        },
        after: after.iter().map(|r| r.id.clone()).collect(),
        notify: Vec::new(),
    }
}

/// A file holding `bytes`, owned by root:root with mode 0644, not validated, no backup.
pub fn root_file(path: &str, bytes: &[u8]) -> FileSpec {
    FileSpec {
        path: RemotePath::parse(path).unwrap(),
        ensure: Presence::Present,
        content: Some(Content {
            bytes: bytes.to_vec(),
            secrets: Vec::new(),
            keyed_digest: None,
        }),
        owner: Some("root".into()),
        group: Some("root".into()),
        mode: Some(Mode(0o644)),
        validate: None,
        backup: false,
    }
}
