//! `service`: running/stopped and enabled/disabled through systemd when the node runs it
//! (`/run/systemd/system`), or through explicit `ServiceCommands`. Notification becomes
//! one reload (or restart) per run, placed after everything the service depends on.

use super::change::{Action, Assessment, Change, Detail};
use crate::fact::{FactError, NodeFacts, ProbeBuilder};
use crate::resource::{Context, Operations, ServiceSpec, StepOut};
use crate::transport::quote::quote_str;

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
        let section = format!("r{}", ctx.index);
        let kv = ctx.facts.keyed(&section);
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
        if let Some(c) = &self.commands {
            if detail("running").is_some() {
                out.line(if wants("running") { &c.start } else { &c.stop });
            }
            if detail("refresh").is_some() {
                match (&c.reload, self.reload) {
                    (Some(reload), true) => out.line(reload),
                    _ => {
                        out.line(&c.stop);
                        out.line(&c.start);
                    }
                }
            }
            return;
        }
        if !facts.systemd {
            out.line(format!(
                "echo {} >&2; exit 1",
                quote_str(&format!(
                    "service `{}`: no systemd and no service commands",
                    self.name
                ))
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
            out.line(format!("systemctl {verb} -- {u}"));
        }
        if detail("running").is_some() {
            let verb = if wants("running") { "start" } else { "stop" };
            out.line(format!("systemctl {verb} -- {u}"));
        }
        if detail("refresh").is_some() {
            let verb = if self.reload {
                "reload-or-restart"
            } else {
                "restart"
            };
            out.line(format!("systemctl {verb} -- {u}"));
        }
    }
}
