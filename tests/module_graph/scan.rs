//! Reads a crate's module tree from its root file: `mod` declarations (file and inline),
//! `use` trees, paths written in code (`crate::…`, `super::…`, `self::…`, `child::…`) and
//! the names each module defines. Items under a `#[cfg(test)]`-only attribute are skipped.

use super::lex::{Tok, lex};
use std::collections::{BTreeMap, BTreeSet};

/// Where the source files come from: the file system for the crate, a map in the self-tests.
pub trait Source {
    /// The text of the file at `path` (relative to the crate root), if there is one.
    fn read(&self, path: &str) -> Option<String>;
}

/// What a `use` leaf binds.
#[derive(Clone, Debug, PartialEq)]
pub enum Bind {
    /// A name (`use a::b` binds `b`, `use a::b as c` binds `c`).
    Name(String),
    /// `use a::*`.
    Glob,
    /// `use a::b as _`.
    Hidden,
}

/// One leaf of a `use` tree.
#[derive(Clone, Debug)]
pub struct Import {
    /// The path as written (`crate`, `super`, `self` or a name first).
    pub segs: Vec<String>,
    /// What it binds.
    pub bind: Bind,
    /// `pub …use` (any visibility): a re-export.
    pub public: bool,
    /// Line of the `use`.
    pub line: usize,
}

/// A module: one file or one inline `mod x { … }`.
#[derive(Debug, Default)]
pub struct Module {
    /// `crate::a::b`.
    pub name: String,
    /// The file it is written in (an inline module: its file, `::x` appended).
    pub file: String,
    /// The enclosing module.
    pub parent: Option<usize>,
    /// Declared child modules.
    pub children: BTreeMap<String, usize>,
    /// Names of the items defined at the module's top level.
    pub defs: BTreeSet<String>,
    /// Its `use` leaves.
    pub imports: Vec<Import>,
    /// Paths written in its code, with their lines.
    pub refs: Vec<(Vec<String>, usize)>,
    /// Every identifier of its code outside `use` declarations (not after a `.`).
    pub idents: BTreeSet<String>,
    child_dir: String,
}

/// A crate's modules; index 0 is the root.
#[derive(Debug, Default)]
pub struct Crate {
    /// All modules.
    pub modules: Vec<Module>,
    /// `mod x;` declarations whose file was not found.
    pub missing: Vec<String>,
}

impl Crate {
    /// The module called `name` (`crate::a::b`).
    pub fn find(&self, name: &str) -> Option<usize> {
        self.modules.iter().position(|m| m.name == name)
    }
}

/// Loads the crate whose root file is `root` (e.g. `src/lib.rs`).
pub fn load(src: &dyn Source, root: &str) -> Crate {
    let dir = root.rsplit_once('/').map_or("", |(d, _)| d).to_string();
    let mut cr = Crate::default();
    cr.modules.push(Module {
        name: "crate".into(),
        file: root.into(),
        child_dir: dir,
        ..Module::default()
    });
    let mut queue = vec![0];
    while let Some(m) = queue.pop() {
        let file = cr.modules[m].file.clone();
        match src.read(&file) {
            Some(text) => scan(src, &mut cr, m, &lex(&text), &mut queue),
            None => cr.missing.push(file),
        }
    }
    cr
}

fn add_child(cr: &mut Crate, parent: usize, name: &str, file: String, child_dir: String) -> usize {
    let idx = cr.modules.len();
    let full = format!("{}::{name}", cr.modules[parent].name);
    cr.modules.push(Module {
        name: full,
        file,
        parent: Some(parent),
        child_dir,
        ..Module::default()
    });
    cr.modules[parent].children.insert(name.to_string(), idx);
    idx
}

fn is_ident(t: Option<&(Tok, usize)>, s: &str) -> bool {
    matches!(t, Some((Tok::Ident(x), _)) if x == s)
}

fn is_punct(t: Option<&(Tok, usize)>, ch: char) -> bool {
    matches!(t, Some((Tok::Punct(c), _)) if *c == ch)
}

/// The index of the bracket closing the one at `open`.
fn matching(toks: &[(Tok, usize)], open: usize) -> usize {
    let Tok::Punct(o) = toks[open].0 else {
        return open;
    };
    let c = match o {
        '(' => ')',
        '[' => ']',
        _ => '}',
    };
    let mut depth = 0usize;
    for (k, (t, _)) in toks.iter().enumerate().skip(open) {
        if *t == Tok::Punct(o) {
            depth += 1;
        } else if *t == Tok::Punct(c) {
            depth -= 1;
            if depth == 0 {
                return k;
            }
        }
    }
    toks.len() - 1
}

/// Whether a `cfg(…)` predicate holds only under `cfg(test)`.
fn test_only(p: &[Tok]) -> bool {
    match p {
        [Tok::Ident(t)] => t == "test",
        [Tok::Ident(f), Tok::Punct('('), inner @ .., Tok::Punct(')')]
            if f == "all" || f == "any" =>
        {
            let mut parts = vec![];
            let (mut depth, mut start) = (0i32, 0);
            for (k, t) in inner.iter().enumerate() {
                match t {
                    Tok::Punct('(') => depth += 1,
                    Tok::Punct(')') => depth -= 1,
                    Tok::Punct(',') if depth == 0 => {
                        parts.push(&inner[start..k]);
                        start = k + 1;
                    }
                    _ => {}
                }
            }
            parts.push(&inner[start..]);
            parts.retain(|x| !x.is_empty());
            if f == "all" {
                parts.iter().any(|x| test_only(x))
            } else {
                !parts.is_empty() && parts.iter().all(|x| test_only(x))
            }
        }
        _ => false,
    }
}

/// Whether an attribute's tokens (inside `#[…]`) are `cfg(P)` with `P` test-only.
fn attr_test_only(a: &[Tok]) -> bool {
    match a {
        [Tok::Ident(cfg), Tok::Punct('('), p @ .., Tok::Punct(')')] if cfg == "cfg" => test_only(p),
        _ => false,
    }
}

/// The index after the item starting at `i` (up to its `;` or its `{…}` body).
fn skip_item(toks: &[(Tok, usize)], mut i: usize) -> usize {
    let mut depth = 0i32;
    while i < toks.len() {
        match toks[i].0 {
            Tok::Punct('(' | '[') => depth += 1,
            Tok::Punct(')' | ']') => depth -= 1,
            Tok::Punct(';') if depth == 0 => return i + 1,
            Tok::Punct('{') if depth == 0 => return matching(toks, i) + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

const ITEM_KEYWORDS: [&str; 8] = [
    "struct", "enum", "union", "trait", "fn", "type", "const", "static",
];

fn scan(
    src: &dyn Source,
    cr: &mut Crate,
    root: usize,
    toks: &[(Tok, usize)],
    queue: &mut Vec<usize>,
) {
    let mut stack = vec![(root, 0usize)];
    let (mut depth, mut i) = (0usize, 0usize);
    let mut attrs: Vec<Vec<Tok>> = vec![];
    let mut public = false;
    while i < toks.len() {
        let (m, mdepth) = *stack.last().expect("module stack");
        let (tok, line) = (&toks[i].0, toks[i].1);
        if *tok == Tok::Punct('#') {
            let inner = is_punct(toks.get(i + 1), '!');
            let open = i + 1 + usize::from(inner);
            if is_punct(toks.get(open), '[') {
                let close = matching(toks, open);
                if !inner {
                    attrs.push(toks[open + 1..close].iter().map(|t| t.0.clone()).collect());
                }
                i = close + 1;
                continue;
            }
        }
        if attrs.iter().any(|a| attr_test_only(a)) {
            i = skip_item(toks, i);
            attrs.clear();
            public = false;
            continue;
        }
        match tok {
            Tok::Ident(kw) if kw == "pub" => {
                public = true;
                i += 1;
                if is_punct(toks.get(i), '(') {
                    i = matching(toks, i) + 1;
                }
                continue;
            }
            Tok::Ident(kw) if kw == "use" && !is_punct(toks.get(i + 1), '<') => {
                let mut j = i + 1;
                let mut leaves = vec![];
                use_tree(toks, &mut j, vec![], &mut leaves);
                for (segs, bind) in leaves {
                    cr.modules[m].imports.push(Import {
                        segs,
                        bind,
                        public,
                        line,
                    });
                }
                while j < toks.len() && !is_punct(toks.get(j), ';') {
                    j += 1;
                }
                i = j + 1;
            }
            Tok::Ident(kw)
                if kw == "mod" && matches!(toks.get(i + 1), Some((Tok::Ident(_), _))) =>
            {
                let Tok::Ident(name) = &toks[i + 1].0 else {
                    unreachable!()
                };
                let dir = cr.modules[m].child_dir.clone();
                if is_punct(toks.get(i + 2), ';') {
                    let path_attr = attrs.iter().find_map(|a| match a.as_slice() {
                        [Tok::Ident(p), Tok::Punct('='), Tok::Str(s)] if p == "path" => {
                            Some(s.clone())
                        }
                        _ => None,
                    });
                    let file_dir = cr.modules[m]
                        .file
                        .rsplit_once('/')
                        .map_or("", |(d, _)| d)
                        .to_string();
                    let (file, child_dir) = match path_attr {
                        Some(p) => (format!("{file_dir}/{p}"), format!("{file_dir}/{name}")),
                        None => {
                            let flat = format!("{dir}/{name}.rs");
                            let nested = format!("{dir}/{name}/mod.rs");
                            let f = if src.read(&flat).is_some() {
                                flat
                            } else {
                                nested.clone()
                            };
                            (f, format!("{dir}/{name}"))
                        }
                    };
                    let c = add_child(cr, m, name, file, child_dir);
                    queue.push(c);
                    i += 3;
                } else if is_punct(toks.get(i + 2), '{') {
                    let file = format!("{}::{name}", cr.modules[m].file);
                    let c = add_child(cr, m, name, file, format!("{dir}/{name}"));
                    depth += 1;
                    stack.push((c, depth));
                    i += 3;
                } else {
                    i += 1;
                }
            }
            Tok::Ident(kw) if ITEM_KEYWORDS.contains(&kw.as_str()) && depth == mdepth => {
                let mut j = i + 1;
                if is_ident(toks.get(j), "fn") || is_ident(toks.get(j), "unsafe") {
                    j += 1;
                }
                if let Some((Tok::Ident(name), _)) = toks.get(j)
                    && name != "_"
                    && (kw != "union"
                        || matches!(toks.get(j + 1), Some((Tok::Punct('{' | '<'), _))))
                {
                    cr.modules[m].defs.insert(name.clone());
                }
                i += 1;
            }
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                if depth == mdepth && stack.len() > 1 {
                    stack.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Tok::Punct('$')
                if is_ident(toks.get(i + 1), "crate")
                    && toks.get(i + 2).map(|t| &t.0) == Some(&Tok::PathSep) =>
            {
                i += 1;
                continue;
            }
            Tok::Ident(first)
                if toks.get(i + 1).map(|t| &t.0) == Some(&Tok::PathSep)
                    && !(i > 0 && toks[i - 1].0 == Tok::PathSep) =>
            {
                let mut segs = vec![first.clone()];
                let mut j = i + 1;
                while toks.get(j).map(|t| &t.0) == Some(&Tok::PathSep) {
                    match toks.get(j + 1) {
                        Some((Tok::Ident(s), _)) => {
                            segs.push(s.clone());
                            j += 2;
                        }
                        _ => break,
                    }
                }
                cr.modules[m].idents.insert(first.clone());
                cr.modules[m].refs.push((segs, line));
                i = j;
            }
            Tok::Ident(x) => {
                // A method or field after `.` is not a use of an imported name.
                if !(i > 0 && toks[i - 1].0 == Tok::Punct('.')) {
                    cr.modules[m].idents.insert(x.clone());
                }
                i += 1;
            }
            _ => i += 1,
        }
        attrs.clear();
        public = false;
    }
}

/// Parses a `use` tree starting at `*j` into `(path, binding)` leaves.
fn use_tree(
    toks: &[(Tok, usize)],
    j: &mut usize,
    mut prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, Bind)>,
) {
    if toks.get(*j).map(|t| &t.0) == Some(&Tok::PathSep) {
        *j += 1;
        prefix.push("::".into());
    }
    loop {
        match toks.get(*j).map(|t| &t.0) {
            Some(Tok::Punct('{')) => {
                *j += 1;
                loop {
                    match toks.get(*j).map(|t| &t.0) {
                        None => return,
                        Some(Tok::Punct('}')) => {
                            *j += 1;
                            return;
                        }
                        _ => {}
                    }
                    let before = *j;
                    use_tree(toks, j, prefix.clone(), out);
                    // Step over the comma (or a token the tree could not read).
                    if is_punct(toks.get(*j), ',') || *j == before {
                        *j += 1;
                    }
                }
            }
            Some(Tok::Punct('*')) => {
                *j += 1;
                out.push((prefix, Bind::Glob));
                return;
            }
            Some(Tok::Punct('$')) => *j += 1,
            Some(Tok::Ident(s)) => {
                let s = s.clone();
                *j += 1;
                let more = toks.get(*j).map(|t| &t.0) == Some(&Tok::PathSep);
                if s == "self" && !prefix.is_empty() && !more {
                    let name = prefix.last().expect("prefix").clone();
                    out.push((prefix, rename(toks, j, name)));
                    return;
                }
                prefix.push(s.clone());
                if more {
                    *j += 1;
                    continue;
                }
                out.push((prefix, rename(toks, j, s)));
                return;
            }
            _ => return,
        }
    }
}

/// The binding of a leaf named `name`, after an optional `as x`.
fn rename(toks: &[(Tok, usize)], j: &mut usize, name: String) -> Bind {
    if is_ident(toks.get(*j), "as") {
        *j += 2;
        match toks.get(*j - 1) {
            Some((Tok::Ident(x), _)) if x != "_" => Bind::Name(x.clone()),
            _ => Bind::Hidden,
        }
    } else {
        Bind::Name(name)
    }
}
