//! Module graphs for `cargo xtask layout`: where a path mentioned in a module
//! leads, which node of the graph (top-level or second-level module) that
//! is, and the import circles, as strongly connected components (Tarjan).

use std::collections::{BTreeMap, BTreeSet, btree_map::Entry};

/// A module's path below the crate root; empty for the root itself.
pub type Module = Vec<String>;

/// The module, or item, that `path` names when mentioned inside `from`, as
/// a path from the crate root; None if it leaves the crate (another crate,
/// std, a local type's associated item).
///
/// Besides `crate::`, `self::` and `super::`, a path whose first segment is
/// a child module of `from` counts (`use attachment::Attachment` in
/// `capture/mod.rs`): since the 2018 edition it means exactly
/// `self::attachment::Attachment`, and leaving it out would make the graph
/// depend on which of the two spellings a file happens to use.
pub fn resolve(from: &[String], path: &[String], modules: &BTreeSet<Module>) -> Option<Module> {
    let (first, rest) = path.split_first()?;
    let mut base = from.to_vec();
    match first.as_str() {
        "crate" => {
            base.clear();
            base.extend_from_slice(rest);
        }
        "self" | "super" => {
            let mut segments = path.iter();
            let mut next = segments.next();
            while let Some(segment) = next.filter(|s| *s == "self" || *s == "super") {
                if segment == "super" {
                    base.pop()?; // `super` above the crate root: not ours
                }
                next = segments.next();
            }
            base.extend(next.cloned());
            base.extend(segments.cloned());
        }
        _ => {
            base.push(first.clone());
            if !modules.contains(&base) {
                return None;
            }
            base.extend_from_slice(rest);
        }
    }
    Some(base)
}

/// The node of the graph at `depth` (1: top-level modules, 2: one level
/// deeper) that `path` belongs to: its longest prefix that is a module,
/// at most `depth` segments long. An item of the crate root (`crate::run`)
/// belongs to the root.
pub fn node(path: &[String], depth: usize, modules: &BTreeSet<Module>) -> Module {
    let mut len = 0;
    while len < depth.min(path.len()) && modules.contains(&path[..=len]) {
        len += 1;
    }
    path[..len].to_vec()
}

/// How a node is printed.
pub fn display(module: &[String]) -> String {
    if module.is_empty() {
        "crate root".to_owned()
    } else {
        module.join("::")
    }
}

/// Where an edge comes from: one `file:line` that creates it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Site {
    pub file: String,
    pub line: usize,
}

/// What kind of code creates an edge, in order of preference for its
/// example: an edge that only a re-export or only a test creates is worth
/// telling apart, since moving one line (or `--no-tests`) removes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Via {
    Code,
    /// A `pub use`.
    Reexport,
    Test,
}

/// An edge's example: its first site, by file then line, of the most
/// telling kind, so that it is the same from run to run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub via: Via,
    pub site: Site,
}

#[derive(Debug, Default)]
pub struct Graph {
    pub nodes: BTreeSet<Module>,
    pub edges: BTreeMap<(Module, Module), Edge>,
}

impl Graph {
    pub fn add_node(&mut self, node: Module) {
        self.nodes.insert(node);
    }

    /// An edge `from → to`; a module mentioning itself is no edge.
    pub fn add_edge(&mut self, from: Module, to: Module, edge: Edge) {
        if from == to {
            return;
        }
        self.nodes.insert(from.clone());
        self.nodes.insert(to.clone());
        match self.edges.entry((from, to)) {
            Entry::Vacant(vacant) => {
                vacant.insert(edge);
            }
            Entry::Occupied(mut known) if edge < *known.get() => {
                known.insert(edge);
            }
            Entry::Occupied(_) => {}
        }
    }

    /// Every strongly connected component of more than one node, each
    /// sorted, in order of their first nodes.
    pub fn cycles(&self) -> Vec<Vec<Module>> {
        let nodes: Vec<&Module> = self.nodes.iter().collect();
        let index: BTreeMap<&Module, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (*node, i))
            .collect();
        let mut successors = vec![Vec::new(); nodes.len()];
        for (from, to) in self.edges.keys() {
            successors[index[from]].push(index[to]);
        }
        let mut components: Vec<Vec<Module>> = tarjan(&successors)
            .into_iter()
            .filter(|component| component.len() > 1)
            .map(|component| {
                let mut members: Vec<Module> =
                    component.into_iter().map(|i| nodes[i].clone()).collect();
                members.sort();
                members
            })
            .collect();
        components.sort();
        components
    }

    /// The edges between members of `component`, with their sites.
    pub fn edges_within<'g>(
        &'g self,
        component: &[Module],
    ) -> impl Iterator<Item = (&'g Module, &'g Module, &'g Edge)> {
        let members: BTreeSet<Module> = component.iter().cloned().collect();
        self.edges
            .iter()
            .filter(move |((from, to), _)| members.contains(from) && members.contains(to))
            .map(|((from, to), edge)| (from, to, edge))
    }
}

/// Tarjan's strongly connected components of the graph given as successor
/// lists, every node in exactly one.
fn tarjan(successors: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct State<'s> {
        successors: &'s [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        components: Vec<Vec<usize>>,
    }

    // Recursive: module graphs are a few dozen nodes deep at most.
    fn visit(state: &mut State, v: usize) {
        state.index[v] = Some(state.next);
        state.low[v] = state.next;
        state.next += 1;
        state.stack.push(v);
        state.on_stack[v] = true;
        for &w in &state.successors[v] {
            match state.index[w] {
                None => {
                    visit(state, w);
                    state.low[v] = state.low[v].min(state.low[w]);
                }
                Some(index) if state.on_stack[w] => state.low[v] = state.low[v].min(index),
                Some(_) => {}
            }
        }
        if Some(state.low[v]) == state.index[v] {
            let mut component = Vec::new();
            while let Some(w) = state.stack.pop() {
                state.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            state.components.push(component);
        }
    }

    let n = successors.len();
    let mut state = State {
        successors,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        components: Vec::new(),
    };
    for v in 0..n {
        if state.index[v].is_none() {
            visit(&mut state, v);
        }
    }
    state.components
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(path: &str) -> Module {
        path.split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn modules(paths: &[&str]) -> BTreeSet<Module> {
        paths.iter().map(|path| module(path)).collect()
    }

    fn edge(via: Via, line: usize) -> Edge {
        let file = "f.rs".to_owned();
        Edge {
            via,
            site: Site { file, line },
        }
    }

    #[test]
    fn paths_resolve_relative_to_their_module() {
        let known = modules(&["", "capture", "capture::attachment", "netns", "sys"]);
        let resolve = |from: &str, path: &str| {
            resolve(&module(from), &module(path), &known).map(|path| path.join("::"))
        };
        let attachment = "capture::attachment";
        assert_eq!(
            resolve(attachment, "super::Engine").unwrap(),
            "capture::Engine"
        );
        assert_eq!(
            resolve(attachment, "super::super::netns::Netns").unwrap(),
            "netns::Netns"
        );
        assert_eq!(resolve(attachment, "self::super::X").unwrap(), "capture::X");
        assert_eq!(resolve(attachment, "crate::sys::bpf").unwrap(), "sys::bpf");
        assert_eq!(
            resolve("capture", "attachment::Attachment").unwrap(),
            "capture::attachment::Attachment"
        );
        assert_eq!(
            resolve("", "capture::Registry").unwrap(),
            "capture::Registry"
        );
        // A glob import of the parent: the parent itself.
        assert_eq!(
            resolve("capture::attachment::tests", "super").unwrap(),
            attachment
        );
        assert_eq!(resolve("", "super::x"), None);
        assert_eq!(resolve("capture", "std::fmt"), None);
        assert_eq!(resolve("capture", "netns::Netns"), None); // not a child
        assert_eq!(resolve("capture", "::std::fmt"), None);
    }

    #[test]
    fn nodes_are_module_prefixes() {
        let known = modules(&[
            "",
            "capture",
            "capture::attachment",
            "capture::attachment::x",
        ]);
        let node = |path: &str, depth| display(&node(&module(path), depth, &known));
        assert_eq!(node("capture::attachment::x::Y", 1), "capture");
        assert_eq!(node("capture::attachment::x::Y", 2), "capture::attachment");
        assert_eq!(node("capture::Engine", 2), "capture");
        assert_eq!(node("run", 1), "crate root");
        assert_eq!(node("", 2), "crate root");
    }

    #[test]
    fn cycles_are_strongly_connected_components() {
        let mut graph = Graph::default();
        // capture → session → registry → capture, netns ↔ sys, and a tail.
        for (from, to, via, line) in [
            ("capture", "session", Via::Code, 3),
            ("session", "registry", Via::Test, 5),
            ("session", "registry", Via::Reexport, 8),
            ("registry", "capture", Via::Code, 7),
            ("registry", "capture", Via::Code, 2),
            ("registry", "capture", Via::Test, 1),
            ("capture", "netns", Via::Code, 9),
            ("netns", "sys", Via::Code, 11),
            ("sys", "netns", Via::Code, 13),
            ("", "capture", Via::Code, 1),
            ("policy", "policy", Via::Code, 4),
        ] {
            graph.add_edge(module(from), module(to), edge(via, line));
        }
        graph.add_node(module("lonely"));
        let cycles: Vec<Vec<String>> = graph
            .cycles()
            .iter()
            .map(|cycle| cycle.iter().map(|node| display(node)).collect())
            .collect();
        assert_eq!(
            cycles,
            [vec!["capture", "registry", "session"], vec!["netns", "sys"]]
        );
        let edges: Vec<(String, String, Via, usize)> = graph
            .edges_within(&graph.cycles()[0])
            .map(|(from, to, edge)| (display(from), display(to), edge.via, edge.site.line))
            .collect();
        // The first site of the most telling kind wins.
        let expect = [
            ("capture", "session", Via::Code, 3),
            ("registry", "capture", Via::Code, 2),
            ("session", "registry", Via::Reexport, 8),
        ];
        assert_eq!(
            edges,
            expect.map(|(from, to, via, line)| (from.to_owned(), to.to_owned(), via, line))
        );
        assert!(!graph.nodes.contains(&module("policy")), "no self-loops");
    }
}
