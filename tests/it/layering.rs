//! The library's module graph, read from the `crate::` paths in `src/`: each top-level
//! module is a node, and a file of module `a` naming `crate::b::…` is an edge `a -> b`.
//! Test code is left out (files `tests.rs` and `*_tests.rs`, and what follows a file's
//! first `#[cfg(test)]`): a module's tests may drive the modules above it.
//! The graph must have no cycle (a module and its own children are one node), and no
//! library module may name `cli` (the command line sits on top; nothing below it may
//! take a clap type).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn top_module(rel: &Path) -> String {
    let first = rel.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_string()
}

fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().unwrap().to_string_lossy();
    name == "tests.rs" || name.ends_with("_tests.rs")
}

fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || is_test_file(&path) {
                continue;
            }
            let from = top_module(path.strip_prefix(&src).unwrap());
            if from == "main" || from == "lib" {
                continue;
            }
            let whole = std::fs::read_to_string(&path).unwrap();
            let text = whole.split("#[cfg(test)]").next().unwrap_or("");
            for (i, _) in text.match_indices("crate::") {
                let to: String = text[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !to.is_empty() && to != from {
                    graph.entry(from.clone()).or_default().insert(to);
                }
            }
        }
    }
    graph
}

/// Every module that reaches itself through other modules.
fn cyclic(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = graph[start].iter().collect();
        while let Some(next) = todo.pop() {
            if next == start {
                found.insert(start.clone());
                break;
            }
            if seen.insert(next.clone()) {
                todo.extend(graph.get(next).into_iter().flatten());
            }
        }
    }
    found
}

#[test]
fn the_module_graph_has_no_cycle_and_nothing_below_cli_names_it() {
    let graph = edges();
    assert!(graph.len() > 10, "read too few modules: {graph:?}");
    let cycles = cyclic(&graph);
    assert!(
        cycles.is_empty(),
        "modules on a cycle: {cycles:?}\nedges: {graph:#?}"
    );
    let naming_cli: Vec<&String> = graph
        .iter()
        .filter(|(from, to)| from.as_str() != "cli" && to.contains("cli"))
        .map(|(from, _)| from)
        .collect();
    assert!(
        naming_cli.is_empty(),
        "library modules naming `cli`: {naming_cli:?}"
    );
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.entry("a".into()).or_default().insert("b".into());
    graph.entry("b".into()).or_default().insert("c".into());
    graph.entry("c".into()).or_default().insert("a".into());
    graph.entry("d".into()).or_default().insert("a".into());
    let found = cyclic(&graph);
    assert_eq!(found, ["a", "b", "c"].map(String::from).into());
}
