//! Which partials a template includes, and the cycles they form. Handlebars refuses a
//! partial that includes itself directly, but two that include each other recurse
//! until the stack overflows and the process aborts; so the inclusion graph of the
//! registered partials is checked whenever partials are added, and a cycle is an error
//! that names it. That needs every name known before rendering: a partial whose own
//! inclusions are computed (`{{> (lookup this "kind")}}`) is refused where it is
//! registered (a template that is not a partial may compute names, since nothing can
//! include it back).

use std::collections::{BTreeMap, BTreeSet};

use handlebars::template::{Parameter, Template, TemplateElement};

/// The partials a template includes, in blocks and their `else` too.
#[derive(Debug, Default, PartialEq)]
pub(super) struct References {
    pub names: BTreeSet<String>,
    /// Whether some inclusion computes its name (`{{> (expr)}}`).
    pub computed: bool,
}

pub(super) fn references(template: &Template) -> References {
    let mut found = References::default();
    collect(template, &mut found);
    found
}

fn collect(template: &Template, found: &mut References) {
    for element in &template.elements {
        match element {
            TemplateElement::PartialExpression(d) | TemplateElement::PartialBlock(d) => {
                let name = match &d.name {
                    Parameter::Literal(serde_json::Value::String(name)) => Some(name.clone()),
                    other => other.as_name().map(str::to_string),
                };
                match name {
                    // `@partial-block` is the caller's block, not a registered partial.
                    Some(name) if name == "@partial-block" => {}
                    Some(name) => {
                        found.names.insert(name);
                    }
                    None => found.computed = true,
                }
                if let Some(inner) = &d.template {
                    collect(inner, found);
                }
            }
            TemplateElement::HelperBlock(h) => {
                for inner in [&h.template, &h.inverse].into_iter().flatten() {
                    collect(inner, found);
                }
            }
            TemplateElement::DecoratorBlock(d) => {
                if let Some(inner) = &d.template {
                    collect(inner, found);
                }
            }
            _ => {}
        }
    }
}

/// A cycle in `graph` (partial -> the partials it includes), as the names along it
/// with the first repeated at the end (`pa`, `pb`, `pa`); `None` when there is none.
/// References to partials that do not exist are left to rendering to report.
pub(super) fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    for start in graph.keys() {
        if marks.contains_key(start.as_str()) {
            continue;
        }
        // Iterative depth-first search: the graph comes from user files, and a long
        // chain of partials must not overflow the stack this check exists to protect.
        let mut path: Vec<&str> = vec![start];
        let mut pending: Vec<Vec<&str>> = vec![children(graph, start)];
        marks.insert(start, Mark::Open);
        while let Some(next) = pending.last_mut() {
            match next.pop() {
                Some(child) => match marks.get(child) {
                    Some(Mark::Open) => {
                        let from = path.iter().position(|n| *n == child).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            path[from..].iter().map(|n| n.to_string()).collect();
                        cycle.push(child.to_string());
                        return Some(cycle);
                    }
                    Some(Mark::Done) => {}
                    None => {
                        marks.insert(child, Mark::Open);
                        path.push(child);
                        pending.push(children(graph, child));
                    }
                },
                None => {
                    pending.pop();
                    if let Some(done) = path.pop() {
                        marks.insert(done, Mark::Done);
                    }
                }
            }
        }
    }
    None
}

/// The registered partials `name` includes, last first (the search pops from the end).
fn children<'a>(graph: &'a BTreeMap<String, BTreeSet<String>>, name: &str) -> Vec<&'a str> {
    graph.get(name).map_or_else(Vec::new, |refs| {
        refs.iter()
            .filter(|r| graph.contains_key(r.as_str()))
            .rev()
            .map(String::as_str)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        edges
            .iter()
            .map(|(from, to)| (from.to_string(), to.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    #[test]
    fn references_are_found_in_blocks_and_else() {
        let t = Template::compile(
            "{{> a}}{{#if x}}{{> b/c}}{{else}}{{> d}}{{/if}}{{#> e}}{{> f}}{{/e}}\
             {{> (which_partial x)}}{{> @partial-block}}",
        )
        .unwrap();
        let found = references(&t);
        let names: Vec<&String> = found.names.iter().collect();
        assert_eq!(names, ["a", "b/c", "d", "e", "f"]);
        assert!(found.computed);
        let plain = references(&Template::compile("{{> a}}{{#each x}}{{> b}}{{/each}}").unwrap());
        assert!(!plain.computed);
    }

    #[test]
    fn cycles_are_named_and_chains_are_not_cycles() {
        assert_eq!(
            find_cycle(&graph(&[("pa", &["pb"]), ("pb", &["pa"])])),
            Some(vec!["pa".to_string(), "pb".into(), "pa".into()])
        );
        assert_eq!(
            find_cycle(&graph(&[("a", &["b"]), ("b", &["c"]), ("c", &["b"])])),
            Some(vec!["b".to_string(), "c".into(), "b".into()])
        );
        // A diamond, a reference to nothing registered, and a long chain.
        assert_eq!(
            find_cycle(&graph(&[
                ("a", &["b", "c"]),
                ("b", &["d"]),
                ("c", &["d"]),
                ("d", &["missing"])
            ])),
            None
        );
        let chain: Vec<(String, BTreeSet<String>)> = (0..100_000)
            .map(|i| (format!("p{i}"), BTreeSet::from([format!("p{}", i + 1)])))
            .collect();
        assert_eq!(find_cycle(&chain.into_iter().collect()), None);
    }
}
