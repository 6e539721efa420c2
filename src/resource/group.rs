//! `group`: a local group read from the probe's one keyed `getent group` for all
//! accounts (`fact::accounts`), changed with `groupadd`/`groupmod`/
//! `groupdel`.

use serde::Serialize;
use super::change::{Action, Assessment, Change, Detail};
use super::spec::{at, NameProblem};
use super::{Attributes, ResourceType};
use crate::fact::{FactError, NodeFacts, ProbeBuilder};
use crate::node::check_account;
use crate::resource::{Context, Operations, Presence, StepOut};
use crate::transport::quote::quote_str;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSpec {
    pub name: String,
    pub ensure: Presence,
    pub gid: Option<u32>,
    pub system: bool,
}

impl Operations for GroupSpec {
    fn probe(&self, _index: usize, probe: &mut ProbeBuilder) {
        // Batched with every account of the catalog (see `fact::accounts`).
        probe.group(&self.name);
    }

    fn assess(&self, ctx: &Context<'_>) -> Result<Assessment, FactError> {
        let entry = ctx.facts.accounts.group(&self.name);
        let observed = format!("{:?}", entry.map(|g| g.line.as_str()));
        let change = match (self.ensure, entry) {
            (Presence::Absent, None) => None,
            (Presence::Absent, Some(_)) => Some(Change::new(ctx.id, Action::Remove)),
            (Presence::Present, None) => Some(Change::new(ctx.id, Action::Create)),
            (Presence::Present, Some(entry)) => {
                match self.gid {
                    Some(want) if entry.gid != want.to_string() => {
                        let mut c = Change::new(ctx.id, Action::Modify);
                        c.details.push(Detail::new(
                            "gid",
                            Some(entry.gid.clone()),
                            Some(want.to_string()),
                        ));
                        Some(c)
                    }
                    _ => None,
                }
            }
        };
        Ok(Assessment { observed, change })
    }

    fn apply(&self, change: &Change, _facts: &NodeFacts, out: &mut StepOut) {
        let n = quote_str(&self.name);
        let gid = self.gid.map(|g| format!(" -g {g}")).unwrap_or_default();
        let name = &self.name;
        match change.action {
            Action::Remove => out.run(
                format!("groupdel -- {n}"),
                format!("groupdel `{name}` failed"),
            ),
            Action::Create => {
                let system = if self.system { " -r" } else { "" };
                out.run(
                    format!("groupadd{system}{gid} -- {n}"),
                    format!("groupadd `{name}` failed"),
                );
            }
            _ => out.run(
                format!("groupmod{gid} -- {n}"),
                format!("groupmod `{name}` failed"),
            ),
        }
    }
}

impl ResourceType for GroupSpec {
    const KEYS: &'static [&'static str] = &["name", "ensure", "gid", "system"];
    const REQUIRED: &'static [&'static str] = &["name"];

    fn build<A: Attributes>(a: &A) -> Result<Self, A::Error> {
        Ok(GroupSpec {
            name: a.required("name")?,
            ensure: a.presence()?,
            gid: a.number("gid"),
            system: a.flag("system").unwrap_or(false),
        })
    }

    fn name<A: Attributes>(&self, _: &A) -> Result<String, A::Error> {
        Ok(self.name.clone())
    }

    fn check_names(&self) -> Result<(), NameProblem> {
        check_account("group name", &self.name).map_err(at("name"))
    }
}
