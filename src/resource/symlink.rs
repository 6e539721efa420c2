//! `symlink`: a link and its target, read by the probe's one `stat` (`%N`). Replacing a link is atomic: a
//! new link is made beside it and renamed over it.

use serde::Serialize;
use crate::path::RemotePath;
use super::change::{Action, Assessment, Change, Detail};
use super::spec::{at, NameProblem};
use super::{Attributes, ResourceType};
use crate::fact::{EntryKind, FactError, NodeFacts, ProbeBuilder};
use crate::node::check_no_control;
use crate::resource::{observed_stat, Context, Operations, Presence, StepOut};
use crate::transport::quote::quote_str;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SymlinkSpec {
    pub path: RemotePath,
    pub ensure: Presence,
    /// What the link points to, verbatim (may be relative, like `ln -s` takes it).
    pub target: String,
}

impl Operations for SymlinkSpec {
    fn probe(&self, _index: usize, probe: &mut ProbeBuilder) {
        // The target comes from the one `stat` (`PathStat::target`).
        probe.stat(&self.path);
        probe.leftovers_of(&self.path);
    }

    fn assess(&self, ctx: &Context<'_>) -> Result<Assessment, FactError> {
        let stat = ctx.facts.stats.get(self.path.as_str());
        let target = stat.and_then(|s| s.target.clone());
        let observed = format!(
            "{} -> {}",
            observed_stat(stat),
            target.as_deref().unwrap_or("-")
        );
        let change = match (self.ensure, stat) {
            (Presence::Absent, None) => None,
            (Presence::Absent, Some(_)) => Some(Change::new(ctx.id, Action::Remove)),
            (Presence::Present, None) => {
                let mut change = Change::new(ctx.id, Action::Create);
                change
                    .details
                    .push(Detail::new("target", None, Some(self.target.clone())));
                Some(change)
            }
            (Presence::Present, Some(stat)) => {
                let current = match stat.kind {
                    EntryKind::Symlink => target.unwrap_or_default(),
                    kind => format!("({:?})", kind).to_lowercase(),
                };
                (current != self.target).then(|| {
                    let mut change = Change::new(ctx.id, Action::Modify);
                    change.details.push(Detail::new(
                        "target",
                        Some(current),
                        Some(self.target.clone()),
                    ));
                    change
                })
            }
        };
        Ok(Assessment { observed, change })
    }

    fn apply(&self, change: &Change, _facts: &NodeFacts, out: &mut StepOut) {
        let p = quote_str(self.path.as_str());
        if change.action == Action::Remove {
            out.run(
                format!("[ -L {p} ]"),
                format!("`{}` is not a symlink; not removing it", self.path),
            );
            out.run(
                format!("rm -f -- {p}"),
                format!("cannot remove the symlink `{}`", self.path),
            );
            return;
        }
        let tmp = quote_str(&format!(
            "{}/.{}.tandem-link",
            self.path.parent().as_str().trim_end_matches('/'),
            self.path.file_name()
        ));
        let path = &self.path;
        out.run(
            format!("rm -f -- {tmp}"),
            format!("cannot remove a stale staged link next to `{path}`"),
        );
        out.run(
            format!("ln -s -- {} {tmp}", quote_str(&self.target)),
            format!("cannot create the staged link for `{path}`"),
        );
        // `mv -T` refuses to replace a directory, which is what we want.
        out.run(
            format!("mv -Tf -- {tmp} {p}"),
            format!("cannot rename the staged link into place as `{path}`"),
        );
    }
}

impl ResourceType for SymlinkSpec {
    const KEYS: &'static [&'static str] = &["path", "ensure", "target"];
    const REQUIRED: &'static [&'static str] = &["path", "target"];

    fn build<A: Attributes>(a: &A) -> Result<Self, A::Error> {
        Ok(SymlinkSpec {
            path: a.required_path("path")?,
            ensure: a.presence()?,
            target: a.required("target")?,
        })
    }

    fn name<A: Attributes>(&self, _: &A) -> Result<String, A::Error> {
        Ok(self.path.to_string())
    }

    fn check_names(&self) -> Result<(), NameProblem> {
        check_no_control("target", &self.target).map_err(at("target"))
    }
}
