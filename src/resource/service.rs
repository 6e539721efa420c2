//! `service`: running/stopped and enabled/disabled through systemd when the node runs it
//! (`/run/systemd/system`), or through explicit `ServiceCommands`. Notification becomes
//! one reload (or restart) per run, placed after everything the service depends on.

use serde::Serialize;
use super::change::{Action, Assessment, Change, Detail};
use super::spec::{at, check_unit, NameProblem};
use super::{Attributes, ResourceType};
use crate::fact::{FactError, NodeFacts, ProbeBuilder, Section};
use crate::resource::{Context, Operations, StepOut};
use crate::transport::quote::quote_str;

/// Explicit service commands for nodes without systemd.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceCommands {
    pub start: String,
    pub stop: String,
    pub reload: Option<String>,
    /// Exits 0 when the service is running.
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceSpec {
    pub name: String,
    /// `Some(true)`: running; `Some(false)`: stopped; `None`: not managed.
    pub running: Option<bool>,
    pub enabled: Option<bool>,
    /// When notified: reload (if the service can) rather than restart.
    pub reload: bool,
    /// Used instead of systemd when set, or when the node has no systemd.
    pub commands: Option<ServiceCommands>,
}

const ENABLED: [&str; 4] = ["enabled", "enabled-runtime", "static", "alias"];

impl Operations for ServiceSpec {
    fn probe(&self, index: usize, probe: &mut ProbeBuilder) {
        match &self.commands {
            Some(c) => probe.section(
                index,
                &format!(
                    "if ( {}\n) </dev/null >/dev/null 2>&1; then echo running=1; else echo running=0; fi",
                    c.status
                ),
            ),
            // Batched with every other unit of the node into one `systemctl show`.
            None => probe.unit(index, &self.name),
        }
    }

    fn assess(&self, ctx: &Context<'_>) -> Result<Assessment, FactError> {
        let kv = ctx.facts.keyed(Section::Resource(ctx.index));
        let (running, enabled) = match (&self.commands, ctx.facts.systemd) {
            (Some(_), _) => (kv.get("running").map(|v| v == "1"), None),
            (None, true) => (
                kv.get("active").map(|v| v == "active"),
                kv.get("enabled").map(|v| ENABLED.contains(&v.as_str())),
            ),
            (None, false) => (None, None),
        };
        let observed = format!("running={running:?} enabled={enabled:?}");
        let mut change = Change::new(ctx.id, Action::Modify);
        if self.commands.is_none() && !ctx.facts.systemd {
            change.details.push(Detail::new(
                "manager",
                None,
                Some("no systemd and no service commands".into()),
            ));
        }
        if let Some(want) = self.enabled {
            if enabled != Some(want) {
                change.details.push(Detail::new(
                    "enabled",
                    enabled.map(|e| e.to_string()),
                    Some(want.to_string()),
                ));
            }
        }
        let mut starts = false;
        if let Some(want) = self.running {
            if running != Some(want) {
                starts = want;
                change.details.push(Detail::new(
                    "running",
                    running.map(|r| r.to_string()),
                    Some(want.to_string()),
                ));
            }
        }
        // A notified service that keeps running is refreshed; one that starts now
        // already runs the new configuration; a stopped one stays stopped.
        let keeps_running = !starts && running == Some(true) && self.running != Some(false);
        if !ctx.notified_by.is_empty() && keeps_running {
            let by: Vec<String> = ctx.notified_by.iter().map(ToString::to_string).collect();
            let verb = if self.reload { "reload" } else { "restart" };
            change.details.push(Detail::new(
                "refresh",
                None,
                Some(format!("{verb} (notified by {})", by.join(", "))),
            ));
            if change.details.len() == 1 {
                change.action = Action::Reload;
            }
        }
        Ok(Assessment {
            observed,
            change: (!change.details.is_empty()).then_some(change),
        })
    }

    fn apply(&self, change: &Change, facts: &NodeFacts, out: &mut StepOut) {
        let detail = |attr: &str| change.details.iter().find(|d| d.attr == attr);
        let wants = |attr: &str| detail(attr).and_then(|d| d.to.as_deref()) == Some("true");
        let name = &self.name;
        if let Some(c) = &self.commands {
            let start = || {
                (
                    format!("( {}\n)", c.start),
                    format!("the start command of `{name}` failed"),
                )
            };
            let stop = || {
                (
                    format!("( {}\n)", c.stop),
                    format!("the stop command of `{name}` failed"),
                )
            };
            if detail("running").is_some() {
                let (command, what) = if wants("running") { start() } else { stop() };
                out.run(command, what);
            }
            if detail("refresh").is_some() {
                match (&c.reload, self.reload) {
                    (Some(reload), true) => out.run(
                        format!("( {reload}\n)"),
                        format!("the reload command of `{name}` failed"),
                    ),
                    _ => {
                        let (command, what) = stop();
                        out.run(command, what);
                        let (command, what) = start();
                        out.run(command, what);
                    }
                }
            }
            return;
        }
        if !facts.systemd {
            out.fail(format!(
                "service `{name}`: no systemd and no service commands"
            ));
            return;
        }
        out.systemd_service = true;
        let u = quote_str(&self.name);
        if detail("enabled").is_some() {
            let verb = if wants("enabled") {
                "enable"
            } else {
                "disable"
            };
            out.run(
                format!("systemctl {verb} -- {u}"),
                format!("systemctl {verb} `{name}` failed"),
            );
        }
        if detail("running").is_some() {
            let verb = if wants("running") { "start" } else { "stop" };
            out.run(
                format!("systemctl {verb} -- {u}"),
                format!("systemctl {verb} `{name}` failed"),
            );
        }
        if detail("refresh").is_some() {
            let verb = if self.reload {
                "reload-or-restart"
            } else {
                "restart"
            };
            out.run(
                format!("systemctl {verb} -- {u}"),
                format!("systemctl {verb} `{name}` failed"),
            );
        }
    }
}

impl ResourceType for ServiceSpec {
    const KEYS: &'static [&'static str] = &["name", "running", "enabled", "reload", "commands"];
    const REQUIRED: &'static [&'static str] = &["name"];

    fn build<A: Attributes>(a: &A) -> Result<Self, A::Error> {
        Ok(ServiceSpec {
            name: a.required("name")?,
            running: a.flag("running"),
            enabled: a.flag("enabled"),
            reload: a.flag("reload").unwrap_or(false),
            commands: a.commands()?,
        })
    }

    fn name<A: Attributes>(&self, _: &A) -> Result<String, A::Error> {
        Ok(self.name.clone())
    }

    fn check_names(&self) -> Result<(), NameProblem> {
        check_unit(&self.name).map_err(at("name"))
    }
}
