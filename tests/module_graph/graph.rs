//! The module dependency graph of a loaded crate: every `use` leaf and every path in code is
//! resolved to the module that *defines* the item (following re-exports and globs), the
//! circles are the strongly connected components of that graph, and each circle is named
//! by its shortest cycles with the lines that make each step.

use super::scan::{Bind, Crate};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What a path resolves to.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Res {
    /// The path names a module.
    Module(usize),
    /// The path names an item defined in this module.
    Item(usize),
}

impl Res {
    fn module(self) -> usize {
        match self {
            Res::Module(m) | Res::Item(m) => m,
        }
    }
}

/// One dependency of a module on another.
#[derive(Clone, Debug)]
pub struct Edge {
    /// The module that uses.
    pub from: usize,
    /// The module that defines what is used.
    pub to: usize,
    /// Where (`src/a.rs:12`).
    pub at: String,
    /// The path as written.
    pub text: String,
    /// Only a namespace entry: a re-export (`pub use`) whose name the module's own code does
    /// not use, or a glob import itself (the names used through it are edges of their own).
    /// Every path through it is resolved to the defining module, so it never closes a
    /// circle; the layer check still sees it.
    pub namespace_only: bool,
}

fn lookup(cr: &Crate, m: usize, name: &str, seen: &mut BTreeSet<(usize, String)>) -> Option<Res> {
    if !seen.insert((m, name.to_string())) {
        return None;
    }
    let md = &cr.modules[m];
    if let Some(&c) = md.children.get(name) {
        return Some(Res::Module(c));
    }
    if md.defs.contains(name) {
        return Some(Res::Item(m));
    }
    if let Some(imp) = md
        .imports
        .iter()
        .find(|i| i.bind == Bind::Name(name.to_string()))
    {
        return resolve_in(cr, m, &imp.segs, seen);
    }
    for imp in md.imports.iter().filter(|i| i.bind == Bind::Glob) {
        if let Some(Res::Module(g)) = resolve_in(cr, m, &imp.segs, seen)
            && let Some(r) = lookup(cr, g, name, seen)
        {
            return Some(r);
        }
    }
    None
}

fn resolve_in(
    cr: &Crate,
    m: usize,
    segs: &[String],
    seen: &mut BTreeSet<(usize, String)>,
) -> Option<Res> {
    let (mut cur, mut k) = match segs.first()?.as_str() {
        "::" => return None,
        "crate" => (0, 1),
        "self" => (m, 1),
        "super" => {
            let mut cur = m;
            let mut k = 0;
            while segs.get(k).map(String::as_str) == Some("super") {
                cur = cr.modules[cur].parent?;
                k += 1;
            }
            (cur, k)
        }
        first => match lookup(cr, m, first, seen)? {
            Res::Item(x) => return Some(Res::Item(x)),
            Res::Module(x) => (x, 1),
        },
    };
    while k < segs.len() {
        match lookup(cr, cur, &segs[k], seen) {
            Some(Res::Module(x)) => cur = x,
            Some(Res::Item(x)) => return Some(Res::Item(x)),
            None => return Some(Res::Item(cur)),
        }
        k += 1;
    }
    Some(Res::Module(cur))
}

fn resolve(cr: &Crate, m: usize, segs: &[String]) -> Option<Res> {
    resolve_in(cr, m, segs, &mut BTreeSet::new())
}

fn at(cr: &Crate, m: usize, line: usize) -> String {
    let file = &cr.modules[m].file;
    format!("{}:{line}", file.split("::").next().unwrap_or(file))
}

/// Every dependency edge of the crate (self-edges dropped, external paths dropped).
pub fn edges(cr: &Crate) -> Vec<Edge> {
    let mut out = vec![];
    for (m, md) in cr.modules.iter().enumerate() {
        let mut push = |to: usize, line: usize, text: String, namespace_only: bool| {
            if to != m {
                out.push(Edge {
                    from: m,
                    to,
                    at: at(cr, m, line),
                    text,
                    namespace_only,
                });
            }
        };
        for imp in &md.imports {
            let Some(r) = resolve(cr, m, &imp.segs) else {
                continue;
            };
            let text = imp.segs.join("::");
            match &imp.bind {
                Bind::Glob => {
                    push(r.module(), imp.line, format!("{text}::*"), true);
                    for name in &md.idents {
                        if md.defs.contains(name) {
                            continue;
                        }
                        if let Some(t) = lookup(cr, r.module(), name, &mut BTreeSet::new()) {
                            push(t.module(), imp.line, format!("{text}::* ({name})"), false);
                        }
                    }
                }
                Bind::Name(n) => push(
                    r.module(),
                    imp.line,
                    text,
                    imp.public && !md.idents.contains(n),
                ),
                Bind::Hidden => push(r.module(), imp.line, text, false),
            }
        }
        for (segs, line) in &md.refs {
            if let Some(r) = resolve(cr, m, segs) {
                push(r.module(), *line, segs.join("::"), false);
            }
        }
    }
    out
}

/// The strongly connected components with more than one module of the graph of `edges`.
pub fn components(n: usize, edges: &[(usize, usize)]) -> Vec<Vec<usize>> {
    let mut adj = vec![vec![]; n];
    for &(a, b) in edges {
        adj[a].push(b);
    }
    // Tarjan, iterative.
    let (mut index, mut low, mut on) = (vec![usize::MAX; n], vec![0; n], vec![false; n]);
    let (mut next, mut stack, mut out) = (0, vec![], vec![]);
    for s in 0..n {
        if index[s] != usize::MAX {
            continue;
        }
        let mut work = vec![(s, 0usize)];
        while let Some(&(v, k)) = work.last() {
            if k == 0 && index[v] == usize::MAX {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on[v] = true;
            }
            if let Some(&w) = adj[v].get(k) {
                work.last_mut().expect("work").1 += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(u, _)) = work.last() {
                low[u] = low[u].min(low[v]);
            }
            if low[v] == index[v] {
                let mut comp = vec![];
                loop {
                    let w = stack.pop().expect("tarjan stack");
                    on[w] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    out.push(comp);
                }
            }
        }
    }
    out.sort();
    out
}

/// The circles: for each component, the shortest cycle through each of its edges.
pub fn circles(n: usize, edges: &[(usize, usize)]) -> Vec<Vec<usize>> {
    let comps = components(n, edges);
    let mut out = BTreeSet::new();
    for comp in comps {
        let inside: BTreeSet<usize> = comp.iter().copied().collect();
        let mut adj: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        for &(a, b) in edges {
            if inside.contains(&a) && inside.contains(&b) {
                adj.entry(a).or_default().insert(b);
            }
        }
        for (&a, bs) in &adj {
            for &b in bs {
                // Shortest path b → a inside the component closes the cycle a → b → … → a.
                let mut prev = BTreeMap::new();
                let mut q = VecDeque::from([b]);
                prev.insert(b, b);
                while let Some(v) = q.pop_front() {
                    if v == a {
                        break;
                    }
                    for &w in adj.get(&v).into_iter().flatten() {
                        if let std::collections::btree_map::Entry::Vacant(e) = prev.entry(w) {
                            e.insert(v);
                            q.push_back(w);
                        }
                    }
                }
                if !prev.contains_key(&a) {
                    continue;
                }
                // Walk back from a to b: the cycle is a → b → … → a.
                let mut back = vec![];
                let mut v = a;
                while prev[&v] != v {
                    v = prev[&v];
                    back.push(v);
                }
                back.reverse();
                let mut cyc = vec![a];
                cyc.extend(back);
                cyc.dedup();
                let start = cyc
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, x)| **x)
                    .map_or(0, |(i, _)| i);
                cyc.rotate_left(start);
                out.insert(cyc);
            }
        }
    }
    out.into_iter().collect()
}

/// Whether `to` is reachable from `from` along `edges`.
pub fn reaches(n: usize, edges: &[(usize, usize)], from: usize, to: usize) -> bool {
    let mut adj = vec![vec![]; n];
    for &(a, b) in edges {
        adj[a].push(b);
    }
    let mut seen = vec![false; n];
    let mut q = vec![from];
    while let Some(v) = q.pop() {
        if v == to {
            return true;
        }
        if std::mem::replace(&mut seen[v], true) {
            continue;
        }
        q.extend(adj[v].iter().copied());
    }
    false
}
