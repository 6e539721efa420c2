//! The apply script: one POSIX sh program per node that takes the node lock, unpacks the
//! data it was fed on stdin (framed: known lengths, then a trailer that proves nothing
//! was cut off), runs each resource's step in catalog order with its dependencies
//! checked, and finally runs the verifying probe, all in one round trip.

use std::collections::HashMap;
use std::time::Duration;

use crate::catalog::Catalog;
use crate::fact::script::preamble;
use crate::fact::{NodeFacts, Token};
use crate::path::RemotePath;
use crate::plan::NodePlan;
use crate::resource::{self, Resource, Spec, StepOut};
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
    s.push_str(&format!(
        "STATE={}\numask 077\n\
         mkdir -p -- \"$STATE\" || {{ m fatal; echo \"cannot create the state directory $STATE\"; exit 0; }}\n\
         exec 9>>\"$STATE/lock\"\n\
         if ! flock -w {} 9; then m locked; cat -- \"$STATE/lock.owner\" 2>/dev/null; exit 0; fi\n\
         printf 'pid %s since %s\\n' \"$$\" \"$(date -u +%FT%TZ)\" > \"$STATE/lock.owner\"\n\
         W=$(mktemp -d -- \"$STATE/run.XXXXXX\") || {{ m fatal; echo 'cannot create a work directory'; exit 0; }}\n\
         trap 'rm -rf -- \"$W\"' EXIT\n",
        quote_str(params.state_dir.as_str()),
        params.lock_wait.as_secs().max(1),
    ));
    // Pass 1: every changed resource's step, so that tree validation (emitted before
    // the first file of its tree) knows the blob of every file in the tree.
    let mut stdin = Vec::new();
    let mut blob_count = 0;
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
            s.push_str(&format!("head -c {} > \"$W/b{blob_count}\"\n", blob.len()));
            stdin.extend_from_slice(blob);
            blob_count += 1;
        }
        planned.push((index, r, out));
    }
    let trees = tree_groups(&planned);
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
                    "if {}; then\nif ( set -e\n{}) >\"$W/v{g}\" 2>&1 </dev/null; then v{g}=ok; else v{g}=fail; fi\n\
                     else v{g}=skip; echo 'tree not validated: a dependency failed' >\"$W/v{g}\"; fi\n",
                    condition(deps),
                    tree.shell
                ));
            }
        }
        steps.push_str(&format!("if {}; then\n", condition(deps_of(r))));
        if let Some(g) = gate {
            steps.push_str(&format!(
                "if [ \"$v{g}\" != ok ]; then s{index}=fail; m 'r{index} fail'; head -c 4000 -- \"$W/v{g}\"; el"
            ));
        }
        if out.systemd_service {
            steps.push_str("if [ \"$dr\" = 1 ]; then systemctl daemon-reload; dr=0; fi\n");
        }
        let on_ok = if out.unit_file { " dr=1;" } else { "" };
        steps.push_str(&format!(
            "if ( set -e\n{}) >\"$W/e\" 2>&1 </dev/null; then s{index}=ok;{on_ok} m 'r{index} ok'; \
             else s{index}=fail; m 'r{index} fail'; head -c 4000 -- \"$W/e\"; fi\n\
             else s{index}=skip; m 'r{index} skip'; fi\n",
            out.shell
        ));
    }
    let trailer = format!("END{}", params.token.as_str());
    s.push_str(&format!(
        "if [ \"$(head -c {})\" != {} ]; then m frame; exit 0; fi\ndr=0\n",
        trailer.len(),
        quote_str(&trailer)
    ));
    stdin.extend_from_slice(trailer.as_bytes());
    s.push_str(&steps);
    s.push_str("m applied\n");
    s.push_str(&params.verify.0);
    stdin.extend_from_slice(&params.verify.1);
    (s, stdin)
}

/// Changed files validated together: a copy of the tree with all of them written into it.
struct TreeGroup {
    /// Catalog indexes of the files, in order.
    members: Vec<usize>,
    /// Builds the staged tree and runs each distinct validate command in it.
    shell: String,
}

fn tree_groups(planned: &[(usize, &Resource, StepOut)]) -> Vec<TreeGroup> {
    let mut groups: Vec<(RemotePath, Vec<usize>, Vec<String>, String)> = Vec::new();
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
        let write = format!(
            "mkdir -p -- \"$(dirname -- \"$t\"/{q})\"\ncat -- \"$W/b{}\" > \"$t\"/{q}\n",
            out.blob_base,
            q = quote_str(&rel)
        );
        let command = validate
            .command
            .replace("{staged}", &format!("\"$t\"/{}", quote_str(&rel)))
            .replace("{tree}", "\"$t\"");
        match groups.iter_mut().find(|g| &g.0 == tree) {
            Some(g) => {
                g.1.push(*index);
                g.3.push_str(&write);
                if !g.2.contains(&command) {
                    g.2.push(command);
                }
            }
            None => groups.push((tree.clone(), vec![*index], vec![command], write)),
        }
    }
    groups
        .into_iter()
        .map(|(tree, members, commands, writes)| {
            let stage = quote_str(&format!(
                "{}/.{}.tandem-XXXXXX",
                tree.parent().as_str().trim_end_matches('/'),
                tree.file_name()
            ));
            let mut shell = format!(
                "t=$(mktemp -d -- {stage})\ntrap 'rm -rf -- \"$t\"' EXIT\n\
                 if [ -d {q} ]; then cp -a -- {q}/. \"$t\"/; fi\n{writes}",
                q = quote_str(tree.as_str())
            );
            for command in commands {
                shell.push_str(&format!(
                    "if ! {{ {command}\n}}; then echo {}; exit 1; fi\n",
                    quote_str(&format!("validation of tree `{tree}` failed"))
                ));
            }
            TreeGroup { members, shell }
        })
        .collect()
}
