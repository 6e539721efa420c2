//! `package`: installed or not, or at a version, through apt (dpkg-query) or dnf (rpm),
//! detected per node by the probe. All packages of a node are read by one query.

use serde::Serialize;
use super::change::{Action, Assessment, Change, Detail};
use super::spec::{at, check_word, NameProblem};
use super::{Attributes, ResourceType};
use crate::fact::{FactError, NodeFacts, Packager, ProbeBuilder};
use crate::resource::{Context, Operations, StepOut};
use crate::transport::quote::quote_str;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageState {
    Present,
    Absent,
    Version(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PackageSpec {
    pub name: String,
    pub state: PackageState,
}

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
                for (command, what) in apt_commands(remove, &quote_str(&arg), &arg) {
                    out.run(command, what);
                }
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

/// apt's side of a step, as (command, what failed) pairs, each command checked by the
/// step. Noninteractive (`DEBIAN_FRONTEND`, `-y`, old config files kept), waits a bounded
/// time for a dpkg lock held by another apt run instead of failing at once, refreshes
/// the package lists only when the wanted package or version cannot be resolved from
/// the ones the node has (a fresh node has none), and allows downgrades, since a pinned
/// version may be older than the installed one. apt's progress goes to /dev/null so
/// that the step's captured output is its errors.
fn apt_commands(remove: bool, quoted: &str, arg: &str) -> Vec<(String, String)> {
    const APT: &str = "DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=60";
    if remove {
        return vec![(
            format!("{APT} remove -- {quoted} >/dev/null"),
            format!("apt-get remove `{arg}` failed"),
        )];
    }
    vec![
        (
            format!("{APT} install -s -- {quoted} >/dev/null 2>&1 || {APT} update >/dev/null"),
            "apt-get update failed".to_string(),
        ),
        (
            format!(
                "{APT} install --allow-downgrades -o Dpkg::Options::=--force-confdef \
                 -o Dpkg::Options::=--force-confold -- {quoted} >/dev/null"
            ),
            format!("apt-get install `{arg}` failed"),
        ),
    ]
}

impl ResourceType for PackageSpec {
    const KEYS: &'static [&'static str] = &["name", "ensure", "version"];
    const REQUIRED: &'static [&'static str] = &["name"];

    fn build<A: Attributes>(a: &A) -> Result<Self, A::Error> {
        let state = match (a.text("ensure")?.as_deref(), a.text("version")?) {
            (None | Some("present"), Some(version)) => PackageState::Version(version),
            (None | Some("present"), None) => PackageState::Present,
            (Some("absent"), None) => PackageState::Absent,
            (Some(other), _) => {
                return Err(a.invalid(
                    "ensure",
                    format!(
                        "`{other}` is not `present` or `absent` (with `version`, only `present`)"
                    ),
                ))
            }
        };
        Ok(PackageSpec {
            name: a.required("name")?,
            state,
        })
    }

    fn name<A: Attributes>(&self, _: &A) -> Result<String, A::Error> {
        Ok(self.name.clone())
    }

    fn check_names(&self) -> Result<(), NameProblem> {
        check_word("package name", &self.name).map_err(at("name"))?;
        match &self.state {
            PackageState::Version(v) => check_word("version", v).map_err(at("version")),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_install_refreshes_lists_only_when_unresolved_and_allows_downgrades() {
        let apt = "DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=60";
        let install = apt_commands(false, "'hello=2.10-3'", "hello=2.10-3");
        assert_eq!(
            install[0].0,
            format!(
                "{apt} install -s -- 'hello=2.10-3' >/dev/null 2>&1 || {apt} update >/dev/null"
            )
        );
        assert_eq!(
            install[1].0,
            format!(
                "{apt} install --allow-downgrades -o Dpkg::Options::=--force-confdef \
                 -o Dpkg::Options::=--force-confold -- 'hello=2.10-3' >/dev/null"
            )
        );
        assert_eq!(install[1].1, "apt-get install `hello=2.10-3` failed");
        let remove = apt_commands(true, "'hello'", "hello");
        assert_eq!(
            remove,
            [(
                format!("{apt} remove -- 'hello' >/dev/null"),
                "apt-get remove `hello` failed".to_string()
            )]
        );
    }

    #[test]
    fn every_apt_command_of_a_step_is_checked() {
        let spec = PackageSpec {
            name: "hello".into(),
            state: PackageState::Version("2.10-3".into()),
        };
        let change = Change::new(&"package:hello".parse().unwrap(), Action::Create);
        let facts = NodeFacts {
            packager: Some(Packager::Apt),
            ..NodeFacts::default()
        };
        let mut out = StepOut::default();
        spec.apply(&change, &facts, &mut out);
        let shell = &out.shell;
        assert_eq!(shell.matches("|| fail ").count(), 2, "{shell}");
        assert!(shell.contains("install --allow-downgrades"), "{shell}");
    }
}
