//! `group`: a local group read with `getent group`, changed with `groupadd`/`groupmod`/
//! `groupdel`.

use serde::Serialize;
use super::change::{Action, Assessment, Change, Detail};
use super::spec::{at, NameProblem};
use super::{Attributes, ResourceType};
use crate::fact::{FactError, NodeFacts, ProbeBuilder, Section};
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
    fn probe(&self, index: usize, probe: &mut ProbeBuilder) {
        let n = quote_str(&self.name);
        probe.section(
            index,
            &format!("printf 'g=%s\\n' \"$(getent group -- {n})\""),
        );
    }

    fn assess(&self, ctx: &Context<'_>) -> Result<Assessment, FactError> {
        let kv = ctx.facts.keyed(Section::Resource(ctx.index));
        let entry = kv.get("g").filter(|g| !g.is_empty());
        let observed = format!("{entry:?}");
        let change = match (self.ensure, entry) {
            (Presence::Absent, None) => None,
            (Presence::Absent, Some(_)) => Some(Change::new(ctx.id, Action::Remove)),
            (Presence::Present, None) => Some(Change::new(ctx.id, Action::Create)),
            (Presence::Present, Some(line)) => {
                let gid = line.split(':').nth(2);
                match self.gid {
                    Some(want) if gid != Some(want.to_string().as_str()) => {
                        let mut c = Change::new(ctx.id, Action::Modify);
                        c.details.push(Detail::new(
                            "gid",
                            gid.map(str::to_string),
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
