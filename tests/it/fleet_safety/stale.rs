//! A saved plan applied after a managed file changed on one host: that resource is
//! refused by name, that host is not touched at all, the others converge, and the run
//! history records it.

use super::{fingerprint, last_apply, node_line, outcomes, FRONTEND_FILES};
use crate::support::site::SiteFleet;

#[test]
fn stale_saved_plan_refuses_the_changed_file_and_leaves_its_node_untouched() {
    let sf = SiteFleet::up("fs-stale", "azure-westus:frontend:1,aws-useast1:frontend:2");
    let fleet = &sf.fleet;
    let plan_file = sf.site().join("saved-plan.json");
    let plan_path = plan_file.to_str().unwrap();
    sf.tandem(&["plan", "--out", plan_path]).expect_code(2);

    // Someone edits nginx.conf on one host after the plan read it.
    let moved = "frontend-aws-2";
    fleet.exec_ok(moved, "echo '# edited by hand' >> /etc/nginx/nginx.conf");
    let before = fingerprint(fleet, moved);

    let apply = sf.tandem(&["apply", plan_path]);
    assert_ne!(
        apply.code,
        Some(0),
        "a refused resource must not exit 0\n{apply}"
    );
    assert!(
        apply
            .stdout
            .contains("REFUSED file:/etc/nginx/nginx.conf: its state changed since the plan"),
        "the refused resource should be named\n{apply}"
    );
    let refused: Vec<&str> = apply
        .stdout
        .lines()
        .filter(|l| l.contains("REFUSED"))
        .collect();
    assert_eq!(refused.len(), 1, "only the edited file is refused\n{apply}");
    let line =
        node_line(&apply.stdout, moved).unwrap_or_else(|| panic!("no line for {moved}\n{apply}"));
    assert!(line.contains("): failed"), "{line}\n{apply}");
    assert_eq!(
        fingerprint(fleet, moved),
        before,
        "{moved} was changed although its plan was refused"
    );
    for host in ["frontend-azure-1", "frontend-aws-1"] {
        let line =
            node_line(&apply.stdout, host).unwrap_or_else(|| panic!("no line for {host}\n{apply}"));
        assert!(
            line.contains("changed"),
            "{host} should converge: {line}\n{apply}"
        );
        for file in FRONTEND_FILES {
            fleet.exec_ok(host, &format!("test -s {file}"));
        }
    }
    sf.tandem(&["plan", "--on", "frontend-azure-1,frontend-aws-1"])
        .expect_code(0);

    // The history has the run with the refused node not converged.
    let detail = last_apply(&sf);
    assert_eq!(detail["kind"], "apply", "{detail}");
    assert_ne!(detail["status"], "succeeded", "{detail}");
    let outcomes = outcomes(&detail);
    eprintln!("stale plan run: {} {outcomes:?}", detail["status"]);
    for (node, outcome) in &outcomes {
        if node == moved {
            assert_ne!(outcome, "changed", "{detail}");
        } else {
            assert_eq!(outcome, "changed", "{node}: {detail}");
        }
    }
    assert_eq!(outcomes.len(), 3, "{detail}");
}
