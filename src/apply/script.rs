//! The apply script: one POSIX sh program per node that takes the node lock, removes
//! what killed earlier runs left, unpacks the data it was fed on stdin (framed: known
//! lengths, then a trailer that proves nothing was cut off), runs each resource's step
//! in catalog order with its dependencies checked, and finally runs the verifying probe,
//! all in one round trip.
//!
//! Each step runs in a subshell whose every command is checked (`cmd || fail WHAT`, see
//! `resource::StepOut`): `set -e` is ignored inside `if` conditions, so nothing relies
//! on it. A step whose path has a parent that is a symlink the site did not declare is
//! refused before it runs anything. Its status is a `Section::Step` marker.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use crate::catalog::Catalog;
use crate::fact::protocol::{preamble, Mark, Section, Token};
use crate::fact::script::staged_glob;
use crate::fact::NodeFacts;
use crate::path::RemotePath;
use crate::plan::NodePlan;
use crate::resource::{self, Presence, Resource, Spec, StepOut};
use crate::transport::quote::quote_str;

/// Everything the script needs besides the catalog and plan.
pub struct ScriptParams<'a> {
    pub token: &'a Token,
    pub state_dir: &'a RemotePath,
    pub lock_wait: Duration,
    /// The verifying probe and its stdin, appended after the steps.
    pub verify: (String, Vec<u8>),
}

/// The script and its stdin.
pub fn build(
    catalog: &Catalog,
    plan: &NodePlan,
    facts: &NodeFacts,
    params: ScriptParams<'_>,
) -> (String, Vec<u8>) {
    let mut s = preamble(params.token);
    let fatal = |why: &str| {
        format!(
            "{{ {}; echo {}; exit 0; }}",
            Section::Fatal.emit(),
            quote_str(why)
        )
    };
    // The lock holder's label carries the time the control side sent the script: a
    // `date` on the node would be one more process on every apply.
    let since = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    // The same time names the backups of this run (`20261201T200452Z`, in UTC).
    let stamp: String = since
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    s.push_str(&format!(
        "STATE={}\nts={}\numask 077\n\
         [ -d \"$STATE\" ] || mkdir -p -- \"$STATE\" || {}\n\
         exec 9>>\"$STATE/lock\"\n\
         if ! flock -w {} 9; then {}; cat -- \"$STATE/lock.owner\" 2>/dev/null; exit 0; fi\n\
         printf 'pid %s since %s\\n' \"$$\" {} > \"$STATE/lock.owner\"\n",
        quote_str(params.state_dir.as_str()),
        quote_str(&stamp),
        fatal("cannot create the state directory"),
        params.lock_wait.as_secs().max(1),
        Section::Locked.emit(),
        quote_str(&since.to_string()),
    ));
    // With the node lock held no other run is live here: whatever a run killed mid-way
    // left (work directories, staged files and trees) is removed, in one process, and
    // only when the shell's own globbing finds something (no process otherwise).
    let globs: String = std::iter::once("\"$STATE\"/run.??????".to_string())
        .chain(leftover_globs(catalog))
        .map(|g| format!(" {g}"))
        .collect();
    s.push_str(&format!(
        "for f in{globs}; do if [ -e \"$f\" ] || [ -L \"$f\" ]; then rm -rf --{globs} || {}; break; fi; done\n",
        fatal("cannot remove what an earlier run left staged")
    ));
    s.push_str(&format!(
        "W=$(mktemp -d -- \"$STATE/run.XXXXXX\") || {}\ntrap 'rm -rf -- \"$W\"' EXIT\n",
        fatal("cannot create a work directory")
    ));
    // Pass 1: every changed resource's step, so that tree validation (emitted before
    // the first file of its tree) knows the blob of every file in the tree.
    let mut stdin = Vec::new();
    let mut blob_count = 0;
    let mut sums = Vec::new();
    let mut index_of = HashMap::new();
    let mut planned: Vec<(usize, &Resource, StepOut)> = Vec::new();
    for (index, r) in catalog.resources.iter().enumerate() {
        index_of.insert(&r.id, index);
        let Some(change) = plan.change(&r.id) else {
            continue;
        };
        let mut out = StepOut {
            blob_base: blob_count,
            ..StepOut::default()
        };
        resource::operations(&r.spec).apply(change, facts, &mut out);
        // Blob numbers continue across steps, matching `StepOut::blob`'s words.
        for blob in &out.blobs {
            s.push_str(&format!(
                "head -c {} > \"$W/b{blob_count}\" || {}\n",
                blob.len(),
                fatal("cannot store the data for the steps in the state directory")
            ));
            stdin.extend_from_slice(blob);
            sums.push(format!(
                " {} \"$W/b{blob_count}\"",
                hex::encode(Sha256::digest(blob))
            ));
            blob_count += 1;
        }
        planned.push((index, r, out));
    }
    let links = declared_links(catalog);
    let trees = tree_groups(&planned, &links);
    // Pass 2: the steps, in catalog order, each guarded by its changed dependencies.
    let mut steps = String::new();
    let dep_indices = |r: &Resource| -> Vec<usize> {
        r.after
            .iter()
            .filter(|d| plan.change(d).is_some())
            .filter_map(|d| index_of.get(d).copied())
            .collect()
    };
    let guard = |i: usize| format!("[ \"$s{i}\" = ok ]");
    let deps_of = |r: &Resource| -> Vec<String> { dep_indices(r).into_iter().map(guard).collect() };
    let condition = |deps: Vec<String>| {
        if deps.is_empty() {
            "true".to_string()
        } else {
            deps.join(" && ")
        }
    };
    for (index, r, out) in &planned {
        let gate = trees.iter().position(|t| t.members.contains(index));
        if let Some(g) = gate {
            let tree = &trees[g];
            if tree.members.first() == Some(index) {
                // A tree's files often depend on each other (an include after its main
                // config); those are validated together, so only outside dependencies gate.
                let deps = tree
                    .members
                    .iter()
                    .filter_map(|m| planned.iter().find(|(i, _, _)| i == m))
                    .flat_map(|(_, r, _)| dep_indices(r))
                    .filter(|d| !tree.members.contains(d))
                    .map(guard)
                    .collect();
                steps.push_str(&format!(
                    "if {}; then\n( {}\n) >\"$W/v{g}\" 2>&1 </dev/null\n\
                     if [ $? -eq 0 ]; then v{g}=ok; else v{g}=fail; fi\n\
                     else v{g}=skip; echo 'tree not validated: a dependency failed' >\"$W/v{g}\"; fi\n",
                    condition(deps),
                    tree.shell
                ));
            }
        }
        let ok = Section::Step(*index, Mark::Ok).emit();
        let failed = Section::Step(*index, Mark::Fail).emit();
        let skipped = Section::Step(*index, Mark::Skip).emit();
        steps.push_str(&format!("if {}; then\n", condition(deps_of(r))));
        if let Some(g) = gate {
            steps.push_str(&format!(
                "if [ \"$v{g}\" != ok ]; then s{index}=fail; {failed}; head -c 4000 -- \"$W/v{g}\"; el"
            ));
        }
        let mut body = parent_check(r, &links);
        if out.systemd_service {
            body.push_str(
                "if [ \"$dr\" = 1 ]; then systemctl daemon-reload; fi || fail 'systemctl daemon-reload failed'\n",
            );
        }
        body.push_str(&out.shell);
        if body.is_empty() {
            body.push_str(":\n");
        }
        let mut on_ok = String::new();
        if out.unit_file {
            on_ok.push_str(" dr=1;");
        }
        if out.systemd_service || out.reloads_units {
            on_ok.push_str(" dr=0;");
        }
        steps.push_str(&format!(
            "if true; then\n( {body}) >\"$W/e\" 2>&1 </dev/null\n\
             if [ $? -eq 0 ]; then s{index}=ok;{on_ok} {ok}; \
             else s{index}=fail; {failed}; head -c 4000 -- \"$W/e\"; fi\nfi\n\
             else s{index}=skip; {skipped}; fi\n"
        ));
    }
    let trailer = params.token.trailer();
    s.push_str(&format!(
        "if [ \"$(head -c {})\" != {} ]; then {}; exit 0; fi\ndr=0\n",
        trailer.len(),
        quote_str(&trailer),
        Section::Frame.emit()
    ));
    stdin.extend_from_slice(trailer.as_bytes());
    // Every file's data is checked on the node, in one process, before anything
    // changes: a step copies a blob already known to hold what was sent.
    if !sums.is_empty() {
        s.push_str(&format!(
            "printf '%s  %s\\n'{} | sha256sum -c --status --strict || {}\n",
            sums.concat(),
            fatal("`sha256sum -c` of the data for the steps failed: it arrived altered, or `sha256sum` does not work; nothing was changed")
        ));
    }
    s.push_str(&steps);
    s.push_str(&dir_syncs(&planned));
    s.push_str(&Section::Applied.emit());
    s.push('\n');
    s.push_str(&params.verify.0);
    stdin.extend_from_slice(&params.verify.1);
    (s, stdin)
}

/// One `sync` of every directory whose entries a succeeded step renamed or removed
/// (`StepOut::sync_dir`), each named once, after the last step: a directory fsync per
/// changed file was a process per file. A crash before it may undo a rename, never
/// tear a file (each file's content was fsynced before its rename), and then no node
/// state file names the change: the next probe reads the old file and plans it again.
/// A failed fsync fails the node, saying so, before the node state file is written.
/// A directory a later step removed (a file, then its directory, decommissioned) is
/// not there to fsync, and is left out.
fn dir_syncs(planned: &[(usize, &Resource, StepOut)]) -> String {
    let mut dirs: Vec<(&str, Vec<usize>)> = Vec::new();
    for (index, _, out) in planned {
        for dir in &out.synced_dirs {
            match dirs.iter_mut().find(|(d, _)| d == dir) {
                Some((_, steps)) => steps.push(*index),
                None => dirs.push((dir, vec![*index])),
            }
        }
    }
    if dirs.is_empty() {
        return String::new();
    }
    // In a function: `set --` builds the list in its own positional parameters.
    let mut s = String::from("sd() { set --\n");
    for (dir, steps) in &dirs {
        let any: Vec<String> = steps
            .iter()
            .map(|i| format!("[ \"$s{i}\" = ok ]"))
            .collect();
        s.push_str(&format!(
            "if {{ {}; }} && [ -d {dir} ]; then set -- \"$@\" {dir}; fi\n",
            any.join(" || ")
        ));
    }
    s.push_str(&format!(
        "[ $# -eq 0 ] || sync -- \"$@\"; }}\n\
         if ! sd 2>\"$W/e\"; then {}; echo 'cannot fsync the directories of the changed files (the changes are in place, not known to be on disk):'; head -c 2000 -- \"$W/e\"; exit 0; fi\n",
        Section::Fatal.emit()
    ));
    s
}

/// What an apply stages next to each path of the catalog (see `staged_glob`).
fn leftover_globs(catalog: &Catalog) -> BTreeSet<String> {
    let mut globs = BTreeSet::new();
    for r in &catalog.resources {
        match &r.spec {
            Spec::File(f) => {
                globs.insert(staged_glob(&f.path));
                if let Some(tree) = f.validate.as_ref().and_then(|v| v.tree.as_ref()) {
                    globs.insert(staged_glob(tree));
                }
            }
            Spec::Symlink(l) => {
                globs.insert(staged_glob(&l.path));
            }
            _ => {}
        }
    }
    globs
}

/// Paths the site declares as symlinks: a managed path may lie below one of them.
fn declared_links(catalog: &Catalog) -> BTreeSet<&RemotePath> {
    catalog
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::Symlink(l) if l.ensure == Presence::Present => Some(&l.path),
            _ => None,
        })
        .collect()
}

/// Refuses, on the node, a path whose parent chain holds a symlink the site did not
/// declare (`/tmp/x/evil` with `/tmp/x -> /etc/cron.d`): nothing is written through it.
/// Only shell builtins: no process per directory.
fn parent_check(r: &Resource, links: &BTreeSet<&RemotePath>) -> String {
    match &r.spec {
        Spec::File(f) => chain_check(&f.path, links),
        Spec::Directory(d) => chain_check(&d.path, links),
        Spec::Symlink(l) => chain_check(&l.path, links),
        _ => String::new(),
    }
}

/// `parent_check` for one path (a managed path, or the tree a staged copy is made of).
fn chain_check(path: &RemotePath, links: &BTreeSet<&RemotePath>) -> String {
    let mut shell = String::new();
    let mut ancestor = path.parent();
    let mut chain = Vec::new();
    while ancestor.as_str() != "/" {
        chain.push(ancestor.clone());
        ancestor = ancestor.parent();
    }
    for dir in chain.iter().rev().filter(|d| !links.contains(d)) {
        shell.push_str(&format!(
            "if [ -L {} ]; then fail {}; fi\n",
            quote_str(dir.as_str()),
            quote_str(&format!(
                "refusing to write `{path}`: its parent `{dir}` is a symlink the site does not declare"
            ))
        ));
    }
    shell
}

/// Changed files validated together: a copy of the tree with all of them written into it.
struct TreeGroup {
    /// Catalog indexes of the files, in order.
    members: Vec<usize>,
    /// Builds the staged tree and runs each distinct validate command in it.
    shell: String,
}

fn tree_groups(
    planned: &[(usize, &Resource, StepOut)],
    links: &BTreeSet<&RemotePath>,
) -> Vec<TreeGroup> {
    struct Group {
        tree: RemotePath,
        members: Vec<usize>,
        commands: Vec<String>,
        writes: String,
        sensitive: bool,
    }
    let mut groups: Vec<Group> = Vec::new();
    for (index, r, out) in planned {
        let Spec::File(file) = &r.spec else { continue };
        let Some(validate) = &file.validate else {
            continue;
        };
        let Some(tree) = &validate.tree else { continue };
        if !file.path.starts_with(tree) || out.blobs.is_empty() {
            continue;
        }
        let rel = file.path.as_str()[tree.as_str().len()..]
            .trim_start_matches('/')
            .to_string();
        let rel_dir = rel.rsplit_once('/').map_or("", |(d, _)| d);
        let mut write = String::new();
        if !rel_dir.is_empty() {
            // The tree is a copy of the live one: the directory is usually there.
            write.push_str(&format!(
                "[ -d \"$t\"/{0} ] || mkdir -p -- \"$t\"/{0} || fail {1}\n",
                quote_str(rel_dir),
                quote_str(&format!(
                    "cannot create `{rel_dir}` in the staged tree `{tree}`"
                ))
            ));
        }
        write.push_str(&format!(
            "cat -- \"$W/b{}\" > \"$t\"/{} || fail {}\n",
            out.blob_base,
            quote_str(&rel),
            quote_str(&format!(
                "cannot write `{}` into the staged tree",
                file.path
            ))
        ));
        let command = validate
            .command
            .replace("{staged}", &format!("\"$t\"/{}", quote_str(&rel)))
            .replace("{tree}", "\"$t\"");
        let sensitive = file.content.as_ref().is_some_and(|c| c.is_sensitive());
        match groups.iter_mut().find(|g| &g.tree == tree) {
            Some(g) => {
                g.members.push(*index);
                g.writes.push_str(&write);
                g.sensitive |= sensitive;
                if !g.commands.contains(&command) {
                    g.commands.push(command);
                }
            }
            None => groups.push(Group {
                tree: tree.clone(),
                members: vec![*index],
                commands: vec![command],
                writes: write,
                sensitive,
            }),
        }
    }
    groups
        .into_iter()
        .map(|g| {
            let tree = &g.tree;
            let stage = quote_str(&format!(
                "{}/.{}.tandem-XXXXXX",
                tree.parent().as_str().trim_end_matches('/'),
                tree.file_name()
            ));
            let q = quote_str(tree.as_str());
            // The staged copy is made beside the tree: not through an undeclared link.
            let mut shell = chain_check(tree, links);
            shell.push_str(&format!(
                "t=$(mktemp -d -- {stage}) || fail {}\ntrap 'rm -rf -- \"$t\"' EXIT\n\
                 if [ -d {q} ]; then cp -a -- {q}/. \"$t\"/; fi || fail {}\n{}",
                quote_str(&format!("cannot create a staged copy of `{tree}`")),
                quote_str(&format!("cannot copy `{tree}` into its staged copy")),
                g.writes
            ));
            for command in g.commands {
                // Output of commands run on secret-bearing files is withheld.
                let (redirect, note) = if g.sensitive {
                    (
                        " >/dev/null 2>&1",
                        " (its output is withheld: the tree holds secrets)",
                    )
                } else {
                    ("", "")
                };
                shell.push_str(&format!(
                    "{{ {command}\n}}{redirect} || fail {}\n",
                    quote_str(&format!("validation of tree `{tree}` failed{note}"))
                ));
            }
            TreeGroup {
                members: g.members,
                shell,
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "script_tests.rs"]
mod tests;
