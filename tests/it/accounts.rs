//! Users and groups read on a real fleet host by the probe's one `getent passwd` and one
//! keyed `getent group` (no `id`, no process per account): the plan is what `id -Gn` and
//! `getent` on the host itself say, the probe runs exactly two `getent` and nothing per
//! account, and the generated `usermod`/`groupmod`/`useradd` steps converge the host.

use tandem::catalog::Catalog;
use tandem::fact::{protocol, NodeFacts, Token};
use tandem::plan::NodePlan;
use tandem::resource::*;

use crate::support::fleet::{Fleet, Mode};

const HOST: &str = "frontend-azure-1";

fn user(name: &str, group: Option<&str>, groups: &[&str], shell: Option<&str>) -> Spec {
    Spec::User(UserSpec {
        name: name.into(),
        ensure: Presence::Present,
        uid: None,
        group: group.map(str::to_string),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        home: None,
        shell: shell.map(str::to_string),
        system: false,
    })
}

fn group(name: &str, gid: Option<u32>) -> Spec {
    Spec::Group(GroupSpec {
        name: name.into(),
        ensure: Presence::Present,
        gid,
        system: false,
    })
}

fn catalog(fleet: &Fleet, specs: Vec<Spec>) -> Catalog {
    Catalog {
        node: fleet.node(HOST).clone(),
        resources: specs
            .into_iter()
            .map(|spec| {
                let name = match &spec {
                    Spec::User(u) => u.name.clone(),
                    Spec::Group(g) => g.name.clone(),
                    _ => unreachable!("accounts only"),
                };
                Resource {
                    id: ResourceId::new(spec.kind(), name),
                    spec,
                    origin: Origin {
                        file: "accounts".into(),
                        line: 1,
                    },
                    after: Vec::new(),
                    notify: Vec::new(),
                }
            })
            .collect(),
    }
}

/// Probes the host (the probe script run by `sh` inside it) and plans the catalog.
fn probe(fleet: &Fleet, catalog: &Catalog) -> (NodeFacts, NodePlan, String) {
    let token = Token::random();
    let (script, stdin) = tandem::plan::probe_script(catalog, token.clone());
    assert!(stdin.is_empty());
    let out = fleet.exec_ok(HOST, &script);
    let facts = NodeFacts::parse(out.as_bytes(), &token).unwrap();
    let plan = tandem::plan::plan_node(catalog, &facts, &Default::default()).unwrap();
    (facts, plan, script)
}

/// `kind:name action detail,detail` for each change, sorted.
fn changes(plan: &NodePlan) -> Vec<String> {
    let mut all: Vec<String> = plan
        .changes
        .iter()
        .map(|c| {
            let details: Vec<String> = c
                .details
                .iter()
                .map(|d| format!("{}={}", d.attr, d.to.clone().unwrap_or_default()))
                .collect();
            format!("{} {} {}", c.id, c.action.as_str(), details.join(","))
        })
        .collect();
    all.sort();
    all
}

#[test]
fn accounts_plan_from_one_passwd_and_one_group_read() {
    let fleet = Fleet::up("accounts", "azure-westus:frontend:1", Mode::Tini);
    // `web` is in `extra1` but not `extra2`; `web2` (a name `web` is a prefix of) is in
    // `web2grp`; `pg`'s primary group `pgrp` does not list it as a member; `lonely` has
    // no members.
    fleet.exec_ok(
        HOST,
        "set -e; groupadd -g 2001 webg; groupadd extra1; groupadd extra2; groupadd web2grp; \
         groupadd lonely; groupadd -g 2050 pgrp; \
         useradd -g webg -G extra1 -s /bin/sh web; useradd -G web2grp web2; useradd -g pgrp pg; useradd web2x",
    );
    let specs = vec![
        group("webg", Some(2901)),
        group("lonely", None),
        group("tandem-no-such-group", None),
        user("web", Some("webg"), &["extra1", "extra2"], Some("/bin/sh")),
        user("web2", None, &["web2grp"], None),
        user("pg", Some("pgrp"), &["pgrp"], None),
        user("ghost", None, &["extra1"], None),
        user("web2x", Some("lonely"), &[], None),
    ];
    let catalog = catalog(&fleet, specs);
    let (facts, plan, script) = probe(&fleet, &catalog);
    assert_eq!(
        changes(&plan),
        [
            "group:tandem-no-such-group create ",
            "group:webg modify gid=2901",
            "user:ghost create ",
            "user:web modify groups=+extra2",
            "user:web2x modify group=lonely",
        ]
    );

    // What the probe derived is what `id -Gn` says on the host, for the groups it read.
    for name in ["web", "web2", "pg", "web2x"] {
        let id = fleet.exec_ok(HOST, &format!("id -Gn {name}"));
        let id: Vec<&str> = id.split_whitespace().collect();
        let ours = facts.accounts.groups_of(name).unwrap();
        assert_eq!(ours[0], id[0], "primary group of `{name}`");
        for g in &ours {
            assert!(id.contains(&g.as_str()), "`{name}`: `{g}` not in {id:?}");
        }
    }
    assert_eq!(facts.accounts.groups_of("web").unwrap(), ["webg", "extra1"]);
    assert_eq!(facts.accounts.groups_of("pg").unwrap(), ["pgrp"]);

    // Two `getent`, no `id`, nothing per account: count what the probe executes.
    fleet.exec_ok(
        HOST,
        &format!("cat > /tmp/probe.sh <<'TANDEM_EOF'\n{script}\nTANDEM_EOF"),
    );
    let trace = fleet.exec_ok(
        HOST,
        r#"strace -f -qq -e trace=execve -e signal=none -o /tmp/trace sh /tmp/probe.sh >/dev/null; grep -v ENOENT /tmp/trace | sed -n 's|.*execve("[^"]*/\([^"/]*\)".*|\1|p'"#,
    );
    let programs: Vec<&str> = trace.lines().collect();
    assert_eq!(programs, ["sh", "getent", "getent"], "{trace}");

    // The steps converge the host, and the next probe has nothing to do.
    let mut shell = protocol::preamble(&Token::random());
    for change in &plan.changes {
        let r = catalog
            .resources
            .iter()
            .find(|r| r.id == change.id)
            .unwrap();
        let mut out = StepOut::default();
        operations(&r.spec).apply(change, &facts, &mut out);
        shell.push_str(&format!("( {} )\n", out.shell));
    }
    fleet.exec_ok(HOST, &format!("set -e\n{shell}"));
    let (_, plan, _) = probe(&fleet, &catalog);
    assert_eq!(changes(&plan), Vec::<String>::new());
    assert_eq!(
        fleet
            .exec_ok(HOST, "id -Gn web")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["webg", "extra1", "extra2"]
    );
}
