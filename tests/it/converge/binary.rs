//! A verbatim `source` file that is not UTF-8 (a DER certificate, a keystore) is bytes:
//! it compiles, plans with digests instead of a diff, and lands byte for byte.

use tandem::apply;
use tandem::catalog::Compiler;
use tandem::manifest::Site;
use tandem::plan::render::{self, NodeResult};
use tandem::plan::{Action, Diff};

use super::{connector, options, plan_one, site};

/// Bytes that are not UTF-8, with a NUL and a lone continuation byte.
const DER: &[u8] = b"\x30\x82\x01\x0a\x02\x82\x01\x01\x00\xc3\x28\xff\xfe\x80tail";

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test]
async fn a_binary_source_file_is_managed_as_bytes() {
    let s = site();
    let target = s.root.join("cert.der");
    let repo = tempfile::tempdir().unwrap();
    let minimal = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sites/minimal");
    copy_tree(&minimal, repo.path());
    let module = repo.path().join("modules/web");
    std::fs::create_dir_all(module.join("files")).unwrap();
    std::fs::write(module.join("files/cert.der"), DER).unwrap();
    let mut toml = std::fs::read_to_string(module.join("module.toml")).unwrap();
    toml.push_str(&format!(
        "\n[[resource]]\ntype = \"file\"\npath = \"{}\"\nsource = \"cert.der\"\nmode = \"0644\"\n",
        target.display()
    ));
    std::fs::write(module.join("module.toml"), toml).unwrap();

    let loaded = Site::load(repo.path()).unwrap();
    let compiler = Compiler::new(&loaded).unwrap();
    let mut catalog = compiler
        .compile(&loaded.nodes[0])
        .unwrap_or_else(|e| panic!("a binary source file should compile: {e}"));
    catalog
        .resources
        .retain(|r| r.id.to_string() == format!("file:{}", target.display()));
    assert_eq!(catalog.resources.len(), 1);

    let opts = options(&s.state);
    let plan = plan_one(&catalog, &opts).await;
    assert_eq!(plan.changes[0].action, Action::Create);
    let reports = apply::apply_nodes(vec![catalog.clone()], connector(), &opts).await;
    assert_eq!(
        reports[0].outcome,
        apply::Outcome::Changed,
        "{:?}",
        reports[0]
    );
    assert_eq!(std::fs::read(&target).unwrap(), DER);
    assert!(plan_one(&catalog, &opts).await.is_empty());

    // Other bytes on the node: the plan names both digests and shows no diff.
    std::fs::write(&target, b"\xff\x00other").unwrap();
    let plan = plan_one(&catalog, &opts).await;
    let old = hex_sha(b"\xff\x00other");
    let new = hex_sha(DER);
    match &plan.changes[0].diff {
        Some(Diff::Unavailable { reason }) => {
            assert_eq!(reason, &format!("binary content, sha256 {old} -> {new}"))
        }
        other => panic!("{other:?}"),
    }
    let text = render::text(&[NodeResult::Planned(plan)]);
    assert!(text.contains(&new), "{text}");
    apply::apply_nodes(vec![catalog], connector(), &opts).await;
    assert_eq!(std::fs::read(&target).unwrap(), DER);
}

fn hex_sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
