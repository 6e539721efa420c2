//! `user`: a local account read with `getent passwd` and `id`, changed with
//! `useradd`/`usermod`/`userdel`. Supplementary groups are a minimum: groups the node
//! adds on its own are left alone.

use serde::Serialize;
use crate::path::RemotePath;
use super::change::{Action, Assessment, Change, Detail};
use super::spec::{at, check_owner, NameProblem};
use super::{Attributes, ResourceType};
use crate::fact::{FactError, NodeFacts, ProbeBuilder, Section};
use crate::node::{check_account, check_no_control};
use crate::resource::{Context, Operations, Presence, StepOut};
use crate::transport::quote::quote_str;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserSpec {
    pub name: String,
    pub ensure: Presence,
    pub uid: Option<u32>,
    /// Primary group.
    pub group: Option<String>,
    pub groups: Vec<String>,
    pub home: Option<RemotePath>,
    pub shell: Option<String>,
    pub system: bool,
}

impl Operations for UserSpec {
    fn probe(&self, index: usize, probe: &mut ProbeBuilder) {
        let n = quote_str(&self.name);
        // `id -Gn` lists the primary group first, so `pg` comes from its first word
        // instead of a third process (every process counts on a loaded node).
        probe.section(
            index,
            &format!(
                "G=$(id -Gn -- {n} 2>/dev/null); printf 'p=%s\\ng=%s\\npg=%s\\n' \"$(getent passwd -- {n})\" \"$G\" \"${{G%% *}}\""
            ),
        );
    }

    fn assess(&self, ctx: &Context<'_>) -> Result<Assessment, FactError> {
        let kv = ctx.facts.keyed(Section::Resource(ctx.index));
        let passwd = kv.get("p").filter(|p| !p.is_empty());
        let observed = format!("{passwd:?} {:?} {:?}", kv.get("g"), kv.get("pg"));
        let change = match (self.ensure, passwd) {
            (Presence::Absent, None) => None,
            (Presence::Absent, Some(_)) => Some(Change::new(ctx.id, Action::Remove)),
            (Presence::Present, None) => Some(Change::new(ctx.id, Action::Create)),
            (Presence::Present, Some(line)) => {
                let fields: Vec<&str> = line.split(':').collect();
                let mut c = Change::new(ctx.id, Action::Modify);
                let mut diff = |attr, have: Option<&str>, want: Option<String>| {
                    if let Some(want) = want {
                        if have != Some(want.as_str()) {
                            c.details
                                .push(Detail::new(attr, have.map(str::to_string), Some(want)));
                        }
                    }
                };
                diff(
                    "uid",
                    fields.get(2).copied(),
                    self.uid.map(|u| u.to_string()),
                );
                diff(
                    "group",
                    kv.get("pg").map(String::as_str),
                    self.group.clone(),
                );
                diff(
                    "home",
                    fields.get(5).copied(),
                    self.home.as_ref().map(|h| h.to_string()),
                );
                diff("shell", fields.get(6).copied(), self.shell.clone());
                let have: Vec<&str> = kv
                    .get("g")
                    .map(|g| g.split(' ').collect())
                    .unwrap_or_default();
                let missing: Vec<&str> = self
                    .groups
                    .iter()
                    .map(String::as_str)
                    .filter(|g| !have.contains(g))
                    .collect();
                if !missing.is_empty() {
                    c.details.push(Detail::new(
                        "groups",
                        None,
                        Some(format!("+{}", missing.join(",+"))),
                    ));
                }
                (!c.details.is_empty()).then_some(c)
            }
        };
        Ok(Assessment { observed, change })
    }

    fn apply(&self, change: &Change, _facts: &NodeFacts, out: &mut StepOut) {
        let n = quote_str(&self.name);
        if change.action == Action::Remove {
            out.run(
                format!("userdel -- {n}"),
                format!("userdel `{}` failed", self.name),
            );
            return;
        }
        let create = change.action == Action::Create;
        let mut args = Vec::new();
        let mut opt = |flag: &str, value: Option<String>| {
            if let Some(v) = value {
                args.push(format!("{flag} {}", quote_str(&v)));
            }
        };
        opt("-u", self.uid.map(|u| u.to_string()));
        opt("-g", self.group.clone());
        opt("-d", self.home.as_ref().map(|h| h.to_string()));
        opt("-s", self.shell.clone());
        if !self.groups.is_empty() {
            let groups = quote_str(&self.groups.join(","));
            args.push(if create {
                format!("-G {groups}")
            } else {
                format!("-a -G {groups}")
            });
        }
        if create {
            if self.system {
                args.push("-r".into());
            }
            if self.home.is_some() {
                args.push("-m".into());
            }
            out.run(
                format!("useradd {}-- {n}", words(&args)),
                format!("useradd `{}` failed", self.name),
            );
        } else {
            out.run(
                format!("usermod {}-- {n}", words(&args)),
                format!("usermod `{}` failed", self.name),
            );
        }
    }
}

/// Arguments followed by a space each: `-u '990' -r ` (or nothing).
fn words(args: &[String]) -> String {
    args.iter().map(|a| format!("{a} ")).collect()
}

impl ResourceType for UserSpec {
    const KEYS: &'static [&'static str] = &[
        "name", "ensure", "uid", "group", "groups", "home", "shell", "system",
    ];
    const REQUIRED: &'static [&'static str] = &["name"];

    fn build<A: Attributes>(a: &A) -> Result<Self, A::Error> {
        Ok(UserSpec {
            name: a.required("name")?,
            ensure: a.presence()?,
            uid: a.number("uid"),
            group: a.text("group")?,
            groups: a.list("groups")?,
            home: a.path("home")?,
            shell: a.text("shell")?,
            system: a.flag("system").unwrap_or(false),
        })
    }

    fn name<A: Attributes>(&self, _: &A) -> Result<String, A::Error> {
        Ok(self.name.clone())
    }

    fn check_names(&self) -> Result<(), NameProblem> {
        check_account("user name", &self.name).map_err(at("name"))?;
        check_owner("group", &self.group)?;
        for group in &self.groups {
            check_account("group", group).map_err(at("groups"))?;
        }
        match &self.shell {
            Some(shell) => check_no_control("shell", shell).map_err(at("shell")),
            None => Ok(()),
        }
    }
}
