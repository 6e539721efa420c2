//! The parity guarantee: for every role, what renders in one datacenter must render
//! identically in every other one, except what the overlay that applies to one of them
//! declares it may change.
//!
//! What is compared is what differs *because of the datacenter*. Each subject node is
//! compiled as if it were in every datacenter (only its datacenter changes: name,
//! address, facts and node variables stay), and those catalogs are compared with the
//! primary's. A value that differs from node to node (`{{node.name}}`, `node.address`,
//! a node variable) is the same in all of one subject's renderings, so it never shows
//! as a parity break; a datacenter variable, an overlay or `node.datacenter` does, and
//! also a node-level value only where a datacenter-level input changes what it does.
//!
//! Subjects, per role: the first node by name of each datacenter that has one, plus
//! one node for each further distinct set of node variables (a node variable may change
//! what a datacenter variable does), or a stand-in without variables when the role has
//! no node anywhere (its templates are then still checked in every datacenter before
//! the first node exists).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use super::{Catalog, CompileError, Compiler};
use crate::manifest::Site;
use crate::node::{DatacenterName, Node, NodeName, RoleName};
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
    /// The node compiled in both datacenters.
    pub node: NodeName,
    /// Where the values differ, without the values (they may be secret).
    pub detail: String,
    /// Where the resource is declared (in the first catalog that has it).
    pub origin: Origin,
}

impl fmt::Display for ParityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let detail = if self.detail.is_empty() {
            String::new()
        } else {
            format!("{}; ", self.detail)
        };
        write!(
            f,
            "{}: parity: role `{}`, resource `{}`, attribute `{}` differs between `{}` and `{}` ({detail}node `{}` compiled in each); no overlay declares it may change",
            self.origin,
            self.role,
            self.resource,
            self.attribute,
            self.datacenters[0],
            self.datacenters[1],
            self.node,
        )
    }
}

/// A subject that did not compile as if in a datacenter.
#[derive(Debug)]
pub struct Failure {
    /// The subject, with the datacenter it was compiled in.
    pub node: Node,
    /// A stand-in, not a node of the site.
    pub stand_in: bool,
    pub error: CompileError,
}

/// What the parity check found.
#[derive(Debug, Default)]
pub struct Parity {
    pub errors: Vec<ParityError>,
    /// Subjects that failed to compile in a datacenter other than their own (or, for a
    /// stand-in, in any): their own datacenter's errors are the node's compile errors.
    pub failures: Vec<Failure>,
    /// Every catalog compiled for the comparison (not those passed in).
    pub catalogs: Vec<Catalog>,
}

/// The subjects for `nodes` (see the module comment), each with a flag: stand-in.
pub fn subjects(site: &Site, nodes: &[Node]) -> Vec<(Node, bool)> {
    let is_primary = |n: &Node| site.datacenter(&n.datacenter).is_some_and(|d| d.primary);
    let mut out = Vec::new();
    for role in site.roles.keys() {
        // Primary first, then by datacenter and name: a difference is reported once,
        // under the first subject that shows it.
        let mut of_role: Vec<&Node> = nodes.iter().filter(|n| &n.role == role).collect();
        of_role.sort_by(|a, b| {
            (!is_primary(a), &a.datacenter, &a.name).cmp(&(!is_primary(b), &b.datacenter, &b.name))
        });
        if of_role.is_empty() {
            if let Some(dc) = site.datacenters.first() {
                out.push((stand_in(role, &dc.name), true));
            }
            continue;
        }
        // Sets, not scans of what is kept: a role of 10,000 nodes with per-node
        // variables stays linear.
        let mut kept: Vec<&Node> = Vec::new();
        let mut seen_dcs: BTreeSet<&DatacenterName> = BTreeSet::new();
        let mut seen_vars: std::collections::HashSet<String> = std::collections::HashSet::new();
        for node in of_role {
            let first_of_dc = seen_dcs.insert(&node.datacenter);
            // A BTreeMap serializes in key order: equal variables, equal text.
            let vars = serde_json::to_string(&node.vars).unwrap_or_default();
            let new_vars = seen_vars.insert(vars);
            if first_of_dc || new_vars {
                kept.push(node);
            }
        }
        out.extend(kept.into_iter().map(|n| (n.clone(), false)));
    }
    out
}

fn stand_in(role: &RoleName, dc: &DatacenterName) -> Node {
    Node {
        name: NodeName::stand_in(role, dc),
        datacenter: dc.clone(),
        role: role.clone(),
        address: String::new(),
        port: 22,
        user: None,
        facts: BTreeMap::new(),
        vars: BTreeMap::new(),
    }
}

/// Compiles every subject of `nodes` in every datacenter and compares, per subject, each
/// datacenter's catalog with the primary's (or the first datacenter's). `compiled` are
/// the nodes' own catalogs, already made: a subject's catalog in its own datacenter is
/// taken from there rather than compiled again. Keeps every catalog it compiled (in
/// `catalogs`); [`Streaming`] is the same check without holding any.
pub fn check(compiler: &Compiler<'_>, nodes: &[Node], compiled: &[Catalog]) -> Parity {
    let mut streaming = Streaming::new(compiler, nodes);
    let mut kept = Vec::new();
    for catalog in compiled {
        streaming.own(catalog, &mut |c| kept.push(c.clone()));
    }
    let mut parity = streaming.finish(&mut |c| kept.push(c.clone()));
    parity.catalogs = kept;
    parity
}

/// The parity check fed one node's own catalog at a time, as it is compiled: a
/// subject's catalogs in the other datacenters are compiled, compared and dropped at
/// once, so memory does not grow with the number of nodes (10,000 nodes with values of
/// their own each are one subject each). `finish` does the subjects whose own catalog
/// never came (it did not compile, or a stand-in). Errors and failures come out in the
/// order of [`subjects`], as if every subject had been checked in that order.
pub struct Streaming<'c, 's> {
    compiler: &'c Compiler<'s>,
    /// Primary first.
    dcs: Vec<DatacenterName>,
    subjects: Vec<(Node, bool)>,
    /// Subject index by node name (stand-ins are not nodes and not here).
    index: HashMap<NodeName, usize>,
    done: Vec<bool>,
    /// Errors with the rank of the subject that showed them, and their order in it.
    errors: Vec<(usize, usize, ParityError)>,
    failures: Vec<(usize, Failure)>,
}

impl<'c, 's> Streaming<'c, 's> {
    pub fn new(compiler: &'c Compiler<'s>, nodes: &[Node]) -> Streaming<'c, 's> {
        let site = compiler.site();
        let mut dcs: Vec<DatacenterName> =
            site.datacenters.iter().map(|d| d.name.clone()).collect();
        dcs.sort_by_key(|dc| !site.datacenter(dc).is_some_and(|d| d.primary));
        let subjects = subjects(site, nodes);
        let index = subjects
            .iter()
            .enumerate()
            .filter(|(_, (_, stand_in))| !stand_in)
            .map(|(i, (node, _))| (node.name.clone(), i))
            .collect();
        let done = vec![false; subjects.len()];
        Streaming {
            compiler,
            dcs,
            subjects,
            index,
            done,
            errors: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// A node's own catalog: when the node is a subject, it is compared with its
    /// catalogs in every other datacenter, each shown to `observe` before it is dropped.
    pub fn own(&mut self, catalog: &Catalog, observe: &mut dyn FnMut(&Catalog)) {
        let Some(&rank) = self.index.get(&catalog.node.name) else {
            return;
        };
        // The subject is this very node (same datacenter), not a namesake.
        if self.done[rank] || self.subjects[rank].0.datacenter != catalog.node.datacenter {
            return;
        }
        self.done[rank] = true;
        self.subject(rank, Some(catalog), observe);
    }

    /// Combines this check with `other`, the same subjects checked over other nodes (a
    /// second thread's share): what either did is done, and what either found is kept.
    /// `finish` orders everything by subject, so the result does not depend on how the
    /// nodes were shared out.
    pub fn merge(mut self, other: Streaming<'c, 's>) -> Streaming<'c, 's> {
        for (mine, theirs) in self.done.iter_mut().zip(other.done) {
            *mine |= theirs;
        }
        self.errors.extend(other.errors);
        self.failures.extend(other.failures);
        self
    }

    /// The subjects not done yet, then everything found.
    pub fn finish(mut self, observe: &mut dyn FnMut(&Catalog)) -> Parity {
        for rank in 0..self.subjects.len() {
            if !self.done[rank] {
                self.done[rank] = true;
                self.subject(rank, None, observe);
            }
        }
        self.errors.sort_by_key(|(rank, order, _)| (*rank, *order));
        let mut seen = BTreeSet::new();
        let errors = self
            .errors
            .into_iter()
            .map(|(_, _, error)| error)
            .filter(|error| {
                seen.insert((
                    error.role.clone(),
                    error.resource.to_string(),
                    error.attribute.clone(),
                    error.datacenters.clone(),
                ))
            })
            .collect();
        self.failures.sort_by_key(|(rank, _)| *rank);
        Parity {
            errors,
            failures: self.failures.into_iter().map(|(_, f)| f).collect(),
            catalogs: Vec::new(),
        }
    }

    /// Compiles subject `rank` in every datacenter (its own catalog, when given, stands
    /// for its own datacenter) and compares each with the first.
    fn subject(&mut self, rank: usize, own: Option<&Catalog>, observe: &mut dyn FnMut(&Catalog)) {
        let (subject, stand_in) = &self.subjects[rank];
        let mut reference: Option<Cow<'_, Catalog>> = None;
        let mut order = 0;
        for dc in &self.dcs {
            let at_home = !stand_in && *dc == subject.datacenter;
            let catalog = match own.filter(|_| at_home) {
                Some(catalog) => Cow::Borrowed(catalog),
                None => {
                    let mut node = subject.clone();
                    node.datacenter = dc.clone();
                    match self.compiler.compile(&node) {
                        Ok(catalog) => {
                            observe(&catalog);
                            Cow::Owned(catalog)
                        }
                        // Its own errors are the node's compile errors, reported already.
                        Err(_) if at_home => continue,
                        Err(error) => {
                            self.failures.push((
                                rank,
                                Failure {
                                    node,
                                    stand_in: *stand_in,
                                    error,
                                },
                            ));
                            continue;
                        }
                    }
                }
            };
            match &reference {
                None => reference = Some(catalog),
                Some(first) => {
                    for error in compare(self.compiler.site(), first, &catalog) {
                        self.errors.push((rank, order, error));
                        order += 1;
                    }
                }
            }
        }
    }
}

/// The differences between the catalogs of one node compiled in two datacenters.
fn compare(site: &Site, a: &Catalog, b: &Catalog) -> Vec<ParityError> {
    let mut errors = Vec::new();
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
                role: a.node.role.clone(),
                resource: id.clone(),
                attribute: attribute.to_string(),
                datacenters: [a.node.datacenter.clone(), b.node.datacenter.clone()],
                node: a.node.name.clone(),
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
    errors
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
    // Equal specs are the common case: compared as data, without serializing them.
    if a.spec == b.spec {
        return out;
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
