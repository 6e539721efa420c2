//! The `package` resource against real apt and dpkg: a fleet host whose apt knows only
//! the local repository of `support::apt`, and a site whose one module is rewritten
//! between applies. Install, a pinned version, an upgrade, a downgrade and a removal,
//! each followed by a plan with nothing to do; and a package that does not exist failing
//! that resource, by name, without stopping the others. Every result is checked on the
//! host with dpkg itself, not through tandem.

use std::process::Command;
use std::time::Duration;

use crate::support::apt::{AptRepo, BUILT, BUILT_MARKER, NEW, OLD, REAL};
use crate::support::fleet::{Fleet, Mode};
use crate::support::site::{run_bounded, Run};

const HOST: &str = "pkg-azure-1";
const MISSING: &str = "tandem-test-missing";

/// A one-role site with a static datacenter; the fleet's own inventory lists the host.
struct PackageSite {
    dir: tempfile::TempDir,
}

impl PackageSite {
    fn new() -> PackageSite {
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(
            "manifests/site.toml",
            "[site]\nname = \"packages\"\n\n[datacenters.azure-westus]\nprimary = true\nprovider = \"static\"\n",
        );
        write("manifests/roles/pkg.toml", "modules = [\"pkgs\"]\n");
        PackageSite { dir }
    }

    /// Replaces the module's resources with `resources` (TOML tables' bodies).
    fn resources(&self, resources: &[&str]) {
        let text: String = resources
            .iter()
            .map(|r| format!("[[resource]]\ntype = \"package\"\n{r}\n\n"))
            .collect();
        let path = self.dir.path().join("modules/pkgs/module.toml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn tandem(&self, fleet: &Fleet, args: &[&str]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
        command
            .args(args)
            .env("TANDEM_SITE", self.dir.path())
            .env("TANDEM_INVENTORY", fleet.inventory_path())
            .env("TANDEM_KNOWN_HOSTS", fleet.known_hosts_path())
            .env("TANDEM_IDENTITY", fleet.key_path())
            .env_remove("TANDEM_AGE_IDENTITY")
            .env_remove("TANDEM_TRANSPORT")
            .env_remove("TANDEM_USER");
        run_bounded(command, args, Duration::from_secs(180))
    }
}

/// `STATUS VERSION` of `package` as dpkg records it on the host, or `none`.
fn dpkg(fleet: &Fleet, package: &str) -> String {
    let out = fleet.exec(
        HOST,
        &format!("dpkg-query -W -f='${{db:Status-Abbrev}} ${{Version}}' -- {package}"),
    );
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !text.is_empty() {
        text
    } else {
        "none".into()
    }
}

/// Applies, expects success with one change, then a plan with nothing to do.
fn converge(site: &PackageSite, fleet: &Fleet, what: &str) -> Duration {
    let plan = site.tandem(fleet, &["plan"]);
    plan.expect_code(2);
    let apply = site.tandem(fleet, &["apply"]);
    apply.expect_code(0);
    let again = site.tandem(fleet, &["plan"]);
    assert_eq!(
        again.code,
        Some(0),
        "after {what}, the plan should be empty\n{again}\nthe apply was\n{apply}"
    );
    eprintln!("{what}: apply took {:.1?}", apply.elapsed);
    apply.elapsed
}

#[test]
fn packages_install_pin_upgrade_downgrade_and_remove_through_real_apt() {
    let fleet = Fleet::up("e2e-packages", "azure-westus:pkg:1", Mode::Tini);
    let repo = AptRepo::serve(&fleet);
    repo.point(&fleet, HOST);
    let site = PackageSite::new();
    assert_eq!(
        dpkg(&fleet, REAL),
        "none",
        "`{REAL}` is on the host already"
    );
    assert_eq!(dpkg(&fleet, BUILT), "none");

    // Install: the host has no package lists yet, so tandem refreshes them first.
    site.resources(&[
        &format!("name = \"{REAL}\""),
        &format!("name = \"{BUILT}\"\nversion = \"{OLD}\""),
    ]);
    let plan = site.tandem(&fleet, &["plan"]);
    plan.expect_code(2);
    assert!(
        plan.stdout.contains(&format!("package:{REAL}"))
            && plan.stdout.contains(&format!("package:{BUILT}")),
        "{plan}"
    );
    converge(&site, &fleet, "install and pin");
    assert!(
        dpkg(&fleet, REAL).starts_with("ii "),
        "{}",
        dpkg(&fleet, REAL)
    );
    assert_eq!(dpkg(&fleet, BUILT), format!("ii  {OLD}"));
    assert_eq!(fleet.exec_ok(HOST, "hello"), "Hello, world!\n");
    assert_eq!(
        fleet.exec_ok(HOST, &format!("cat {BUILT_MARKER}")),
        format!("{OLD}\n")
    );
    let requests = repo.requests();
    assert!(
        requests.contains(&format!("GET /./{REAL}_")) && requests.contains("GET /./Packages"),
        "the host should have fetched the index and `{REAL}` from the local repository:\n{requests}"
    );

    // Upgrade to the newer version, then a downgrade back to the pin.
    site.resources(&[
        &format!("name = \"{REAL}\""),
        &format!("name = \"{BUILT}\"\nversion = \"{NEW}\""),
    ]);
    converge(&site, &fleet, "upgrade");
    assert_eq!(dpkg(&fleet, BUILT), format!("ii  {NEW}"));
    assert_eq!(
        fleet.exec_ok(HOST, &format!("cat {BUILT_MARKER}")),
        format!("{NEW}\n")
    );
    site.resources(&[
        &format!("name = \"{REAL}\""),
        &format!("name = \"{BUILT}\"\nversion = \"{OLD}\""),
    ]);
    converge(&site, &fleet, "downgrade");
    assert_eq!(dpkg(&fleet, BUILT), format!("ii  {OLD}"));

    // Removal.
    site.resources(&[
        &format!("name = \"{REAL}\"\nensure = \"absent\""),
        &format!("name = \"{BUILT}\"\nensure = \"absent\""),
    ]);
    converge(&site, &fleet, "removal");
    for package in [REAL, BUILT] {
        let state = dpkg(&fleet, package);
        assert!(
            state == "none" || !state.starts_with("ii"),
            "`{package}` is still installed: {state}"
        );
    }
    assert!(!fleet.exec(HOST, "command -v hello").status.success());

    // A package no repository has fails that resource, by name; the one declared before
    // it is installed all the same, and the next plan still shows only the missing one.
    site.resources(&[
        &format!("name = \"{REAL}\""),
        &format!("name = \"{MISSING}\""),
    ]);
    let apply = site.tandem(&fleet, &["apply"]);
    apply.expect_code(3);
    let out = apply.all_output();
    assert!(
        out.contains(&format!("package:{MISSING}"))
            && out.contains(&format!("Unable to locate package {MISSING}")),
        "the failure should name the resource and say why\n{apply}"
    );
    assert!(dpkg(&fleet, REAL).starts_with("ii "), "{apply}");
    let plan = site.tandem(&fleet, &["plan"]);
    plan.expect_code(2);
    assert!(
        plan.stdout.contains(&format!("package:{MISSING}"))
            && !plan.stdout.contains(&format!("package:{REAL}")),
        "{plan}"
    );
}
