//! The dependency graph of one catalog. Edges come from declaration order within a
//! module instance, from module `requires` (an instance's first resource comes after
//! the last resource of every instance of the modules it requires), and from
//! `require`/`before`/`notify`/`subscribe`. Duplicates merge when identical and are an
//! error naming both places when not; references must exist; the order is
//! topological, ties broken by declaration order; a cycle is named.

use std::collections::{BTreeSet, HashMap};

use super::CompileError;
use crate::manifest::Module;
use crate::resource::{Resource, ResourceId};

/// A built resource whose relations are not resolved yet.
pub(crate) struct Pending {
    pub resource: Resource,
    pub require: Vec<ResourceId>,
    pub before: Vec<ResourceId>,
    pub notify: Vec<ResourceId>,
    pub subscribe: Vec<ResourceId>,
    /// Indices this one comes after by declaration order or module `requires`.
    pub implicit: Vec<usize>,
}

#[derive(Default)]
pub(crate) struct Builder {
    pending: Vec<Pending>,
    index: HashMap<ResourceId, usize>,
    previous: Option<usize>,
    requires_tails: Vec<usize>,
    module_tails: HashMap<String, Vec<usize>>,
}

impl Builder {
    pub fn begin_instance(&mut self, module: &Module) {
        self.previous = None;
        self.requires_tails = module
            .requires
            .iter()
            .flat_map(|req| self.module_tails.get(req).cloned().unwrap_or_default())
            .collect();
    }

    pub fn end_instance(&mut self, module: &Module) {
        // A module without resources passes its own requirements on.
        let tails = match self.previous {
            Some(last) => vec![last],
            None => self.requires_tails.clone(),
        };
        self.module_tails
            .entry(module.name.clone())
            .or_default()
            .extend(tails);
    }

    pub fn add(&mut self, mut pending: Pending) -> Result<(), CompileError> {
        let implicit = match self.previous {
            Some(previous) => vec![previous],
            None => self.requires_tails.clone(),
        };
        let at = match self.index.get(&pending.resource.id) {
            Some(&existing) => {
                let first = &mut self.pending[existing];
                if first.resource.spec != pending.resource.spec {
                    return Err(CompileError::Duplicate {
                        id: pending.resource.id.clone(),
                        attribute: differing_attribute(&first.resource, &pending.resource),
                        first: first.resource.origin.clone(),
                        second: pending.resource.origin.clone(),
                    });
                }
                first.require.append(&mut pending.require);
                first.before.append(&mut pending.before);
                first.notify.append(&mut pending.notify);
                first.subscribe.append(&mut pending.subscribe);
                first
                    .implicit
                    .extend(implicit.into_iter().filter(|i| *i != existing));
                existing
            }
            None => {
                let at = self.pending.len();
                pending.implicit = implicit;
                self.index.insert(pending.resource.id.clone(), at);
                self.pending.push(pending);
                at
            }
        };
        self.previous = Some(at);
        Ok(())
    }

    /// Resolves relations and orders the resources.
    pub fn finish(self) -> Result<Vec<Resource>, CompileError> {
        let n = self.pending.len();
        let mut after: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
        let mut notify: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
        let mut errors = Vec::new();
        let lookup = |p: &Pending, relation: &'static str, id: &ResourceId| {
            self.index
                .get(id)
                .copied()
                .ok_or_else(|| CompileError::Dangling {
                    origin: p.resource.origin.clone(),
                    relation,
                    reference: id.to_string(),
                })
        };
        for (i, p) in self.pending.iter().enumerate() {
            after[i].extend(p.implicit.iter().copied());
            for id in &p.require {
                match lookup(p, "require", id) {
                    Ok(j) => {
                        after[i].insert(j);
                    }
                    Err(err) => errors.push(err),
                }
            }
            for id in &p.subscribe {
                match lookup(p, "subscribe", id) {
                    Ok(j) => {
                        after[i].insert(j);
                        notify[j].insert(i);
                    }
                    Err(err) => errors.push(err),
                }
            }
            for id in &p.before {
                match lookup(p, "before", id) {
                    Ok(j) => {
                        after[j].insert(i);
                    }
                    Err(err) => errors.push(err),
                }
            }
            for id in &p.notify {
                match lookup(p, "notify", id) {
                    Ok(j) => {
                        after[j].insert(i);
                        notify[i].insert(j);
                    }
                    Err(err) => errors.push(err),
                }
            }
        }
        if !errors.is_empty() {
            return Err(CompileError::many(errors));
        }
        let order = topological(&after).map_err(|cycle| CompileError::Cycle {
            cycle: cycle
                .iter()
                .map(|&i| {
                    let r = &self.pending[i].resource;
                    format!("`{}` ({})", r.id, r.origin)
                })
                .collect::<Vec<_>>()
                .join(" comes after "),
        })?;
        let ids: Vec<ResourceId> = self.pending.iter().map(|p| p.resource.id.clone()).collect();
        let mut slots: Vec<Option<Resource>> =
            self.pending.into_iter().map(|p| Some(p.resource)).collect();
        let mut resources = Vec::with_capacity(n);
        for i in order {
            if let Some(mut resource) = slots[i].take() {
                resource.after = after[i].iter().map(|&j| ids[j].clone()).collect();
                resource.notify = notify[i].iter().map(|&j| ids[j].clone()).collect();
                resources.push(resource);
            }
        }
        Ok(resources)
    }
}

/// Kahn's algorithm, smallest index first so that declaration order holds where the
/// graph leaves a choice. On a cycle, returns it (first element repeated at the end).
fn topological(after: &[BTreeSet<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let n = after.len();
    let mut waiting: Vec<usize> = after.iter().map(BTreeSet::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, deps) in after.iter().enumerate() {
        for &j in deps {
            dependents[j].push(i);
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.insert(d);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Every unplaced resource waits on another unplaced one: walking those edges from
    // any of them must revisit a resource, and the walk from there is the cycle.
    let start = (0..n).find(|&i| waiting[i] > 0).unwrap_or(0);
    let mut path = vec![start];
    let mut current = start;
    loop {
        let Some(&next) = after[current].iter().find(|&&j| waiting[j] > 0) else {
            return Err(path);
        };
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle = path[pos..].to_vec();
            cycle.push(next);
            return Err(cycle);
        }
        path.push(next);
        current = next;
    }
}

/// The first attribute (in serialization order) on which two declarations differ.
fn differing_attribute(a: &Resource, b: &Resource) -> String {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(&a.spec), serde_json::to_value(&b.spec))
    else {
        return "attributes".to_string();
    };
    a.iter()
        .find(|(key, value)| b.get(*key) != Some(value))
        .map(|(key, _)| key.clone())
        .unwrap_or_else(|| "attributes".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets(edges: &[&[usize]]) -> Vec<BTreeSet<usize>> {
        edges.iter().map(|e| e.iter().copied().collect()).collect()
    }

    #[test]
    fn orders_dependencies_first_and_keeps_declaration_order_otherwise() {
        assert_eq!(topological(&sets(&[&[2], &[], &[]])), Ok(vec![1, 2, 0]));
    }

    #[test]
    fn names_the_cycle() {
        let cycle = topological(&sets(&[&[], &[2], &[3], &[1]])).unwrap_err();
        assert_eq!(cycle, vec![1, 2, 3, 1]);
    }
}
