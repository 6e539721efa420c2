//! `directory`: existence, owner, group and mode of a directory, from the batched `stat`.
//! Removal uses `rmdir`: tandem does not delete a tree it did not declare file by file.

use serde::Serialize;
use crate::path::RemotePath;
use super::change::{Action, Assessment, Change, Detail};
use super::spec::{check_owner, NameProblem};
use super::{Attributes, ResourceType};
use crate::fact::{EntryKind, FactError, NodeFacts, ProbeBuilder};
use crate::resource::{Mode, metadata_details, metadata_shell, observed_stat, Context, Operations, Presence, StepOut};
use crate::transport::quote::quote_str;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirectorySpec {
    pub path: RemotePath,
    pub ensure: Presence,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<Mode>,
}

impl Operations for DirectorySpec {
    fn probe(&self, _index: usize, probe: &mut ProbeBuilder) {
        probe.stat(&self.path);
    }

    fn assess(&self, ctx: &Context<'_>) -> Result<Assessment, FactError> {
        let stat = ctx.facts.stats.get(self.path.as_str());
        let change = match (self.ensure, stat) {
            (Presence::Absent, None) => None,
            (Presence::Absent, Some(_)) => Some(Change::new(ctx.id, Action::Remove)),
            (Presence::Present, None) => {
                let mut change = Change::new(ctx.id, Action::Create);
                if let Some(mode) = self.mode {
                    change
                        .details
                        .push(Detail::new("mode", None, Some(mode.to_string())));
                }
                Some(change)
            }
            (Presence::Present, Some(stat)) => {
                let mut change = Change::new(ctx.id, Action::Modify);
                change
                    .details
                    .extend(super::kind_detail(stat, EntryKind::Directory));
                change.details.extend(metadata_details(
                    stat,
                    self.mode,
                    self.owner.as_ref(),
                    self.group.as_ref(),
                ));
                (!change.details.is_empty()).then_some(change)
            }
        };
        Ok(Assessment {
            observed: observed_stat(stat),
            change,
        })
    }

    fn apply(&self, change: &Change, _facts: &NodeFacts, out: &mut StepOut) {
        let p = quote_str(self.path.as_str());
        match change.action {
            Action::Remove => out.run(
                format!("rmdir -- {p}"),
                format!("cannot remove the directory `{}`", self.path),
            ),
            _ => {
                if change.action == Action::Create || change.touches("type") {
                    // Fails on a non-directory in the way: replacing a file is not implied.
                    out.run(
                        format!("( umask 022; mkdir -p -- {p} )"),
                        format!("cannot create the directory `{}`", self.path),
                    );
                }
                metadata_shell(
                    out,
                    &p,
                    &format!("`{}`", self.path),
                    self.mode,
                    self.owner.as_ref(),
                    self.group.as_ref(),
                );
            }
        }
    }
}

impl ResourceType for DirectorySpec {
    const KEYS: &'static [&'static str] = &["path", "ensure", "owner", "group", "mode"];
    const REQUIRED: &'static [&'static str] = &["path"];

    fn build<A: Attributes>(a: &A) -> Result<Self, A::Error> {
        Ok(DirectorySpec {
            path: a.required_path("path")?,
            ensure: a.presence()?,
            owner: a.text("owner")?,
            group: a.text("group")?,
            mode: a.mode()?,
        })
    }

    fn name<A: Attributes>(&self, _: &A) -> Result<String, A::Error> {
        Ok(self.path.to_string())
    }

    fn check_names(&self) -> Result<(), NameProblem> {
        check_owner("owner", &self.owner)?;
        check_owner("group", &self.group)
    }
}
