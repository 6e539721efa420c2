//! The apply script: one POSIX sh program per node that takes the node lock, unpacks the
//! data it was fed on stdin (framed: known lengths, then a trailer that proves nothing
//! was cut off), runs each resource's step in catalog order with its dependencies
//! checked, and finally runs the verifying probe, all in one round trip.

use std::time::Duration;

use crate::catalog::Catalog;
use crate::fact::script::preamble;
use crate::fact::{NodeFacts, Token};
use crate::path::RemotePath;
use crate::plan::NodePlan;
use crate::resource::{self, StepOut};
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
    let mut steps = String::new();
    let mut stdin = Vec::new();
    let mut blob_count = 0;
    let mut index_of = std::collections::HashMap::new();
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
        // Only dependencies with a change can fail or be skipped in this run.
        let deps: Vec<String> = r
            .after
            .iter()
            .filter(|d| plan.change(d).is_some())
            .filter_map(|d| index_of.get(d))
            .map(|i| format!("[ \"$s{i}\" = ok ]"))
            .collect();
        let cond = if deps.is_empty() {
            "true".to_string()
        } else {
            deps.join(" && ")
        };
        steps.push_str(&format!("if {cond}; then\n"));
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
