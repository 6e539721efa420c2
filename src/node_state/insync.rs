//! What the probe reads when a resource is in sync with a spec: a projection of the
//! managed attributes as `attr=value` pairs, computed once from the spec
//! ([`expected`], at apply time, digested into the node state file's `expect`) and once
//! from facts ([`observed`], at drift time, over the attributes the file recorded).
//! Equal digests mean the node still holds what that apply converged it to, whatever
//! the spec says now: `pending`, not `drifted`.
//!
//! Covered: file (type, content SHA-256, mode, owner, group), directory (type, mode,
//! owner, group), symlink (type, target), package (installed, or the pinned version),
//! service (running, enabled). Not covered (no projection): user, group, exec.

use crate::fact::{EntryKind, NodeFacts, Section};
use crate::resource::package::PackageState;
use crate::resource::{Presence, Spec};

/// The managed attributes of `spec` as the probe reads them when in sync; `None` for a
/// type without a projection, or for secret-bearing content when digests are not keyed.
pub fn expected(spec: &Spec, keyed: bool) -> Option<Vec<(&'static str, String)>> {
    let mut out = Vec::new();
    let meta = |out: &mut Vec<(&'static str, String)>,
                mode: Option<crate::resource::Mode>,
                owner: &Option<String>,
                group: &Option<String>| {
        if let Some(m) = mode {
            out.push(("mode", format!("{:04o}", m.0)));
        }
        if let Some(o) = owner {
            out.push(("owner", o.clone()));
        }
        if let Some(g) = group {
            out.push(("group", g.clone()));
        }
    };
    match spec {
        Spec::File(f) => match f.ensure {
            Presence::Absent => out.push(("type", "absent".into())),
            Presence::Present => {
                out.push(("type", "file".into()));
                if let Some(content) = &f.content {
                    if content.is_sensitive() && !keyed {
                        return None;
                    }
                    out.push(("sum", content.sha256()));
                }
                meta(&mut out, f.mode, &f.owner, &f.group);
            }
        },
        Spec::Directory(d) => match d.ensure {
            Presence::Absent => out.push(("type", "absent".into())),
            Presence::Present => {
                out.push(("type", "directory".into()));
                meta(&mut out, d.mode, &d.owner, &d.group);
            }
        },
        Spec::Symlink(l) => match l.ensure {
            Presence::Absent => out.push(("type", "absent".into())),
            Presence::Present => {
                out.push(("type", "symlink".into()));
                out.push(("target", l.target.clone()));
            }
        },
        Spec::Package(p) => match &p.state {
            PackageState::Present => out.push(("installed", "yes".into())),
            PackageState::Absent => out.push(("installed", "no".into())),
            PackageState::Version(v) => out.push(("version", v.clone())),
        },
        Spec::Service(s) => {
            if let Some(r) = s.running {
                out.push(("running", r.to_string()));
            }
            if let Some(e) = s.enabled {
                out.push(("enabled", e.to_string()));
            }
        }
        Spec::User(_) | Spec::Group(_) | Spec::Exec(_) => return None,
    }
    Some(out)
}

/// `attrs` of the resource at catalog position `index` (whose current spec is `spec`)
/// as the facts read them, in the shape of [`expected`]. An attribute the probe did not
/// read, or that this type does not have, reads as `?`: never equal to a recorded value.
pub fn observed(
    spec: &Spec,
    index: usize,
    facts: &NodeFacts,
    attrs: &[String],
) -> Vec<(String, String)> {
    let unknown = || "?".to_string();
    let path = match spec {
        Spec::File(f) => Some(f.path.as_str()),
        Spec::Directory(d) => Some(d.path.as_str()),
        Spec::Symlink(l) => Some(l.path.as_str()),
        _ => None,
    };
    let stat = path.and_then(|p| facts.stats.get(p));
    attrs
        .iter()
        .map(|attr| {
            let value = match (spec, attr.as_str()) {
                (Spec::File(_) | Spec::Directory(_) | Spec::Symlink(_), "type") => match stat {
                    None => "absent".into(),
                    Some(s) => match s.kind {
                        EntryKind::File => "file".into(),
                        EntryKind::Directory => "directory".into(),
                        EntryKind::Symlink => "symlink".into(),
                        EntryKind::Other => "other".into(),
                    },
                },
                (Spec::File(_) | Spec::Directory(_), "mode") => {
                    stat.map_or_else(unknown, |s| format!("{:04o}", s.mode))
                }
                (Spec::File(_) | Spec::Directory(_), "owner") => {
                    stat.map_or_else(unknown, |s| s.owner.clone())
                }
                (Spec::File(_) | Spec::Directory(_), "group") => {
                    stat.map_or_else(unknown, |s| s.group.clone())
                }
                (Spec::File(f), "sum") => facts
                    .sums
                    .get(f.path.as_str())
                    .cloned()
                    .unwrap_or_else(unknown),
                (Spec::Symlink(_), "target") => {
                    match (stat, facts.section(Section::Resource(index))) {
                        (Some(s), Some(body)) if s.kind == EntryKind::Symlink => {
                            let body = body.strip_suffix(b"\n").unwrap_or(body);
                            String::from_utf8_lossy(body).into_owned()
                        }
                        _ => unknown(),
                    }
                }
                (Spec::Package(p), "installed") => if facts.packages.contains_key(&p.name) {
                    "yes"
                } else {
                    "no"
                }
                .into(),
                (Spec::Package(p), "version") => {
                    facts.packages.get(&p.name).cloned().unwrap_or_else(unknown)
                }
                (Spec::Service(s), "running" | "enabled") => {
                    service_state(s, index, facts, attr).unwrap_or_else(unknown)
                }
                _ => unknown(),
            };
            (attr.clone(), value)
        })
        .collect()
}

/// `running`/`enabled` of a service as its planning reads them (see `resource::service`).
fn service_state(
    spec: &crate::resource::service::ServiceSpec,
    index: usize,
    facts: &NodeFacts,
    attr: &str,
) -> Option<String> {
    const ENABLED: [&str; 4] = ["enabled", "enabled-runtime", "static", "alias"];
    let kv = facts.keyed(Section::Resource(index));
    let value = match (&spec.commands, facts.systemd, attr) {
        (Some(_), _, "running") => kv.get("running").map(|v| v == "1"),
        (None, true, "running") => kv.get("active").map(|v| v == "active"),
        (None, true, "enabled") => kv.get("enabled").map(|v| ENABLED.contains(&v.as_str())),
        _ => None,
    };
    value.map(|v| v.to_string())
}
