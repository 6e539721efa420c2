//! `file`: content, owner, group and mode of a regular file. Facts: the batched `stat`
//! and `sha256sum`, plus the current content (or, for secret-bearing content, only the
//! changed line numbers) when it differs. Writes are atomic: staged next to the target
//! with a private mode, fsynced, validated, backed up, renamed, directory fsynced.

use super::change::{Action, Assessment, Change, Detail};
use super::diff::{self, Diff};
use crate::fact::{EntryKind, FactError, NodeFacts, ProbeBuilder, CONTENT_CAP};
use crate::resource::{
    metadata_details, metadata_shell, observed_stat, Context, FileSpec, Operations, Presence,
    StepOut, Validate,
};
use crate::transport::quote::quote_str;

/// Directories whose files are systemd units: changing one needs a daemon-reload.
const UNIT_DIRS: [&str; 3] = [
    "/etc/systemd/system/",
    "/lib/systemd/system/",
    "/usr/lib/systemd/system/",
];

impl Operations for FileSpec {
    fn probe(&self, index: usize, probe: &mut ProbeBuilder) {
        probe.stat(&self.path);
        if let (Presence::Present, Some(content)) = (self.ensure, &self.content) {
            if content.is_sensitive() {
                probe.lines_if_differs(index, &self.path, &content.bytes, &content.sha256());
            } else {
                probe.content_if_differs(index, &self.path, &content.sha256());
            }
        }
    }

    fn assess(&self, ctx: &Context<'_>) -> Result<Assessment, FactError> {
        let path = self.path.as_str();
        let stat = ctx.facts.stats.get(path);
        let sum = ctx.facts.sums.get(path);
        // The node's sum keyed (when the site key is known): the read digest of a saved
        // plan must not be a plain hash chain over content that may hold a secret.
        let observed = format!(
            "{} {}",
            observed_stat(stat),
            sum.map_or("-".to_string(), |s| ctx.secrets.shown_sum(s))
        );
        let change = match (self.ensure, stat) {
            (Presence::Absent, None) => None,
            (Presence::Absent, Some(_)) => Some(Change::new(ctx.id, Action::Remove)),
            (Presence::Present, None) => {
                let mut change = Change::new(ctx.id, Action::Create);
                if let Some(content) = &self.content {
                    change.details.push(Detail::new("content", None, None));
                    change.diff = Some(if content.is_sensitive() {
                        diff::redacted_new(&content.bytes, &content.secrets)
                    } else {
                        diff::text(path, None, &content.bytes, ctx.secrets)
                    });
                }
                Some(change)
            }
            (Presence::Present, Some(stat)) => {
                let mut change = Change::new(ctx.id, Action::Modify);
                change
                    .details
                    .extend(super::kind_detail(stat, EntryKind::File));
                if let Some(content) = &self.content {
                    if sum != Some(&content.sha256()) {
                        change.details.push(Detail::new("content", None, None));
                        change.diff = Some(self.content_diff(ctx, stat.kind));
                    }
                }
                change.details.extend(metadata_details(
                    stat,
                    self.mode,
                    self.owner.as_ref(),
                    self.group.as_ref(),
                ));
                (!change.details.is_empty()).then_some(change)
            }
        };
        Ok(Assessment { observed, change })
    }

    fn apply(&self, change: &Change, _facts: &NodeFacts, out: &mut StepOut) {
        let p = quote_str(self.path.as_str());
        let parent = quote_str(self.path.parent().as_str());
        out.unit_file = UNIT_DIRS.iter().any(|d| self.path.as_str().starts_with(d));
        if change.action == Action::Remove {
            self.backup(out, &p);
            out.line(format!("rm -f -- {p}"));
            out.line(format!("sync -- {parent}"));
            return;
        }
        let content = match &self.content {
            Some(c) if change.touches("content") || change.touches("type") => c,
            None if change.touches("type") => {
                out.line(format!(
                    "echo {} >&2; exit 1",
                    quote_str(&format!(
                        "`{}` is not a regular file and no content is declared to replace it",
                        self.path
                    ))
                ));
                return;
            }
            _ => {
                if change.action == Action::Create {
                    out.line(format!("( umask 022; : > {p} )"));
                }
                metadata_shell(out, &p, self.mode, self.owner.as_ref(), self.group.as_ref());
                return;
            }
        };
        let blob = out.blob(&content.bytes);
        let stage = quote_str(&format!(
            "{}/.{}.tandem-XXXXXX",
            self.path.parent().as_str().trim_end_matches('/'),
            self.path.file_name()
        ));
        // Staged files of an interrupted earlier run (killed before its cleanup ran):
        // safe to remove, the node lock is held.
        out.line(format!(
            "rm -f -- {}/{}??????",
            quote_str(self.path.parent().as_str().trim_end_matches('/')),
            quote_str(&format!(".{}.tandem-", self.path.file_name()))
        ));
        out.line(format!("st=$(mktemp -- {stage})"));
        out.line("trap 'rm -f -- \"$st\"' EXIT");
        out.line(format!("cat -- {blob} > \"$st\""));
        // Unmanaged metadata is kept from the file being replaced, or defaults to 0644.
        if self.owner.is_none() || self.group.is_none() {
            out.line(format!(
                "if [ -f {p} ]; then chown --reference={p} -- \"$st\"; fi"
            ));
        }
        if self.mode.is_none() {
            out.line(format!(
                "if [ -f {p} ]; then chmod --reference={p} -- \"$st\"; else chmod 0644 \"$st\"; fi"
            ));
        }
        metadata_shell(
            out,
            "\"$st\"",
            self.mode,
            self.owner.as_ref(),
            self.group.as_ref(),
        );
        out.line("sync -- \"$st\"");
        // A tree is validated as a whole before this step (see `apply::script`).
        let in_tree = |v: &&Validate| v.tree.as_ref().is_some_and(|t| self.path.starts_with(t));
        if let Some(validate) = self.validate.as_ref().filter(|v| !in_tree(v)) {
            let command = validate.command.replace("{staged}", "\"$st\"");
            out.line(format!(
                "if ! {{ {command}\n}} >&2; then echo {} >&2; exit 1; fi",
                quote_str(&format!("validation failed: `{}`", validate.command))
            ));
        }
        self.backup(out, &p);
        out.line(format!("mv -Tf -- \"$st\" {p}"));
        out.line(format!("sync -- {parent}"));
    }
}

impl FileSpec {
    fn content_diff(&self, ctx: &Context<'_>, kind: EntryKind) -> Diff {
        let Some(content) = &self.content else {
            return Diff::Unavailable {
                reason: "content not managed".into(),
            };
        };
        if content.is_sensitive() {
            return match ctx.facts.section(&format!("l{}", ctx.index)) {
                Some(lines) => diff::redacted(lines, &content.secrets),
                None => diff::redacted_new(&content.bytes, &content.secrets),
            };
        }
        let node_sum = ctx.facts.sums.get(self.path.as_str()).map(String::as_str);
        let old_was_secret = ctx.secrets.was_secret_bearing(self.path.as_str(), node_sum);
        match ctx.facts.section(&format!("c{}", ctx.index)) {
            Some(old) if old.len() > CONTENT_CAP => Diff::Unavailable {
                reason: format!("current content is larger than {CONTENT_CAP} bytes"),
            },
            // The node's copy held a secret when tandem last rendered it (the ledger,
            // see `secret::ledger`): line numbers only, even though the new one holds none.
            Some(old) if old_was_secret => diff::redacted_between(old, &content.bytes, &[]),
            Some(old) => diff::text(self.path.as_str(), Some(old), &content.bytes, ctx.secrets),
            None if kind != EntryKind::File => {
                diff::text(self.path.as_str(), None, &content.bytes, ctx.secrets)
            }
            None => Diff::Unavailable {
                reason: "current content could not be read".into(),
            },
        }
    }

    /// Keeps the current file under the state directory, timestamped.
    fn backup(&self, out: &mut StepOut, p: &str) {
        if !self.backup {
            return;
        }
        let dest = format!(
            "\"$STATE/backup\"{}\".$(date -u +%Y%m%dT%H%M%SZ)\"",
            quote_str(self.path.as_str())
        );
        out.line(format!(
            "if [ -f {p} ] && [ ! -L {p} ]; then b={dest}; mkdir -p -- \"${{b%/*}}\"; cp -p -- {p} \"$b\"; fi"
        ));
    }
}
