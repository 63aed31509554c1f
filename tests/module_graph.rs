//! The crate's module graph: no import circles, nothing importing upward.
//!
//! The check reads `src/**/*.rs` from the module tree (`mod` declarations from `src/lib.rs`
//! and, for the binary, `src/main.rs`), with comments, doc comments and string literals
//! dropped and `#[cfg(test)]` items skipped. A module is one file (or one inline
//! `mod x { … }`). Every `use` leaf and every path written in code (`crate::a::b`, `super::x`,
//! `self::x`, `child::x`, a name brought in by `use`, glob imports) is resolved to the module
//! that **defines** the item, following re-exports, so `use crate::Mlp` depends on
//! `model/mlp.rs`, not on `lib.rs`.
//!
//! - **Circles** are the strongly connected components of that file-level graph. A child
//!   using its parent's own items is an edge child → parent, and the parent's own code using a
//!   child's items is parent → child, so a real circle through a parent is found. A re-export
//!   (`pub use child::X` in a `mod.rs`) is recorded as a parent → child edge, but when the
//!   module's own code does not use the name it is only a namespace entry: every path through
//!   it resolves to the defining module, so it cannot close a circle (otherwise every child
//!   using its parent's trait would be one). Each circle is named by the shortest cycle
//!   through each of its edges, with the line that makes each step.
//! - **Layers**: data → backend (the `Backend` seam, kernels, linalg, loss) → model → linearise / ntk → solve →
//!   train → bench / report / cli, with error, real, memory and device below everything. A
//!   module may use its own layer and the layers below; any edge (re-exports included) into a
//!   higher layer is an upward import.
//!
//! What the code still has of either is listed, with a reason each, in [`ALLOWED_CIRCLE_EDGES`]
//! and [`ALLOWED_UPWARD`]; an entry that no longer matches fails the test too, so the lists
//! only shrink.

#[path = "module_graph/graph.rs"]
mod graph;
#[path = "module_graph/lex.rs"]
mod lex;
#[path = "module_graph/scan.rs"]
mod scan;

use graph::{Edge, circles, edges, reaches};
use scan::{Crate, Source, load};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The layer of each top-level module of the library (lower numbers lie below).
const LAYERS: &[(&str, usize)] = &[
    ("error", 0),
    ("real", 0),
    ("memory", 0),
    ("device", 0),
    ("maths", 0),
    ("data", 1),
    ("dist", 1),
    ("backend", 2),
    ("kernels", 2),
    ("linalg", 2),
    ("loss", 2),
    ("model", 3),
    ("linearise", 4),
    ("ntk", 4),
    ("solve", 5),
    ("train", 6),
    ("bench", 7),
    ("report", 7),
];

/// Edges `(from, to, reason)` taken out of the graph before looking for circles: each one
/// closes a circle that is known and is to be removed. A new circle anywhere fails.
const ALLOWED_CIRCLE_EDGES: &[(&str, &str, &str)] = &[];

/// Upward imports `(from module, to top-level module, reason)` still present; the issue's
/// backend seam (the model written over a backend, the trainer resident on it) removes the
/// `kernels::cuda` ones.
const ALLOWED_UPWARD: &[(&str, &str, &str)] = &[
    (
        "real",
        "kernels",
        "Real's supertrait CpuKernels is defined in kernels::cpu",
    ),
    (
        "data::synthetic",
        "model",
        "the teacher-student data set is drawn from an Mlp teacher",
    ),
    (
        "data::synthetic",
        "backend",
        "the teacher's Activation (the MLP teacher, above)",
    ),
    (
        "kernels::cuda::host",
        "model",
        "host-in/host-out CUDA twins take Mlp/Model/Jacobian",
    ),
    (
        "kernels::cuda::mlp",
        "model",
        "the CUDA forward/JVP/VJP read Mlp, Layer and Activation",
    ),
    (
        "kernels::cuda::model",
        "model",
        "CudaMlp implements Model (and ntk::Method) for Mlp",
    ),
    (
        "kernels::cuda::ntk",
        "model",
        "the CUDA NTK and dual GN step read the Mlp layout",
    ),
    (
        "kernels::cuda::ntk",
        "solve",
        "the CUDA dual GN step is the solve layer's dual_step_on on the CUDA backend (a name kept for users)",
    ),
    (
        "kernels::cuda::resident",
        "train",
        "ResidentEngine is the train layer's BackendEngine on the CUDA backend (a name kept for users)",
    ),
];

/// The crate's own files.
struct Fs(PathBuf);

impl Source for Fs {
    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.0.join(path)).ok()
    }
}

/// Files held in memory, for the checker's own tests.
struct Mem(BTreeMap<&'static str, &'static str>);

impl Source for Mem {
    fn read(&self, path: &str) -> Option<String> {
        self.0.get(path).map(|s| s.to_string())
    }
}

fn crate_root() -> Fs {
    Fs(PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

fn short(name: &str) -> &str {
    name.strip_prefix("crate::").unwrap_or(name)
}

/// The circles of `cr` once `allowed` edges are taken out, as one message each, and the
/// allowed entries that no longer close a circle.
fn circle_report(cr: &Crate, allowed: &[(&str, &str, &str)]) -> (Vec<String>, Vec<String>) {
    let all = edges(cr);
    let counted: Vec<&Edge> = all.iter().filter(|e| !e.namespace_only).collect();
    let name = |m: usize| short(&cr.modules[m].name).to_string();
    let is_allowed = |e: &Edge| {
        allowed
            .iter()
            .any(|(f, t, _)| *f == name(e.from) && *t == name(e.to))
    };
    let mut kept: Vec<(usize, usize)> = counted
        .iter()
        .filter(|e| !is_allowed(e))
        .map(|e| (e.from, e.to))
        .collect();
    kept.sort();
    kept.dedup();
    let n = cr.modules.len();
    let mut msgs = vec![];
    for cyc in circles(n, &kept) {
        let mut lines = vec![format!(
            "circle: {} → {}",
            cyc.iter().map(|&m| name(m)).collect::<Vec<_>>().join(" → "),
            name(cyc[0])
        )];
        for k in 0..cyc.len() {
            let (a, b) = (cyc[k], cyc[(k + 1) % cyc.len()]);
            let e = counted
                .iter()
                .find(|e| e.from == a && e.to == b)
                .expect("edge of a circle");
            lines.push(format!(
                "    {} → {}: {} `{}`",
                name(a),
                name(b),
                e.at,
                e.text
            ));
        }
        msgs.push(lines.join("\n"));
    }
    let mut stale = vec![];
    for (f, t, _) in allowed {
        let (Some(a), Some(b)) = (
            cr.find(&format!("crate::{f}")),
            cr.find(&format!("crate::{t}")),
        ) else {
            stale.push(format!("allowed circle edge {f} → {t}: no such module"));
            continue;
        };
        if !counted.iter().any(|e| e.from == a && e.to == b) {
            stale.push(format!(
                "allowed circle edge {f} → {t}: the import is gone; remove the entry"
            ));
        } else if !reaches(n, &kept, b, a) {
            stale.push(format!(
                "allowed circle edge {f} → {t}: it no longer closes a circle; remove the entry"
            ));
        }
    }
    (msgs, stale)
}

/// The layer of module `m` (its top-level module's), `None` for the crate root.
fn layer_of(cr: &Crate, layers: &[(&str, usize)], m: usize) -> Option<(String, Option<usize>)> {
    cr.modules[m].parent?;
    let top = short(&cr.modules[m].name).split("::").next()?.to_string();
    let l = layers.iter().find(|(t, _)| *t == top).map(|&(_, l)| l);
    Some((top, l))
}

/// Upward imports of `cr` not in `allowed`, the top-level modules without a layer, and the
/// allowed entries that match nothing.
fn upward_report(
    cr: &Crate,
    layers: &[(&str, usize)],
    allowed: &[(&str, &str, &str)],
) -> (Vec<String>, Vec<String>) {
    let mut msgs = vec![];
    let mut used = vec![false; allowed.len()];
    for &c in cr.modules[0].children.values() {
        if layer_of(cr, layers, c).is_some_and(|(_, l)| l.is_none()) {
            msgs.push(format!(
                "top-level module {} has no layer in LAYERS",
                short(&cr.modules[c].name)
            ));
        }
    }
    let mut reported = std::collections::BTreeSet::new();
    for e in edges(cr) {
        let (Some((ft, Some(fl))), Some((tt, Some(tl)))) =
            (layer_of(cr, layers, e.from), layer_of(cr, layers, e.to))
        else {
            continue;
        };
        if tl <= fl {
            continue;
        }
        let from = short(&cr.modules[e.from].name);
        let hit = allowed.iter().position(|(f, t, _)| *t == tt && from == *f);
        match hit {
            Some(k) => used[k] = true,
            None if !reported.insert((e.from, e.to)) => {}
            None => msgs.push(format!(
                "upward import: {from} (layer {fl}, {ft}) uses {} (layer {tl}): {} `{}`",
                short(&cr.modules[e.to].name),
                e.at,
                e.text
            )),
        }
    }
    let stale = allowed
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|((f, t, _), _)| {
            format!("allowed upward import {f} → {t}: none left; remove the entry")
        })
        .collect();
    (msgs, stale)
}

fn load_fs(root: &str) -> Crate {
    let cr = load(&crate_root(), root);
    assert!(
        cr.missing.is_empty(),
        "module files not found: {:?}",
        cr.missing
    );
    cr
}

#[test]
fn no_import_circles() {
    let mut problems = vec![];
    for root in ["src/lib.rs", "src/main.rs"] {
        let allowed = if root == "src/lib.rs" {
            ALLOWED_CIRCLE_EDGES
        } else {
            &[]
        };
        let (msgs, stale) = circle_report(&load_fs(root), allowed);
        problems.extend(msgs.into_iter().map(|m| format!("[{root}] {m}")));
        problems.extend(stale.into_iter().map(|m| format!("[{root}] {m}")));
    }
    assert!(
        problems.is_empty(),
        "import circles between modules:\n{}",
        problems.join("\n")
    );
}

#[test]
fn nothing_imports_upward() {
    let (msgs, stale) = upward_report(&load_fs("src/lib.rs"), LAYERS, ALLOWED_UPWARD);
    let all: Vec<String> = msgs.into_iter().chain(stale).collect();
    assert!(all.is_empty(), "layer order violated:\n{}", all.join("\n"));
}

#[test]
fn every_source_file_is_in_the_graph() {
    fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p.to_string_lossy().into_owned());
            }
        }
    }
    let root = crate_root().0;
    let mut files = vec![];
    walk(&root.join("src"), &mut files);
    let mut seen: Vec<String> = vec![];
    for r in ["src/lib.rs", "src/main.rs"] {
        seen.extend(
            load_fs(r)
                .modules
                .iter()
                .map(|m| m.file.split("::").next().expect("file").to_string()),
        );
    }
    let missing: Vec<String> = files
        .iter()
        .map(|f| {
            f.strip_prefix(&format!("{}/", root.display()))
                .unwrap_or(f)
                .to_string()
        })
        .filter(|f| !seen.contains(f))
        .collect();
    assert!(
        missing.is_empty(),
        "files outside the module tree (or only under cfg(test)): {missing:?}"
    );
}

#[test]
fn allowlist_entries_have_reasons() {
    for (f, t, why) in ALLOWED_CIRCLE_EDGES.iter().chain(ALLOWED_UPWARD) {
        assert!(why.len() > 10, "allowlist entry {f} → {t} needs a reason");
    }
}

#[path = "module_graph/selftest.rs"]
mod selftest;
