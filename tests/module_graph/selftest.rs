//! The checker's own tests on small synthetic crates: a circle is found, its absence is not
//! reported, and the rules (re-exports, comments, strings, `cfg(test)`, globs, layers) hold.

use super::{Mem, circle_report, upward_report};
use crate::scan::load;
use std::collections::BTreeMap;

fn krate(files: &[(&'static str, &'static str)]) -> crate::scan::Crate {
    let cr = load(
        &Mem(files.iter().copied().collect::<BTreeMap<_, _>>()),
        "src/lib.rs",
    );
    assert!(cr.missing.is_empty(), "missing {:?}", cr.missing);
    cr
}

fn circles_of(files: &[(&'static str, &'static str)]) -> Vec<String> {
    circle_report(&krate(files), &[]).0
}

#[test]
fn a_circle_between_two_files_is_found_and_named() {
    let c = circles_of(&[
        ("src/lib.rs", "mod a;\nmod b;\n"),
        ("src/a.rs", "use crate::b::B;\npub struct A(B);\n"),
        ("src/b.rs", "pub struct B;\nfn f(_: crate::a::A) {}\n"),
    ]);
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(c[0].starts_with("circle: a → b → a"), "{}", c[0]);
    assert!(
        c[0].contains("src/a.rs:1 `crate::b::B`") && c[0].contains("src/b.rs:2 `crate::a::A`"),
        "{}",
        c[0]
    );
}

#[test]
fn a_graph_without_a_circle_passes() {
    let c = circles_of(&[
        ("src/lib.rs", "mod a;\nmod b;\nmod c;\n"),
        ("src/a.rs", "use crate::b::B;\npub struct A(B);\n"),
        ("src/b.rs", "use crate::c::C;\npub struct B(C);\n"),
        ("src/c.rs", "pub struct C;\n"),
    ]);
    assert!(c.is_empty(), "{c:?}");
}

#[test]
fn a_longer_circle_through_a_nested_module_and_a_re_export_is_found() {
    // c → m::x (through m's re-export) → b → c.
    let c = circles_of(&[
        ("src/lib.rs", "mod b;\nmod c;\nmod m;\n"),
        ("src/m/mod.rs", "mod x;\npub use x::X;\n"),
        ("src/m/x.rs", "pub struct X(crate::b::B);\n"),
        ("src/b.rs", "pub struct B(pub super::c::C);\n"),
        ("src/c.rs", "pub struct C;\nfn f(_: &crate::m::X) {}\n"),
    ]);
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(c[0].starts_with("circle: b → c → m::x → b"), "{}", c[0]);
}

#[test]
fn a_facade_re_export_with_children_using_the_parent_is_no_circle() {
    let files = [
        ("src/lib.rs", "pub mod m;\npub use m::{T, X};\n"),
        (
            "src/m/mod.rs",
            "mod x;\nmod y;\npub use x::X;\npub use y::Y;\npub trait T {}\n",
        ),
        (
            "src/m/x.rs",
            "use super::T;\npub struct X;\nimpl T for X {}\n",
        ),
        (
            "src/m/y.rs",
            "use super::{T, X};\npub struct Y(X);\nimpl T for Y {}\n",
        ),
    ];
    assert!(circles_of(&files).is_empty());
    // …and `super::X` resolves through the re-export to the defining file.
    let cr = krate(&files);
    let e = crate::graph::edges(&cr);
    let name = |m: usize| cr.modules[m].name.as_str();
    assert!(
        e.iter()
            .any(|e| name(e.from) == "crate::m::y" && name(e.to) == "crate::m::x"),
        "{e:?}"
    );
}

#[test]
fn a_parent_whose_own_code_uses_a_child_that_uses_it_is_a_circle() {
    let c = circles_of(&[
        ("src/lib.rs", "mod m;\n"),
        (
            "src/m/mod.rs",
            "mod x;\npub trait T {}\npub fn f() { x::g(); }\n",
        ),
        (
            "src/m/x.rs",
            "pub fn g() {}\npub struct X;\nimpl super::T for X {}\n",
        ),
    ]);
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(c[0].starts_with("circle: m → m::x → m"), "{}", c[0]);
}

#[test]
fn comments_strings_and_test_modules_are_ignored() {
    let c = circles_of(&[
        ("src/lib.rs", "mod a;\nmod b;\n"),
        (
            "src/a.rs",
            r####"
//! Uses `crate::b::B` in a doc comment only.
/// use crate::b::B;
/* crate::b::B /* nested */ crate::b::B */
pub struct A;
const S: &str = "crate::b::B";
const R: &str = r#"use crate::b::B; "quoted" "#;
const CH: char = '"';
fn life<'a>(x: &'a str) -> &'a str { x }
#[cfg(test)]
mod tests {
    use crate::b::B;
}
#[cfg(all(test, feature = "x"))]
fn only_in_tests() -> crate::b::B { crate::b::B }
"####,
        ),
        ("src/b.rs", "pub struct B;\nfn f(_: crate::a::A) {}\n"),
    ]);
    assert!(c.is_empty(), "{c:?}");
}

#[test]
fn code_after_a_char_literal_and_a_cfg_not_test_item_is_still_read() {
    let c = circles_of(&[
        ("src/lib.rs", "mod a;\nmod b;\n"),
        (
            "src/a.rs",
            "const Q: char = '\\'';\n#[cfg(not(test))]\nfn g() -> crate::b::B { crate::b::B }\npub struct A;\n",
        ),
        ("src/b.rs", "pub struct B;\nfn f(_: crate::a::A) {}\n"),
    ]);
    assert_eq!(c.len(), 1, "{c:?}");
}

#[test]
fn glob_imports_resolve_to_the_defining_module() {
    // x uses `Ctx` through `use super::*`, which the parent imported from `ctx`; ctx uses x.
    let c = circles_of(&[
        ("src/lib.rs", "mod ops;\n"),
        (
            "src/ops/mod.rs",
            "mod ctx;\nmod x;\nuse ctx::Ctx;\npub use x::run;\n",
        ),
        (
            "src/ops/ctx.rs",
            "pub struct Ctx;\nfn k() { super::x::run(); }\n",
        ),
        (
            "src/ops/x.rs",
            "use super::*;\npub fn run() { let _c: Option<Ctx> = None; }\n",
        ),
    ]);
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(
        c[0].starts_with("circle: ops::ctx → ops::x → ops::ctx"),
        "{}",
        c[0]
    );
}

#[test]
fn an_allowed_edge_breaks_its_circle_and_a_stale_one_is_reported() {
    let files = [
        ("src/lib.rs", "mod a;\nmod b;\nmod c;\n"),
        ("src/a.rs", "use crate::b::B;\npub struct A(B);\n"),
        ("src/b.rs", "pub struct B;\nfn f(_: crate::a::A) {}\n"),
        ("src/c.rs", "pub struct C(crate::a::A);\n"),
    ];
    let cr = krate(&files);
    let (c, stale) = circle_report(&cr, &[("b", "a", "known")]);
    assert!(c.is_empty() && stale.is_empty(), "{c:?} {stale:?}");
    let (_, stale) = circle_report(&cr, &[("b", "a", "known"), ("c", "a", "no circle")]);
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert!(stale[0].contains("no longer closes a circle"), "{stale:?}");
}

#[test]
fn an_upward_import_is_found_and_a_downward_one_is_not() {
    let files = [
        (
            "src/lib.rs",
            "pub mod low;\npub mod high;\npub mod other;\n",
        ),
        (
            "src/low.rs",
            "pub struct L;\npub fn f() -> crate::high::H { todo!() }\n",
        ),
        ("src/high.rs", "use crate::low::L;\npub struct H(L);\n"),
        ("src/other.rs", "pub struct O;\n"),
    ];
    let cr = krate(&files);
    let layers = [("low", 0), ("high", 1), ("other", 0)];
    let (msgs, stale) = upward_report(&cr, &layers, &[]);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(
        msgs[0].contains("low (layer 0, low) uses high (layer 1): src/low.rs:2 `crate::high::H`"),
        "{msgs:?}"
    );
    assert!(stale.is_empty());
    let (msgs, stale) = upward_report(
        &cr,
        &layers,
        &[("low", "high", "known"), ("other", "high", "gone")],
    );
    assert!(msgs.is_empty(), "{msgs:?}");
    assert_eq!(stale.len(), 1, "{stale:?}");
    let (msgs, _) = upward_report(&cr, &[("low", 0), ("high", 1)], &[]);
    assert!(
        msgs.iter().any(|m| m.contains("other has no layer")),
        "{msgs:?}"
    );
}
