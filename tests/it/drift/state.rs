//! The node state file: each apply leaves it on the node in the same round trip, the
//! probe reads it back, and a no-op apply rewrites it only when it is stale.

use std::time::Duration;

use tandem::drift::probe::{read_nodes, Read, ReadOptions};
use tandem::fact::applied::{AppliedState, Side};
use tandem::node_state::{self, rid_digest};

use super::workspace;
use crate::support::site::SiteFleet;

const STATE: &str = "/var/lib/tandem/applied";

fn on_node(sf: &SiteFleet, host: &str) -> (AppliedState, String) {
    let text = sf.fleet.exec_ok(host, &format!("cat {STATE}"));
    let mtime = sf.fleet.exec_ok(host, &format!("stat -c %Y.%y {STATE}"));
    (
        AppliedState::parse(&text).unwrap_or_else(|e| panic!("{host}: {e}\n{text}")),
        mtime,
    )
}

#[test]
fn apply_leaves_the_state_file_and_the_probe_reads_it_back() {
    let sf = SiteFleet::up(
        "drift-state",
        "azure-westus:frontend:1,aws-useast1:frontend:1",
    );
    let site_toml = sf.site().join("manifests/site.toml");
    let text = std::fs::read_to_string(&site_toml).unwrap();
    std::fs::write(&site_toml, format!("{text}\n[failover]\nepoch = 5\n")).unwrap();
    sf.tandem(&["apply"]).expect_code(0);

    let ws = workspace(&sf);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let targets = rt.block_on(ws.targets(None)).unwrap();
    let connector = ws.settings.connector().unwrap();
    let options = ReadOptions {
        parallel: 4,
        command_timeout: Duration::from_secs(60),
        state_dir: tandem::path::RemotePath::parse("/var/lib/tandem").unwrap(),
        secrets: ws.secrets.clone(),
    };
    let reads = rt.block_on(read_nodes(&targets.catalogs, connector.clone(), &options));
    for (catalog, read) in targets.catalogs.iter().zip(&reads) {
        let host = catalog.node.name.as_str();
        let (state, _) = on_node(&sf, host);
        assert_eq!(state.epoch, 5, "{host}");
        let side = if host.contains("azure") {
            Side::Primary
        } else {
            Side::Standby
        };
        assert_eq!(state.side, side, "{host}");
        assert!(state.run.is_some(), "{host}: {state:?}");
        // One line per resource of the catalog, keyed by a digest of its id: no path of
        // the site appears in the file.
        assert_eq!(state.resources.len(), catalog.resources.len(), "{host}");
        for r in &catalog.resources {
            let line = node_state::line(&state, &r.id)
                .unwrap_or_else(|| panic!("{host}: no line for {}", r.id));
            assert_eq!(line.attrs.is_empty(), line.expect.is_none(), "{}", r.id);
            assert_eq!(rid_digest(&r.id).len(), 16);
        }
        let raw = sf.fleet.exec_ok(host, &format!("cat {STATE}"));
        assert!(!raw.contains("/etc/"), "{raw}");
        // The probe of the same round trip reads exactly what is on the node.
        let Read::Read { facts, plan, .. } = read else {
            panic!("{host}: {read:?}")
        };
        assert!(plan.is_empty(), "{host}: {:?}", plan.changes);
        assert_eq!(facts.applied.as_ref(), Some(&state), "{host}");
        assert!(
            facts.system.os_id.is_some() && facts.system.kernel.is_some(),
            "{:?}",
            facts.system
        );
    }

    // A new epoch with nothing else to change: the no-op apply rewrites the file.
    let (before, _) = on_node(&sf, "frontend-aws-1");
    let text = std::fs::read_to_string(&site_toml).unwrap();
    std::fs::write(&site_toml, text.replace("epoch = 5", "epoch = 6")).unwrap();
    sf.tandem(&["apply"]).expect_code(0);
    let (after, mtime) = on_node(&sf, "frontend-aws-1");
    assert_eq!(after.epoch, 6);
    assert_eq!(after.resources, before.resources);
    assert_ne!(after.run, before.run);

    // Up to date: the next no-op apply leaves it alone (same file, same mtime).
    sf.tandem(&["apply"]).expect_code(0);
    let (again, mtime_again) = on_node(&sf, "frontend-aws-1");
    assert_eq!(again, after);
    assert_eq!(mtime_again, mtime);
}
