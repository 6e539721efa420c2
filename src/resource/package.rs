//! `package`: installed or not, or at a version, through apt (dpkg-query) or dnf (rpm),
//! detected per node by the probe. All packages of a node are read by one query.

use super::change::{Action, Assessment, Change, Detail};
use crate::fact::{FactError, NodeFacts, Packager, ProbeBuilder};
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
                for line in apt_lines(remove, &quote_str(&arg)) {
                    out.line(line);
                }
            }
            Some(Packager::Dnf) => {
                let arg = match &self.state {
                    PackageState::Version(v) => format!("{name}-{v}"),
                    _ => name.clone(),
                };
                let verb = if remove { "remove" } else { "install" };
                out.line(format!("dnf {verb} -y -q -- {}", quote_str(&arg)));
            }
            None => out.line(format!(
                "echo {} >&2; exit 1",
                quote_str(&format!(
                    "no supported package manager for `{name}` (apt or dnf)"
                ))
            )),
        }
    }
}

/// apt's side of a step. Noninteractive (`DEBIAN_FRONTEND`, `-y`, old config files kept),
/// waits a bounded time for a dpkg lock held by another apt run instead of failing at
/// once, refreshes the package lists only when the wanted package or version cannot be
/// resolved from the ones the node has (a fresh node has none), and allows downgrades,
/// since a pinned version may be older than the installed one. apt's progress goes to
/// /dev/null so that the step's captured output is its errors. The step runs without
/// `set -e` taking effect (inside `if`), so each command's status is checked.
fn apt_lines(remove: bool, arg: &str) -> Vec<String> {
    const APT: &str = "apt-get -y -q -o DPkg::Lock::Timeout=60";
    let mut lines = vec!["export DEBIAN_FRONTEND=noninteractive".to_string()];
    if remove {
        lines.push(format!("{APT} remove -- {arg} >/dev/null"));
    } else {
        lines.push(format!(
            "if ! {APT} install -s -- {arg} >/dev/null 2>&1; then \
             {APT} update >/dev/null || {{ echo 'apt-get update failed' >&2; exit 1; }}; fi"
        ));
        lines.push(format!(
            "{APT} install --allow-downgrades \
             -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -- {arg} >/dev/null"
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_install_refreshes_lists_only_when_unresolved_and_allows_downgrades() {
        let lines = apt_lines(false, "'hello=2.10-3'");
        assert_eq!(lines[0], "export DEBIAN_FRONTEND=noninteractive");
        assert!(
            lines[1].starts_with(
                "if ! apt-get -y -q -o DPkg::Lock::Timeout=60 install -s -- 'hello=2.10-3'"
            ),
            "{}",
            lines[1]
        );
        assert!(lines[1].contains("update >/dev/null || {"), "{}", lines[1]);
        assert_eq!(
            lines[2],
            "apt-get -y -q -o DPkg::Lock::Timeout=60 install --allow-downgrades \
             -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -- 'hello=2.10-3' >/dev/null"
        );
        assert_eq!(
            apt_lines(true, "'hello'"),
            [
                "export DEBIAN_FRONTEND=noninteractive",
                "apt-get -y -q -o DPkg::Lock::Timeout=60 remove -- 'hello' >/dev/null"
            ]
        );
    }
}
