//! The node state file: what the last apply converged a node to, kept on the node itself
//! (`<state dir>/applied`, default `/var/lib/tandem/applied`) so that any control node
//! (an operator's laptop, the daemon) can tell a node that drifted from one that only
//! waits for git's newer state, whatever run history it holds.
//!
//! API:
//! - [`AppliedState`] is the file: `version`, `run` and `commit` (when known), `epoch`
//!   (the site's `[failover] epoch` at that apply), `side` ([`Side`], from the node's
//!   datacenter), `key` (which digest key made the digests), `at` (control-node time of
//!   the apply), and per resource, keyed by `node_state::rid_digest` (hex, so the file is grep-safe
//!   whatever a path holds), an [`AppliedResource`]: `desired` (keyed digest of the
//!   resource's spec as compiled), `expect` (keyed digest of what the probe reads when
//!   the resource is in sync with that spec, see `node_state::insync`) and `attrs` (which
//!   attributes `expect` covers). [`AppliedState::parse`] / [`AppliedState::render`] are
//!   inverses; unknown header keys and line kinds are ignored (additive changes keep
//!   `version` 1).
//! - Writing: `node_state::record` builds the record for an apply from an
//!   [`AppliedContext`] (carried in `ApplyOptions::applied`); [`write_shell`] is the shell
//!   the apply script runs after its steps, in the same round trip: the file is staged in
//!   the run's work directory (inside the state directory), fsynced, renamed over
//!   `applied`, and the directory fsynced. A resource whose step failed or was skipped
//!   keeps its previous line (copied from the old file on the node).
//! - Reading: [`probe_shell`] prints the file in the probe's `state` section with shell
//!   builtins only (no process); `NodeFacts::parse` puts it in `NodeFacts::applied`
//!   (`None` when the node has no file; a malformed file is `NodeFacts::applied_error`).
//!
//! Digests are HMAC-SHA256 under the site's digest key; a site without one gets plain
//! SHA-256 under the same domain labels, and secret-bearing resources then get no
//! `expect` (their in-sync state would be a plain sum of secret content).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::fact::protocol::Section;
use crate::node::DatacenterName;
use crate::path::RemotePath;
use crate::secret::{DigestKey, SecretStore};
use crate::transport::quote::quote_str;

/// The format this code writes; files of a higher version are refused on reading.
pub const FORMAT_VERSION: u32 = 1;
/// The file's name in the node's state directory.
pub const FILE_NAME: &str = "applied";
const MAGIC: &str = "tandem-applied";

/// Which side of the failover pair a node was on when it was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Primary,
    Standby,
    /// The apply did not know the site's primary datacenter.
    Unknown,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Primary => "primary",
            Side::Standby => "standby",
            Side::Unknown => "unknown",
        }
    }

    fn parse(text: &str) -> Option<Side> {
        match text {
            "primary" => Some(Side::Primary),
            "standby" => Some(Side::Standby),
            "unknown" => Some(Side::Unknown),
            _ => None,
        }
    }
}

/// One resource's line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedResource {
    pub desired: String,
    /// `None`: the type's in-sync state is not fingerprinted (exec, user, group, or
    /// secret-bearing content without a site key).
    pub expect: Option<String>,
    pub attrs: Vec<String>,
}

/// The node state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedState {
    pub version: u32,
    pub run: Option<i64>,
    pub commit: Option<String>,
    pub epoch: u64,
    pub side: Side,
    /// `KeyId` of the digests: 8 hex digits of the site key's own digest, or `none`.
    pub key: String,
    /// When the apply was made (RFC 3339, the control node's clock).
    pub at: Option<String>,
    /// By `node_state::rid_digest`.
    pub resources: BTreeMap<String, AppliedResource>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppliedError {
    #[error("node state file line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    #[error(
        "node state file has format version {found}, this tandem reads up to {FORMAT_VERSION}"
    )]
    Newer { found: u32 },
}

/// What an apply knows about itself to record on the node.
#[derive(Debug, Clone, Default)]
pub struct AppliedContext {
    pub run: Option<i64>,
    pub commit: Option<String>,
    pub epoch: u64,
    /// The site's primary datacenter; `None`: sides are recorded as `unknown`.
    pub primary: Option<DatacenterName>,
}

impl AppliedContext {
    pub fn side_of(&self, datacenter: &DatacenterName) -> Side {
        match &self.primary {
            Some(p) if p == datacenter => Side::Primary,
            Some(_) => Side::Standby,
            None => Side::Unknown,
        }
    }
}

/// The digests of the state file, keyed with the site key when there is one.
pub struct Digester<'a> {
    key: Option<&'a DigestKey>,
}

impl<'a> Digester<'a> {
    pub fn new(secrets: &'a SecretStore) -> Self {
        Digester { key: secrets.key() }
    }

    pub fn keyed(&self) -> bool {
        self.key.is_some()
    }

    /// A digest for the use `domain` names (keyed when the site has a key).
    pub fn digest(&self, domain: &str, bytes: &[u8]) -> String {
        match self.key {
            Some(key) => key.labelled(domain, bytes),
            None => {
                let mut h = Sha256::new();
                h.update(domain.as_bytes());
                h.update([0]);
                h.update(bytes);
                hex::encode(&h.finalize()[..16])
            }
        }
    }

    /// Which key made the digests (comparable only between files of the same key id).
    pub fn key_id(&self) -> String {
        match self.key {
            Some(key) => key.labelled("tandem key id", b"")[..8].to_string(),
            None => "none".into(),
        }
    }

    /// The digest of a projection (`attr=value` pairs, see `node_state::insync`).
    pub fn projection<K: AsRef<str>>(&self, pairs: &[(K, String)]) -> String {
        let mut text = String::new();
        for (attr, value) in pairs {
            text.push_str(attr.as_ref());
            text.push('=');
            text.push_str(value);
            text.push('\n');
        }
        self.digest("tandem applied in-sync", text.as_bytes())
    }
}

impl AppliedState {
    /// Whether the node's record needs rewriting even though nothing else changes: no
    /// record, another epoch, side or key, or another set of resources. (A no-op apply
    /// stays one round trip otherwise; digests of resources that read in sync need no
    /// rewrite: see `drift` for why that stays correct.)
    pub fn is_stale(&self, on_node: Option<&AppliedState>) -> bool {
        let Some(old) = on_node else { return true };
        old.epoch != self.epoch
            || old.side != self.side
            || old.key != self.key
            || old.resources.len() != self.resources.len()
            || self
                .resources
                .keys()
                .any(|k| !old.resources.contains_key(k))
    }

    fn header(&self) -> Vec<String> {
        let mut lines = vec![format!("{MAGIC} {}", self.version)];
        if let Some(run) = self.run {
            lines.push(format!("run {run}"));
        }
        if let Some(commit) = &self.commit {
            lines.push(format!("commit {commit}"));
        }
        lines.push(format!("epoch {}", self.epoch));
        lines.push(format!("side {}", self.side.as_str()));
        lines.push(format!("key {}", self.key));
        if let Some(at) = &self.at {
            lines.push(format!("at {at}"));
        }
        lines
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = self.header().join("\n");
        out.push('\n');
        for (rid, r) in &self.resources {
            out.push_str(&resource_line(rid, r));
            out.push('\n');
        }
        out
    }

    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<AppliedState, AppliedError> {
        let bad = |line: usize, reason: String| AppliedError::Malformed { line, reason };
        let mut lines = text.lines().enumerate().map(|(n, l)| (n + 1, l));
        let (_, first) = lines
            .next()
            .ok_or_else(|| bad(1, "the file is empty".into()))?;
        let version = first
            .strip_prefix(MAGIC)
            .and_then(|v| v.trim().parse::<u32>().ok())
            .ok_or_else(|| {
                bad(
                    1,
                    format!("`{}` is not a tandem state header", first.escape_debug()),
                )
            })?;
        if version > FORMAT_VERSION {
            return Err(AppliedError::Newer { found: version });
        }
        let mut state = AppliedState {
            version,
            run: None,
            commit: None,
            epoch: 0,
            side: Side::Unknown,
            key: "none".into(),
            at: None,
            resources: BTreeMap::new(),
        };
        let mut saw_epoch = false;
        for (n, line) in lines {
            if line.is_empty() {
                continue;
            }
            let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
            match kind {
                "run" => {
                    state.run = Some(
                        rest.parse()
                            .map_err(|_| bad(n, format!("run `{rest}` is not a number")))?,
                    )
                }
                "commit" => state.commit = Some(rest.to_string()),
                "epoch" => {
                    state.epoch = rest
                        .parse()
                        .map_err(|_| bad(n, format!("epoch `{rest}` is not a number")))?;
                    saw_epoch = true;
                }
                "side" => {
                    state.side = Side::parse(rest)
                        .ok_or_else(|| bad(n, format!("side `{rest}` is unknown")))?
                }
                "key" => state.key = rest.to_string(),
                "at" => state.at = Some(rest.to_string()),
                "r" => {
                    let fields: Vec<&str> = rest.split(' ').collect();
                    let [rid, desired, expect, attrs] = fields[..] else {
                        return Err(bad(n, "a resource line needs 4 fields".into()));
                    };
                    let hex_ok =
                        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
                    if !hex_ok(rid) || !hex_ok(desired) || !(expect == "-" || hex_ok(expect)) {
                        return Err(bad(
                            n,
                            "a resource line holds a digest that is not hex".into(),
                        ));
                    }
                    state.resources.insert(
                        rid.to_string(),
                        AppliedResource {
                            desired: desired.to_string(),
                            expect: (expect != "-").then(|| expect.to_string()),
                            attrs: if attrs == "-" {
                                Vec::new()
                            } else {
                                attrs.split(',').map(str::to_string).collect()
                            },
                        },
                    );
                }
                // Keys a later version adds.
                _ => {}
            }
        }
        if !saw_epoch {
            return Err(bad(1, "the file has no `epoch` line".into()));
        }
        Ok(state)
    }
}

fn resource_line(rid: &str, r: &AppliedResource) -> String {
    let attrs = if r.attrs.is_empty() {
        "-".to_string()
    } else {
        r.attrs.join(",")
    };
    format!(
        "r {rid} {} {} {attrs}",
        r.desired,
        r.expect.as_deref().unwrap_or("-")
    )
}

/// Shell for the apply script, run after the steps with `$STATE` (the state directory)
/// and `$W` (the run's work directory inside it) set, and the bytes it reads from
/// stdin (the file's lines travel there, so the command line stays the same size
/// whatever the catalog: the command line of a channel request is bounded). Writes
/// `new` atomically; lines of resources in `stepped` (rid digest -> catalog index) are
/// written only when the step ended `ok` (`$s<index>`), otherwise the old file's line,
/// if any, is kept. Prints nothing on stdout and always consumes exactly its stdin; a
/// failure is reported on stderr and changes no resource.
pub fn write_shell(new: &AppliedState, stepped: &HashMap<String, usize>) -> (String, Vec<u8>) {
    let mut input = String::new();
    for line in new.header() {
        input.push_str("- ");
        input.push_str(&line);
        input.push('\n');
    }
    for (rid, r) in &new.resources {
        match stepped.get(rid) {
            None => input.push_str("- "),
            Some(index) => input.push_str(&format!("{index} ")),
        }
        input.push_str(&resource_line(rid, r));
        input.push('\n');
    }
    let shell = format!(
        "head -c {len} > \"$W/{FILE_NAME}.in\" || head -c {len} >/dev/null\n\
         while read -r i l; do if [ \"$i\" = - ]; then printf '%s\\n' \"$l\"; else eval \"v=\\${{s$i-}}\"; \
         if [ \"$v\" = ok ]; then printf '%s\\n' \"$l\"; else set -- $l; grep -e \"^r $2 \" -- \"$STATE/{FILE_NAME}\" 2>/dev/null; fi; fi; :; \
         done < \"$W/{FILE_NAME}.in\" > \"$W/{FILE_NAME}\" && sync -- \"$W/{FILE_NAME}\" \
         && mv -f -- \"$W/{FILE_NAME}\" \"$STATE/{FILE_NAME}\" && sync -- \"$STATE\" \
         || echo 'tandem: cannot write the node state file' >&2\n",
        len = input.len()
    );
    (shell, input.into_bytes())
}

/// Probe shell printing the node state file in the `state` section: builtins only.
pub fn probe_shell(state_dir: &RemotePath) -> String {
    format!(
        "{}\nif [ -f {f} ]; then while IFS= read -r l || [ -n \"$l\" ]; do printf '%s\\n' \"$l\"; done < {f}; fi\n",
        Section::State.emit(),
        f = quote_str(&format!("{}/{FILE_NAME}", state_dir.as_str().trim_end_matches('/')))
    )
}

#[cfg(test)]
#[path = "applied_tests.rs"]
mod tests;
