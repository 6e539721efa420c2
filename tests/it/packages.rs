//! The node's package cache (`fact::script::PackageCache`) on a real fleet host, over the
//! real SSH transport, with real dpkg: an apply's probes store `dpkg-query`'s answer in
//! the node's state directory under the identity of dpkg's database, and later probes
//! answer from it without running `dpkg-query`, until dpkg's database changes. What is
//! checked is what an operator would: the plan still sees every package change made
//! behind tandem's back (a `dpkg -i`, a `dpkg -r`, an in-place edit of dpkg's `status`
//! with its mtime set back), and a plan never writes to the node. `dpkg-query` runs are
//! counted by a logging wrapper first in root's `PATH` (`/usr/local/sbin`), which then
//! runs the real one.

use std::sync::Arc;
use std::time::Duration;

use tandem::apply::{self, ApplyOptions, Job, Outcome};
use tandem::catalog::Catalog;
use tandem::plan::render::NodeResult;
use tandem::plan::NodePlan;
use tandem::resource::*;
use tandem::transport::Connector;

use crate::support::fleet::{Fleet, Mode as FleetMode};
use crate::support::resources::{resource, root_file};

const HOST: &str = "frontend-azure-1";
const CACHE: &str = "/var/lib/tandem/packages";
const LOG: &str = "/root/dpkg-query.log";
/// A package built on the host and installed by `dpkg -i` outside tandem.
const EXTRA: &str = "tandem-cache-probe";

const MODULE: &str = "modules/packages/module.toml";

fn package(name: &str, state: PackageState) -> Resource {
    let spec = Spec::Package(PackageSpec {
        name: name.into(),
        state,
    });
    resource(spec, name, MODULE, &[])
}

fn marker_file() -> Resource {
    let path = "/etc/package-cache-test.conf";
    resource(
        Spec::File(root_file(path, b"converged\n")),
        path,
        MODULE,
        &[],
    )
}

struct Host {
    fleet: Fleet,
    connector: Arc<dyn Connector>,
    runtime: tokio::runtime::Runtime,
    options: ApplyOptions,
}

impl Host {
    fn sh(&self, command: &str) -> String {
        self.fleet.exec_ok(HOST, command)
    }

    fn catalog(&self, resources: Vec<Resource>) -> Catalog {
        Catalog {
            node: self.fleet.node(HOST).clone(),
            resources,
        }
    }

    fn plan(&self, catalog: &Catalog) -> NodePlan {
        let mut results = self.runtime.block_on(apply::plan_nodes(
            vec![catalog.clone()],
            self.connector.clone(),
            &self.options,
        ));
        match results.remove(0) {
            NodeResult::Planned(plan) => plan,
            other => panic!("plan failed: {other:?}"),
        }
    }

    /// An apply's settling probe alone (the node held, then released: nothing to do).
    fn settle(&self, catalog: &Catalog) {
        let probed = self.runtime.block_on(apply::probe_jobs(
            vec![Job::new(catalog.clone())],
            self.connector.clone(),
            &self.options,
            true,
        ));
        assert!(
            matches!(&probed[0].result, NodeResult::Planned(_)),
            "{:?}",
            probed[0].result
        );
    }

    /// How many times `dpkg-query` ran since the last call (the wrapper's log, emptied).
    fn queries(&self) -> usize {
        let log = self.sh(&format!("cat {LOG} 2>/dev/null; : > {LOG}"));
        log.lines().count()
    }

    fn cache(&self) -> String {
        self.sh(&format!("cat {CACHE} 2>/dev/null || echo MISSING"))
    }
}

/// `kind:name action` of every change.
fn changes(plan: &NodePlan) -> Vec<String> {
    plan.changes
        .iter()
        .map(|c| format!("{} {:?}", c.id, c.action))
        .collect()
}

#[test]
fn dpkg_query_runs_only_when_dpkg_database_changed_and_plans_still_see_every_change() {
    let fleet = Fleet::up("pkg-cache", "azure-westus:frontend:1", FleetMode::Tini);
    let host = Host {
        connector: fleet.connector(),
        fleet,
        runtime: tokio::runtime::Runtime::new().unwrap(),
        options: ApplyOptions {
            command_timeout: Duration::from_secs(60),
            lock_wait: Duration::from_secs(10),
            ..ApplyOptions::default()
        },
    };
    let nginx = host
        .sh("dpkg-query -W -f='${Version}' nginx")
        .trim()
        .to_string();
    assert!(!nginx.is_empty(), "the fleet image has nginx");
    host.sh(&format!(
        "printf '#!/bin/sh\\necho run >> {LOG}\\nexec /usr/bin/dpkg-query \"$@\"\\n' > /usr/local/sbin/dpkg-query && chmod 755 /usr/local/sbin/dpkg-query"
    ));
    let wanted = vec![
        package("nginx", PackageState::Version(nginx.clone())),
        package(EXTRA, PackageState::Absent),
        marker_file(),
    ];
    let catalog = host.catalog(wanted.clone());

    // A node never applied has no state directory (the host's overlay may show the
    // machine's own, from tests of the local transport): the first apply's settling
    // probe cannot store the cache, its verifying probe (after the steps made the
    // directory) does.
    host.sh("rm -rf /var/lib/tandem");
    let reports = host.runtime.block_on(apply::apply_nodes(
        vec![catalog.clone()],
        host.connector.clone(),
        &host.options,
    ));
    assert_eq!(reports[0].outcome, Outcome::Changed, "{:#?}", reports[0]);
    assert_eq!(
        host.queries(),
        2,
        "the settling and the verifying probe query"
    );
    let stored = host.cache();
    let lines: Vec<&str> = stored.lines().collect();
    assert!(lines[0].ends_with(&format!(" nginx {EXTRA}")), "{stored}");
    assert_eq!(
        &lines[1..],
        &[format!("nginx\tii \t{nginx}").as_str(), ".end"],
        "{stored}"
    );

    // In sync, from the cache: no dpkg-query.
    assert!(host.plan(&catalog).is_empty());
    assert_eq!(host.queries(), 0);

    // Installed by dpkg behind tandem's back: dpkg's own journal and rename change the
    // key. The plan sees it; the plan does not write the node's cache.
    host.sh(&format!(
        "mkdir -p /tmp/{EXTRA}/DEBIAN && printf 'Package: {EXTRA}\\nVersion: 1.0\\nArchitecture: all\\nMaintainer: tandem tests <tests@invalid>\\nDescription: package cache test\\n' > /tmp/{EXTRA}/DEBIAN/control \
         && dpkg-deb --build /tmp/{EXTRA} /tmp/{EXTRA}.deb >/dev/null && dpkg -i /tmp/{EXTRA}.deb >/dev/null"
    ));
    host.queries();
    let plan = host.plan(&catalog);
    assert_eq!(
        changes(&plan),
        [format!("package:{EXTRA} Remove")],
        "{plan:#?}"
    );
    assert_eq!(host.queries(), 1);
    assert_eq!(
        host.cache(),
        stored,
        "a plan wrote the node's package cache"
    );

    // An apply's settling probe refreshes it; the next plan answers from it.
    host.settle(&catalog);
    assert_eq!(host.queries(), 1);
    let refreshed = host.cache();
    assert_ne!(refreshed, stored);
    assert!(
        refreshed.contains(&format!("{EXTRA}\tii \t1.0\n")),
        "{refreshed}"
    );
    assert_eq!(
        changes(&host.plan(&catalog)),
        [format!("package:{EXTRA} Remove")]
    );
    assert_eq!(host.queries(), 0);

    // Removed by dpkg: seen again.
    host.sh(&format!("dpkg -r {EXTRA} >/dev/null"));
    host.queries();
    assert!(host.plan(&catalog).is_empty());
    assert_eq!(host.queries(), 1);

    // `status` edited in place: same inode, same size, mtime set back to the nanosecond.
    // Only its change time moved, and that is in the key.
    host.settle(&catalog);
    host.queries();
    assert!(host.plan(&catalog).is_empty());
    assert_eq!(host.queries(), 0);
    let other = format!("{}Z", &nginx[..nginx.len() - 1]);
    // `cat >` rewrites the file in place (same inode); the new version has the same
    // length as the old one.
    host.sh(&format!(
        "s=/var/lib/dpkg/status; before=$(stat -c %i:%s:%y $s); touch -r $s /tmp/status.times\n\
         sed '/^Package: nginx$/,/^$/ s/^Version: {nginx}$/Version: {other}/' $s > /tmp/status.edited\n\
         ! cmp -s $s /tmp/status.edited && cat /tmp/status.edited > $s && touch -m -r /tmp/status.times $s\n\
         [ \"$(stat -c %i:%s:%y $s)\" = \"$before\" ]"
    ));
    let plan = host.plan(&catalog);
    assert_eq!(changes(&plan), ["package:nginx Modify"], "{plan:#?}");
    let detail = &plan.changes[0].details[0];
    assert_eq!(detail.from.as_deref(), Some(other.as_str()), "{plan:#?}");
    assert_eq!(host.queries(), 1);

    // A cache cut short (no `.end`) is a miss, and so is one for other names.
    host.settle(&catalog);
    host.sh(&format!("sed -i '$d' {CACHE}"));
    host.queries();
    assert_eq!(changes(&host.plan(&catalog)), ["package:nginx Modify"]);
    assert_eq!(host.queries(), 1);
    host.settle(&catalog);
    host.queries();
    let fewer = host.catalog(vec![package("nginx", PackageState::Version(nginx.clone()))]);
    assert_eq!(changes(&host.plan(&fewer)), ["package:nginx Modify"]);
    assert_eq!(host.queries(), 1);
    assert_eq!(changes(&host.plan(&catalog)), ["package:nginx Modify"]);
    assert_eq!(host.queries(), 0);
}
