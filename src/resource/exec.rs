//! `exec`: a command guarded by `creates` (a path), `unless` and `onlyif` (commands),
//! all evaluated in the probe, so planning knows whether it would run. `refresh_only`
//! commands run only when notified.

use serde::Serialize;
use crate::path::RemotePath;
use super::change::{Action, Assessment, Change, Detail};
use super::spec::{at, NameProblem};
use super::{Attributes, ResourceType};
use crate::fact::{FactError, NodeFacts, ProbeBuilder, Section};
use crate::node::check_account;
use crate::resource::{wrap_command, Context, Operations, StepOut};
use crate::transport::quote::quote_str;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecSpec {
    pub command: String,
    /// Skip when this path exists.
    pub creates: Option<RemotePath>,
    /// Skip when this command exits 0.
    pub unless: Option<String>,
    /// Run only when this command exits 0.
    pub onlyif: Option<String>,
    /// Run only when notified.
    pub refresh_only: bool,
    pub user: Option<String>,
    pub cwd: Option<RemotePath>,
}

impl Operations for ExecSpec {
    fn probe(&self, index: usize, probe: &mut ProbeBuilder) {
        let mut shell = String::new();
        if let Some(path) = &self.creates {
            shell.push_str(&format!(
                "[ -e {} ] && echo creates=1\n",
                quote_str(path.as_str())
            ));
        }
        for (key, guard) in [("unless", &self.unless), ("onlyif", &self.onlyif)] {
            if let Some(guard) = guard {
                let cmd = wrap_command(guard, self.user.as_ref(), self.cwd.as_ref());
                shell.push_str(&format!(
                    "if {cmd} </dev/null >/dev/null 2>&1; then echo {key}=0; else echo {key}=1; fi\n"
                ));
            }
        }
        shell.push(':');
        probe.section(index, &shell);
    }

    fn assess(&self, ctx: &Context<'_>) -> Result<Assessment, FactError> {
        let kv = ctx.facts.keyed(Section::Resource(ctx.index));
        let created = kv.contains_key("creates");
        let unless_ok = kv.get("unless").map(|v| v == "0");
        let onlyif_ok = kv.get("onlyif").map(|v| v == "0");
        let observed = format!("creates={created} unless={unless_ok:?} onlyif={onlyif_ok:?}");
        let guards_pass = !created
            && (self.unless.is_none() || unless_ok == Some(false))
            && (self.onlyif.is_none() || onlyif_ok == Some(true));
        let runs = guards_pass && (!self.refresh_only || !ctx.notified_by.is_empty());
        let change = runs.then(|| {
            let mut c = Change::new(ctx.id, Action::Run);
            if !ctx.notified_by.is_empty() {
                let by: Vec<String> = ctx.notified_by.iter().map(ToString::to_string).collect();
                c.details
                    .push(Detail::new("notified", None, Some(by.join(", "))));
            }
            c
        });
        Ok(Assessment { observed, change })
    }

    fn apply(&self, _change: &Change, _facts: &NodeFacts, out: &mut StepOut) {
        // Modules declare the reload their unit files need as this very command (see
        // modules/app-service); run as root, it is the reload a service step would
        // otherwise run again before its restart.
        let words: Vec<&str> = self.command.split_whitespace().collect();
        out.reloads_units = self.user.is_none() && words == ["systemctl", "daemon-reload"];
        out.run(
            wrap_command(&self.command, self.user.as_ref(), self.cwd.as_ref()),
            format!("the command `{}` failed", self.command),
        );
    }
}

impl ResourceType for ExecSpec {
    const KEYS: &'static [&'static str] = &[
        "name",
        "command",
        "creates",
        "unless",
        "onlyif",
        "refresh_only",
        "user",
        "cwd",
    ];
    const REQUIRED: &'static [&'static str] = &["command"];

    fn build<A: Attributes>(a: &A) -> Result<Self, A::Error> {
        Ok(ExecSpec {
            command: a.required("command")?,
            creates: a.path("creates")?,
            unless: a.text("unless")?,
            onlyif: a.text("onlyif")?,
            refresh_only: a.flag("refresh_only").unwrap_or(false),
            user: a.text("user")?,
            cwd: a.path("cwd")?,
        })
    }

    /// `name` when given, else the command itself.
    fn name<A: Attributes>(&self, a: &A) -> Result<String, A::Error> {
        Ok(a.text("name")?.unwrap_or_else(|| self.command.clone()))
    }

    fn check_names(&self) -> Result<(), NameProblem> {
        match &self.user {
            Some(user) => check_account("user", user).map_err(at("user")),
            None => Ok(()),
        }
    }
}
