//! `file`: content, owner, group and mode of a regular file. Facts: the batched `stat`
//! and `sha256sum`, plus the current content (or, for secret-bearing content, only the
//! changed line numbers) when it differs. Writes are atomic: staged next to the target
//! with a private mode from data whose sha256 the script checked on the node before any
//! step, given its owner, group and mode, fsynced, validated, backed up, renamed,
//! directory fsynced; each command checked, so any failure before the rename leaves the
//! old file as it was.

use serde::Serialize;
use crate::path::RemotePath;
use super::change::{Action, Assessment, Change, Detail};
use super::diff::{self, Diff};
use super::spec::{check_owner, NameProblem};
use super::{Attributes, ResourceType};
use crate::fact::{EntryKind, FactError, NodeFacts, ProbeBuilder, Section, CONTENT_CAP};
use crate::resource::{Content, Mode, metadata_details, metadata_shell, observed_stat, Context, Operations, Presence, StepOut};
use crate::transport::quote::quote_str;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileSpec {
    pub path: RemotePath,
    pub ensure: Presence,
    /// `None`: tandem manages only existence and metadata, not content.
    pub content: Option<Content>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<Mode>,
    pub validate: Option<Validate>,
    /// Keep the replaced content in the node's tandem state directory.
    pub backup: bool,
}

/// Validation of a staged file before it is renamed into place.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Validate {
    /// Command with `{staged}` standing for the staged file's path (`nginx -t -c {staged}`)
    /// and, with `tree`, `{tree}` for the staged copy of the tree, so that a file that is
    /// only part of a config validates the whole (`nginx -t -c {tree}/nginx.conf`).
    pub command: String,
    /// When set, every changed file below this directory is staged together in a copy of
    /// the tree and validated there, so a config that spans several files (nginx.conf
    /// plus its includes) is checked as a whole. Templates then use relative includes.
    pub tree: Option<RemotePath>,
}

/// Directories whose files are systemd units: changing one needs a daemon-reload.
const UNIT_DIRS: [&str; 3] = [
    "/etc/systemd/system/",
    "/lib/systemd/system/",
    "/usr/lib/systemd/system/",
];

impl Operations for FileSpec {
    fn probe(&self, index: usize, probe: &mut ProbeBuilder) {
        probe.stat(&self.path);
        probe.leftovers_of(&self.path);
        if let Some(tree) = self.validate.as_ref().and_then(|v| v.tree.as_ref()) {
            probe.leftovers_of(tree);
        }
        if let (Presence::Present, Some(content)) = (self.ensure, &self.content) {
            if content.is_sensitive() {
                probe.lines_if_differs(index, &self.path, &content.bytes, &content.sha256());
            } else if std::str::from_utf8(&content.bytes).is_err() {
                // Bytes, not text: digests tell the change, no diff needs the old content.
                probe.sum(&self.path);
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
        let path = &self.path;
        out.unit_file = UNIT_DIRS.iter().any(|d| self.path.as_str().starts_with(d));
        if change.action == Action::Remove {
            self.backup(out, &p);
            out.run(format!("rm -f -- {p}"), format!("cannot remove `{path}`"));
            out.sync_dir(parent);
            return;
        }
        let content = match &self.content {
            Some(c) if change.touches("content") || change.touches("type") => c,
            None if change.touches("type") => {
                out.fail(format!(
                    "`{path}` is not a regular file and no content is declared to replace it"
                ));
                return;
            }
            _ => {
                if change.action == Action::Create {
                    out.run(
                        format!("( umask 022; : > {p} )"),
                        format!("cannot create `{path}`"),
                    );
                }
                metadata_shell(
                    out,
                    &p,
                    &format!("`{path}`"),
                    self.mode,
                    self.owner.as_ref(),
                    self.group.as_ref(),
                );
                return;
            }
        };
        let blob = out.blob(&content.bytes);
        let prefix = format!(
            "{}/.{}.tandem-",
            self.path.parent().as_str().trim_end_matches('/'),
            self.path.file_name()
        );
        if let (Some(mode), Some(owner), Some(group)) = (self.mode, &self.owner, &self.group) {
            // Every attribute declared: one `install` writes the staged file with its
            // owner, group and mode (one process instead of mktemp, cat, chown and
            // chmod; every process counts on a loaded node). The staged name is the
            // run's own: the random part of its work directory `$W` and the blob's
            // number; it must not exist yet.
            let number = out.blob_base + out.blobs.len() - 1;
            out.run(
                format!(
                    "st={}\"${{W##*.}}\"{number}; [ ! -e \"$st\" ] && [ ! -L \"$st\" ]",
                    quote_str(&prefix)
                ),
                format!("a staged file for `{path}` is in the way"),
            );
            out.trap(REMOVE_STAGED);
            out.run(
                format!(
                    "install -T -m {} -o {} -g {} -- {blob} \"$st\"",
                    quote_str(&mode.to_string()),
                    quote_str(owner),
                    quote_str(group)
                ),
                format!(
                    "cannot write the staged file for `{path}` with owner `{owner}:{group}` and mode `{mode}`"
                ),
            );
        } else {
            self.stage_keeping_metadata(out, &p, &blob, &prefix, content.is_sensitive());
        }
        out.run(
            "sync -- \"$st\"",
            format!("cannot fsync the staged file for `{path}`"),
        );
        // A tree is validated as a whole before this step (see `apply::script`).
        let in_tree = |v: &&Validate| v.tree.as_ref().is_some_and(|t| self.path.starts_with(t));
        if let Some(validate) = self.validate.as_ref().filter(|v| !in_tree(v)) {
            let command = validate.command.replace("{staged}", "\"$st\"");
            if content.is_sensitive() {
                // Its output could carry the file's secrets (or a transformation of
                // them no redaction recognises): only the status comes back.
                out.run_redirected(
                    &command,
                    " >/dev/null 2>&1",
                    format!(
                        "validation failed: `{}` (its output is withheld: the file holds secrets)",
                        validate.command
                    ),
                );
            } else {
                out.run_redirected(
                    &command,
                    " >&2",
                    format!("validation failed: `{}`", validate.command),
                );
            }
        }
        self.backup(out, &p);
        out.run(
            format!("mv -Tf -- \"$st\" {p}"),
            format!("cannot rename the staged file into place as `{path}`"),
        );
        out.sync_dir(parent);
    }
}

/// A step's exit removes its staged file when it is still there (a step that failed
/// before the rename); after the rename the shell's own test finds nothing, and no `rm`
/// runs.
const REMOVE_STAGED: &str = "if [ -e \"$st\" ] || [ -L \"$st\" ]; then rm -f -- \"$st\"; fi";

impl FileSpec {
    /// Stages the content in `"$st"` with mktemp's private mode, then gives it the
    /// declared metadata; what is not declared is kept from the file being replaced, or
    /// defaults to 0644 (0600 for secret-bearing content). The old file is not touched
    /// until the staged one is complete, fsynced, verified and has its metadata.
    fn stage_keeping_metadata(
        &self,
        out: &mut StepOut,
        p: &str,
        blob: &str,
        prefix: &str,
        sensitive: bool,
    ) {
        let path = &self.path;
        out.run(
            format!("st=$(mktemp -- {})", quote_str(&format!("{prefix}XXXXXX"))),
            format!("cannot create a staged file next to `{path}`"),
        );
        out.trap(REMOVE_STAGED);
        out.run(
            format!("cat -- {blob} > \"$st\""),
            format!("cannot write the staged file for `{path}`"),
        );
        if self.owner.is_none() || self.group.is_none() {
            out.run(
                format!("if [ -f {p} ]; then chown --reference={p} -- \"$st\"; fi"),
                format!("cannot copy the owner of `{path}` to its staged file"),
            );
        }
        if self.mode.is_none() {
            // A new secret-bearing file is readable by its owner only.
            let new_mode = if sensitive { "0600" } else { "0644" };
            out.run(
                format!(
                    "if [ -f {p} ]; then chmod --reference={p} -- \"$st\"; else chmod {new_mode} \"$st\"; fi"
                ),
                format!("cannot set the mode of the staged file for `{path}`"),
            );
        }
        metadata_shell(
            out,
            "\"$st\"",
            &format!("the staged file for `{path}`"),
            self.mode,
            self.owner.as_ref(),
            self.group.as_ref(),
        );
    }

    fn content_diff(&self, ctx: &Context<'_>, kind: EntryKind) -> Diff {
        let Some(content) = &self.content else {
            return Diff::Unavailable {
                reason: "content not managed".into(),
            };
        };
        if content.is_sensitive() {
            return match ctx.facts.section(Section::Lines(ctx.index)) {
                Some(lines) => diff::redacted(lines, &content.secrets),
                None => diff::redacted_new(&content.bytes, &content.secrets),
            };
        }
        if std::str::from_utf8(&content.bytes).is_err() {
            let old = ctx
                .facts
                .sums
                .get(self.path.as_str())
                .map_or("none", String::as_str);
            return Diff::Unavailable {
                reason: format!("binary content, sha256 {old} -> {}", content.sha256()),
            };
        }
        let node_sum = ctx.facts.sums.get(self.path.as_str()).map(String::as_str);
        let old_was_secret = ctx.secrets.was_secret_bearing(self.path.as_str(), node_sum);
        match ctx.facts.section(Section::Content(ctx.index)) {
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

    /// Keeps the current file under the state directory, named with the time the
    /// control side sent the script (`$ts`, set by the script's preamble: a `date` per
    /// file was one more process each). The backup's directory is created only the
    /// first time.
    fn backup(&self, out: &mut StepOut, p: &str) {
        if !self.backup {
            return;
        }
        let dest = format!(
            "\"$STATE/backup\"{}\".$ts\"",
            quote_str(self.path.as_str())
        );
        out.run(
            format!(
                "if [ -f {p} ] && [ ! -L {p} ]; then b={dest} && {{ [ -d \"${{b%/*}}\" ] || mkdir -p -- \"${{b%/*}}\"; }} && cp -p -- {p} \"$b\"; fi"
            ),
            format!("cannot back up `{}`", self.path),
        );
    }
}

impl ResourceType for FileSpec {
    const KEYS: &'static [&'static str] = &[
        "path",
        "ensure",
        "content",
        "template",
        "source",
        "owner",
        "group",
        "mode",
        "validate",
        "validate_tree",
        "backup",
    ];
    const REQUIRED: &'static [&'static str] = &["path"];

    fn build<A: Attributes>(a: &A) -> Result<Self, A::Error> {
        let validate = match a.text("validate")? {
            Some(command) => {
                let tree = a.path("validate_tree")?;
                let names_target =
                    command.contains("{staged}") || (tree.is_some() && command.contains("{tree}"));
                if !names_target {
                    return Err(a.invalid(
                        "validate",
                        "the command must name the staged file as `{staged}` \
                         (or, with `validate_tree`, the staged tree as `{tree}`)"
                            .to_string(),
                    ));
                }
                if tree.is_none() && command.contains("{tree}") {
                    return Err(a.invalid("validate", "`{tree}` needs `validate_tree`".to_string()));
                }
                Some(Validate { command, tree })
            }
            None => None,
        };
        Ok(FileSpec {
            path: a.required_path("path")?,
            ensure: a.presence()?,
            content: a.content()?,
            owner: a.text("owner")?,
            group: a.text("group")?,
            mode: a.mode()?,
            validate,
            backup: a.flag("backup").unwrap_or(true),
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
