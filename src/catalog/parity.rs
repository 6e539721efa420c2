//! The parity guarantee: for every role present in more than one datacenter, the
//! catalogs must be identical except for what the overlay that applies to one of the
//! datacenters declares it may change. One catalog per (role, datacenter) stands for
//! the datacenter: its first node by name.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use super::Catalog;
use crate::manifest::Site;
use crate::node::{DatacenterName, NodeName, RoleName};
use crate::resource::{Origin, Resource, ResourceId};

/// One difference no overlay declares.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParityError {
    pub role: RoleName,
    pub resource: ResourceId,
    /// A spec attribute (`content`, `mode`...), `after`/`notify`, or `presence` when the
    /// resource exists in only one of the two catalogs.
    pub attribute: String,
    pub datacenters: [DatacenterName; 2],
    pub nodes: [NodeName; 2],
    /// Where the values differ, without the values (they may be secret).
    pub detail: String,
    /// Where the resource is declared (in the first catalog that has it).
    pub origin: Origin,
}

impl fmt::Display for ParityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: parity: role `{}`, resource `{}`, attribute `{}` differs between `{}` (node `{}`) and `{}` (node `{}`){}; no overlay declares it may change",
            self.origin,
            self.role,
            self.resource,
            self.attribute,
            self.datacenters[0],
            self.nodes[0],
            self.datacenters[1],
            self.nodes[1],
            if self.detail.is_empty() { String::new() } else { format!(" ({})", self.detail) },
        )
    }
}

/// Compares the catalogs of each role across datacenters.
pub fn check(site: &Site, catalogs: &[Catalog]) -> Vec<ParityError> {
    let mut representatives: BTreeMap<&RoleName, BTreeMap<&DatacenterName, &Catalog>> =
        BTreeMap::new();
    for catalog in catalogs {
        let by_dc = representatives.entry(&catalog.node.role).or_default();
        let slot = by_dc.entry(&catalog.node.datacenter).or_insert(catalog);
        if catalog.node.name < slot.node.name {
            *slot = catalog;
        }
    }
    let mut errors = Vec::new();
    for (role, by_dc) in representatives {
        // The primary's catalog, when there is one, is the reference.
        let mut dcs: Vec<&Catalog> = by_dc.into_values().collect();
        dcs.sort_by_key(|c| {
            !site
                .datacenter(&c.node.datacenter)
                .is_some_and(|dc| dc.primary)
        });
        let Some((reference, others)) = dcs.split_first() else {
            continue;
        };
        for other in others {
            compare(site, role, reference, other, &mut errors);
        }
    }
    errors
}

fn compare(site: &Site, role: &RoleName, a: &Catalog, b: &Catalog, errors: &mut Vec<ParityError>) {
    let allowed = |id: &ResourceId, attribute: &str| {
        [&a.node.datacenter, &b.node.datacenter]
            .into_iter()
            .filter_map(|dc| site.overlay_for(dc))
            .any(|overlay| overlay.allows(id, attribute))
    };
    let mut report = |resource: &Resource, attribute: &str, detail: String| {
        let id = &resource.id;
        if !allowed(id, attribute) {
            errors.push(ParityError {
                role: role.clone(),
                resource: id.clone(),
                attribute: attribute.to_string(),
                datacenters: [a.node.datacenter.clone(), b.node.datacenter.clone()],
                nodes: [a.node.name.clone(), b.node.name.clone()],
                detail,
                origin: resource.origin.clone(),
            });
        }
    };
    let b_by_id: BTreeMap<&ResourceId, &Resource> =
        b.resources.iter().map(|r| (&r.id, r)).collect();
    for ra in &a.resources {
        let Some(rb) = b_by_id.get(&ra.id) else {
            report(ra, "presence", format!("only in `{}`", a.node.datacenter));
            continue;
        };
        for (attribute, detail) in differences(ra, rb) {
            report(ra, &attribute, detail);
        }
    }
    for rb in &b.resources {
        if a.resource(&rb.id).is_none() {
            report(rb, "presence", format!("only in `{}`", b.node.datacenter));
        }
    }
}

/// The attributes on which two resources of the same id differ, with a value-free
/// detail (the first differing line for text).
fn differences(a: &Resource, b: &Resource) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if a.after != b.after {
        out.push(("after".to_string(), String::new()));
    }
    if a.notify != b.notify {
        out.push(("notify".to_string(), String::new()));
    }
    let (Ok(Value::Object(va)), Ok(Value::Object(vb))) =
        (serde_json::to_value(&a.spec), serde_json::to_value(&b.spec))
    else {
        return out;
    };
    for (key, value) in &va {
        let other = vb.get(key).unwrap_or(&Value::Null);
        if value != other {
            let detail = match (key.as_str(), &a.spec, &b.spec) {
                ("content", crate::resource::Spec::File(fa), crate::resource::Spec::File(fb)) => {
                    first_differing_line(fa.content.as_ref(), fb.content.as_ref())
                }
                _ => String::new(),
            };
            out.push((key.clone(), detail));
        }
    }
    out
}

fn first_differing_line(
    a: Option<&crate::resource::Content>,
    b: Option<&crate::resource::Content>,
) -> String {
    let (Some(a), Some(b)) = (a, b) else {
        return "content managed in only one".to_string();
    };
    let la = String::from_utf8_lossy(&a.bytes);
    let lb = String::from_utf8_lossy(&b.bytes);
    let mut lines_a = la.lines();
    let mut lines_b = lb.lines();
    let mut n = 1;
    loop {
        match (lines_a.next(), lines_b.next()) {
            (Some(x), Some(y)) if x == y => n += 1,
            (None, None) => return "line endings differ".to_string(),
            _ => return format!("first at line {n}"),
        }
    }
}
