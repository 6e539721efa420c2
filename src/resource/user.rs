//! `user`: a local account read from the probe's one `getent passwd` and keyed
//! `getent group` for all accounts (`fact::accounts`), changed with
//! `useradd`/`usermod`/`userdel`. Supplementary groups are a minimum: groups the node
//! adds on its own are left alone.

use serde::Serialize;
use crate::path::RemotePath;
use super::change::{Action, Assessment, Change, Detail};
use super::spec::{at, check_owner, NameProblem};
use super::{Attributes, ResourceType};
use crate::fact::{FactError, NodeFacts, ProbeBuilder};
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
    fn probe(&self, _index: usize, probe: &mut ProbeBuilder) {
        // Batched with every account of the catalog: the user's passwd entry, and the
        // groups it should be in, whose member lists say whether it is (see
        // `fact::accounts`). No process per user.
        probe.user(&self.name);
        for group in &self.groups {
            probe.group(group);
        }
    }

    fn assess(&self, ctx: &Context<'_>) -> Result<Assessment, FactError> {
        let accounts = &ctx.facts.accounts;
        let passwd = accounts.user(&self.name);
        let groups = accounts.groups_of(&self.name);
        let observed = format!(
            "{:?} {:?}",
            passwd.map(|p| p.line.as_str()),
            groups.as_ref().map(|g| g.join(" "))
        );
        let change = match (self.ensure, passwd) {
            (Presence::Absent, None) => None,
            (Presence::Absent, Some(_)) => Some(Change::new(ctx.id, Action::Remove)),
            (Presence::Present, None) => Some(Change::new(ctx.id, Action::Create)),
            (Presence::Present, Some(entry)) => {
                let mut c = Change::new(ctx.id, Action::Modify);
                let mut diff = |attr, have: &str, want: Option<String>| {
                    if let Some(want) = want {
                        if have != want {
                            c.details
                                .push(Detail::new(attr, Some(have.to_string()), Some(want)));
                        }
                    }
                };
                diff("uid", &entry.uid, self.uid.map(|u| u.to_string()));
                diff(
                    "group",
                    &accounts.primary_group(entry),
                    self.group.clone(),
                );
                diff(
                    "home",
                    &entry.home,
                    self.home.as_ref().map(|h| h.to_string()),
                );
                diff("shell", &entry.shell, self.shell.clone());
                let have = groups.unwrap_or_default();
                let missing: Vec<&str> = self
                    .groups
                    .iter()
                    .map(String::as_str)
                    .filter(|g| !have.iter().any(|h| h == g))
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
