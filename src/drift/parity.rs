//! Parity of the actual state: per role, what the assessed nodes of each datacenter read
//! must be the same set of values in every datacenter, for the facts desired state does
//! not pin but identical nodes must share (OS release, kernel release, the installed
//! version of every managed package, the systemd state of every managed service) and
//! for managed resources: a resource whose desired state is the same on every node of
//! the role and that reads in sync everywhere must also read the same everywhere (what
//! its spec leaves unmanaged, like the mode of a file without `mode`, compared through
//! the digest of what the probe read). What an overlay declares may differ for a
//! resource (`may_change`) is not compared; drift itself is reported as drift.

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::Catalog;
use crate::drift::report::{NodeReport, ParityBreak};
use crate::fact::{NodeFacts, Section};
use crate::manifest::Site;
use crate::resource::{ResourceId, Spec};

/// role -> fact -> datacenter -> values
type Table = BTreeMap<String, BTreeMap<String, BTreeMap<String, BTreeSet<String>>>>;

/// An assessed node: its catalog, what was read, and its report.
pub struct Subject<'a> {
    pub catalog: &'a Catalog,
    pub facts: &'a NodeFacts,
    /// The digests of what was read, per resource (the plan's).
    pub read: &'a [crate::plan::ReadState],
    pub report: &'a NodeReport,
}

/// Every fact whose value sets differ between two datacenters of a role.
pub fn breaks(site: &Site, subjects: &[Subject<'_>]) -> Vec<ParityBreak> {
    let declared = |id: &ResourceId| {
        [&site.standby, &site.primary]
            .into_iter()
            .flatten()
            .any(|o| o.may_change.contains_key(id))
    };
    let mut table: Table = BTreeMap::new();
    // role -> resource -> (datacenter, spec, in sync, read digest) of every node.
    type Seen<'b> = Vec<(String, &'b Spec, bool, String)>;
    let mut resources: BTreeMap<String, BTreeMap<&ResourceId, Seen<'_>>> = BTreeMap::new();
    for s in subjects {
        let node = &s.catalog.node;
        let mut put = |fact: String, value: String| {
            table
                .entry(node.role.to_string())
                .or_default()
                .entry(fact)
                .or_default()
                .entry(node.datacenter.to_string())
                .or_default()
                .insert(value);
        };
        let sys = &s.facts.system;
        put(
            "os_release".into(),
            format!(
                "{} {}",
                sys.os_id.as_deref().unwrap_or("?"),
                sys.os_version.as_deref().unwrap_or("?")
            ),
        );
        put(
            "kernel_release".into(),
            sys.kernel.clone().unwrap_or_else(|| "?".into()),
        );
        for (index, r) in s.catalog.resources.iter().enumerate() {
            if declared(&r.id) {
                continue;
            }
            match &r.spec {
                Spec::Package(p) => put(
                    format!("package:{}", p.name),
                    s.facts
                        .packages
                        .get(&p.name)
                        .cloned()
                        .unwrap_or_else(|| "not installed".into()),
                ),
                Spec::Service(svc) if svc.commands.is_none() && s.facts.systemd => {
                    let kv = s.facts.keyed(Section::Resource(index));
                    put(
                        format!("service:{}", svc.name),
                        format!(
                            "{}/{}",
                            kv.get("active").map_or("?", String::as_str),
                            kv.get("enabled").map_or("?", String::as_str)
                        ),
                    );
                }
                _ => {}
            }
            let in_sync = s
                .report
                .resources
                .get(index)
                .is_some_and(|f| f.status == crate::drift::report::Status::InSync);
            let read = s
                .read
                .iter()
                .find(|x| x.id == r.id)
                .map(|x| x.digest.clone())
                .unwrap_or_default();
            resources
                .entry(node.role.to_string())
                .or_default()
                .entry(&r.id)
                .or_default()
                .push((node.datacenter.to_string(), &r.spec, in_sync, read));
        }
    }
    for (role, by_id) in resources {
        for (id, seen) in by_id {
            // Packages and services are compared as facts above.
            let fact = matches!(seen[0].1, Spec::Package(_) | Spec::Service(_));
            let uniform = seen
                .iter()
                .all(|(_, spec, in_sync, _)| *in_sync && *spec == seen[0].1);
            if fact || !uniform {
                continue;
            }
            for (dc, _, _, read) in seen {
                table
                    .entry(role.clone())
                    .or_default()
                    .entry(format!("resource:{id}"))
                    .or_default()
                    .entry(dc)
                    .or_default()
                    .insert(format!("read {read}"));
            }
        }
    }
    let mut out = Vec::new();
    for (role, facts) in table {
        for (fact, by_dc) in facts {
            let dcs: Vec<(&String, &BTreeSet<String>)> = by_dc.iter().collect();
            for (i, (a, va)) in dcs.iter().enumerate() {
                for (b, vb) in &dcs[i + 1..] {
                    if va != vb {
                        out.push(ParityBreak {
                            role: role.clone(),
                            fact: fact.clone(),
                            datacenters: [a.to_string(), b.to_string()],
                            values: [
                                (a.to_string(), va.iter().cloned().collect()),
                                (b.to_string(), vb.iter().cloned().collect()),
                            ]
                            .into(),
                        });
                    }
                }
            }
        }
    }
    out
}
