//! A saved plan reaches only the machines it read, and shows only what it would apply:
//! an inventory that now maps a node to another machine's address, or a node that
//! presents another host key than the plan recorded, is refused by name before anything
//! is sent to it; a plan file edited to hide a change is refused by `tandem show`.

use super::{fingerprint, node_line};
use crate::support::site::SiteFleet;

#[test]
fn a_saved_plan_goes_only_to_the_machines_it_read_and_shows_only_what_it_applies() {
    let sf = SiteFleet::up("fs-ident", "azure-westus:frontend:1,aws-useast1:frontend:1");
    // Each node's refusal is its own; the threshold has tests of its own.
    sf.tolerate_failures();
    let fleet = &sf.fleet;
    let plan_file = sf.site().join("saved-plan.json");
    let plan_path = plan_file.to_str().unwrap();
    sf.tandem(&["plan", "--out", plan_path]).expect_code(2);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_file).unwrap()).unwrap();
    for node in saved["nodes"].as_array().unwrap() {
        assert!(
            node["host_key"].as_str().unwrap().contains(" SHA256:"),
            "the plan records the verified host key: {node}"
        );
        assert!(!node["address"].as_str().unwrap().is_empty(), "{node}");
    }
    sf.tandem(&["show", plan_path]).expect_code(2);

    // A reviewer's view edited: the first added line of nginx.conf's diff rewritten.
    let mut forged = saved.clone();
    let unified = forged["results"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .flat_map(|r| r["changes"].as_array_mut().unwrap().iter_mut())
        .find(|c| c["id"] == "file:/etc/nginx/nginx.conf")
        .expect("the plan changes nginx.conf")
        .pointer_mut("/diff/unified")
        .expect("with a text diff");
    let text = unified.as_str().unwrap().to_string();
    let added = text
        .lines()
        .find(|l| l.starts_with('+') && !l.starts_with("+++"))
        .expect("an added line");
    *unified = text.replacen(added, "+    # nothing to see here", 1).into();
    let forged = serde_json::to_string(&forged).unwrap();
    let forged_file = sf.site().join("forged-plan.json");
    std::fs::write(&forged_file, forged).unwrap();
    let show = sf.tandem(&["show", forged_file.to_str().unwrap()]);
    show.expect_code(1);
    assert!(
        show.stderr.contains("the saved plan was edited")
            && show
                .stderr
                .contains("the diff of `file:/etc/nginx/nginx.conf`"),
        "{show}"
    );

    // The inventory now swaps the two nodes' addresses: neither is the machine read.
    let (a, b) = ("frontend-azure-1", "frontend-aws-1");
    let before = [fingerprint(fleet, a), fingerprint(fleet, b)];
    sf.edit_inventory(|doc| {
        let nodes = doc["node"].as_array_mut().unwrap();
        let address = |nodes: &Vec<toml::Value>, name: &str| {
            nodes
                .iter()
                .find(|n| n["name"].as_str() == Some(name))
                .unwrap()["address"]
                .clone()
        };
        let (addr_a, addr_b) = (address(nodes, a), address(nodes, b));
        for n in nodes.iter_mut() {
            let t = n.as_table_mut().unwrap();
            match t["name"].as_str() {
                Some(name) if name == a => t.insert("address".into(), addr_b.clone()),
                Some(name) if name == b => t.insert("address".into(), addr_a.clone()),
                _ => None,
            };
        }
    });
    let apply = sf.tandem(&["apply", plan_path]);
    assert_eq!(apply.code, Some(3), "{apply}");
    for host in [a, b] {
        let line = node_line(&apply.stdout, host).unwrap_or_else(|| panic!("{host}\n{apply}"));
        assert!(
            line.contains("not the machine the saved plan read"),
            "{line}\n{apply}"
        );
    }
    assert_eq!(
        [fingerprint(fleet, a), fingerprint(fleet, b)],
        before,
        "a refused node's machine was changed"
    );

    // Back to the real addresses, but the plan names another host key for one node.
    sf.edit_inventory(|doc| {
        let nodes = doc["node"].as_array_mut().unwrap();
        let addresses: Vec<toml::Value> = nodes.iter().map(|n| n["address"].clone()).collect();
        let (first, second) = (addresses[0].clone(), addresses[1].clone());
        nodes[0]
            .as_table_mut()
            .unwrap()
            .insert("address".into(), second);
        nodes[1]
            .as_table_mut()
            .unwrap()
            .insert("address".into(), first);
    });
    let mut doc: serde_json::Value = saved.clone();
    let entry = doc["nodes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|n| n["node"] == b)
        .unwrap();
    entry["host_key"] = "ssh-ed25519 SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into();
    std::fs::write(&plan_file, serde_json::to_string(&doc).unwrap()).unwrap();
    let apply = sf.tandem(&["apply", plan_path]);
    assert_eq!(apply.code, Some(3), "{apply}");
    let line = node_line(&apply.stdout, b).unwrap_or_else(|| panic!("{b}\n{apply}"));
    assert!(
        line.contains("the plan read host key `ssh-ed25519 SHA256:AAAA"),
        "{line}\n{apply}"
    );
    assert_eq!(fingerprint(fleet, b), before[1], "{b} was changed");
    let line = node_line(&apply.stdout, a).unwrap_or_else(|| panic!("{a}\n{apply}"));
    assert!(
        line.contains("changed"),
        "{a} is the machine read: {line}\n{apply}"
    );
}
