//! Products with an explicit Jacobian `J` (`m × p`, stored row-major in one slice):
//! `J v`, `Jᵀ u` and the fused Gauss-Newton product `Jᵀ(J v)`, parallel with rayon.

use crate::Real;
use rayon::prelude::*;

#[track_caller]
fn check(name: &str, j: &[impl Sized], m: usize, p: usize) {
    assert_eq!(
        j.len(),
        m * p,
        "{name}: J has {} entries, expected m·p = {m}·{p}",
        j.len()
    );
}

/// `out ← J v` for row-major `J` (`m × p`): one dot product per row, rows in parallel.
///
/// # Panics
/// If `j.len() != m·p`, `v.len() != p` or `out.len() != m`.
#[track_caller]
pub fn j_v<T: Real>(j: &[T], m: usize, p: usize, v: &[T], out: &mut [T]) {
    check("j_v", j, m, p);
    assert_eq!(
        v.len(),
        p,
        "j_v: v has length {}, J has {p} columns",
        v.len()
    );
    assert_eq!(
        out.len(),
        m,
        "j_v: out has length {}, J has {m} rows",
        out.len()
    );
    if p == 0 {
        out.fill(T::zero_impl());
        return;
    }
    out.par_iter_mut()
        .zip(j.par_chunks_exact(p))
        .for_each(|(o, row)| *o = T::dot(row, v));
}

/// Columns handled by one task of [`jt_u`]: the output block stays in L1.
const JT_U_BLOCK: usize = 2048;

/// `out ← Jᵀ u` for row-major `J` (`m × p`): column blocks in parallel, each block
/// accumulating `uᵢ · J[i, block]` over all rows.
///
/// # Panics
/// If `j.len() != m·p`, `u.len() != m` or `out.len() != p`.
#[track_caller]
pub fn jt_u<T: Real>(j: &[T], m: usize, p: usize, u: &[T], out: &mut [T]) {
    check("jt_u", j, m, p);
    assert_eq!(u.len(), m, "jt_u: u has length {}, J has {m} rows", u.len());
    assert_eq!(
        out.len(),
        p,
        "jt_u: out has length {}, J has {p} columns",
        out.len()
    );
    out.par_chunks_mut(JT_U_BLOCK)
        .enumerate()
        .for_each(|(b, blk)| {
            blk.fill(T::zero_impl());
            let c0 = b * JT_U_BLOCK;
            for (i, &ui) in u.iter().enumerate() {
                let row = &j[i * p + c0..i * p + c0 + blk.len()];
                T::axpy(ui, row, blk);
            }
        });
}

/// `out ← Jᵀ (J v)` for row-major `J`, reading each row of `J` once from memory:
/// per row `s = J[i,:]·v` then `out += s J[i,:]` while the row is still in cache.
/// Rows are split between threads, each with its own partial `out`, summed at the end.
///
/// # Panics
/// If `j.len() != m·p`, `v.len() != p` or `out.len() != p`.
#[track_caller]
pub fn jt_j_v<T: Real>(j: &[T], m: usize, p: usize, v: &[T], out: &mut [T]) {
    check("jt_j_v", j, m, p);
    assert_eq!(
        v.len(),
        p,
        "jt_j_v: v has length {}, J has {p} columns",
        v.len()
    );
    assert_eq!(
        out.len(),
        p,
        "jt_j_v: out has length {}, J has {p} columns",
        out.len()
    );
    out.fill(T::zero_impl());
    if m == 0 || p == 0 {
        return;
    }
    let threads = rayon::current_num_threads().min(m).max(1);
    let rows_per = m.div_ceil(threads);
    let partials: Vec<Vec<T>> = (0..threads)
        .into_par_iter()
        .map(|t| {
            let mut acc = vec![T::zero_impl(); p];
            let r0 = (t * rows_per).min(m);
            let r1 = ((t + 1) * rows_per).min(m);
            for row in j[r0 * p..r1 * p].chunks_exact(p) {
                let s = T::dot(row, v);
                T::axpy(s, row, &mut acc);
            }
            acc
        })
        .collect();
    for part in &partials {
        T::axpy(T::one_impl(), part, out);
    }
}
