//! `package`: installed or not, or at a version, through apt (dpkg-query) or dnf (rpm),
//! detected per node by the probe. All packages of a node are read by one query.

use crate::fact::{FactError, NodeFacts, Packager, ProbeBuilder};
use crate::plan::{Action, Assessment, Change, Detail};
use crate::resource::{Context, Operations, PackageSpec, PackageState, StepOut};
use crate::transport::quote::quote_str;

impl Operations for PackageSpec {
    fn probe(&self, _index: usize, probe: &mut ProbeBuilder) {
        probe.package(&self.name);
    }

    fn assess(&self, ctx: &Context<'_>) -> Result<Assessment, FactError> {
        let installed = ctx.facts.packages.get(&self.name);
        let observed = format!("{:?} {:?}", ctx.facts.packager, installed);
        let change = match (&self.state, installed) {
            (PackageState::Absent, None) => None,
            (PackageState::Absent, Some(v)) => {
                let mut c = Change::new(ctx.id, Action::Remove);
                c.details
                    .push(Detail::new("version", Some(v.clone()), None));
                Some(c)
            }
            (PackageState::Present, Some(_)) => None,
            (PackageState::Version(want), Some(v)) if want == v => None,
            (state, current) => {
                let action = if current.is_some() {
                    Action::Modify
                } else {
                    Action::Create
                };
                let mut c = Change::new(ctx.id, action);
                let to = match state {
                    PackageState::Version(v) => v.clone(),
                    _ => "latest".into(),
                };
                c.details
                    .push(Detail::new("version", current.cloned(), Some(to)));
                if ctx.facts.packager.is_none() {
                    c.details
                        .push(Detail::new("manager", None, Some("none found".into())));
                }
                Some(c)
            }
        };
        Ok(Assessment { observed, change })
    }

    fn apply(&self, change: &Change, facts: &NodeFacts, out: &mut StepOut) {
        let remove = change.action == Action::Remove;
        let name = &self.name;
        match facts.packager {
            Some(Packager::Apt) => {
                let arg = match &self.state {
                    PackageState::Version(v) => format!("{name}={v}"),
                    _ => name.clone(),
                };
                let verb = if remove { "remove" } else { "install" };
                out.run(
                    format!(
                        "DEBIAN_FRONTEND=noninteractive apt-get {verb} -y -q -o Dpkg::Options::=--force-confold -- {}",
                        quote_str(&arg)
                    ),
                    format!("apt-get {verb} `{arg}` failed"),
                );
            }
            Some(Packager::Dnf) => {
                let arg = match &self.state {
                    PackageState::Version(v) => format!("{name}-{v}"),
                    _ => name.clone(),
                };
                let verb = if remove { "remove" } else { "install" };
                out.run(
                    format!("dnf {verb} -y -q -- {}", quote_str(&arg)),
                    format!("dnf {verb} `{arg}` failed"),
                );
            }
            None => out.fail(format!(
                "no supported package manager for `{name}` (apt or dnf)"
            )),
        }
    }
}
