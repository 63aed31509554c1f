//! Products with an explicit Jacobian `J` (`m × p`, stored row-major in one slice):
//! `J v`, `Jᵀ u` and the fused Gauss-Newton product `Jᵀ(J v)`, parallel with rayon.

use crate::Real;
#[allow(unused_imports)] // for the doc links
use crate::kernels::cpu::CpuKernels;
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
    // Four rows per step share each load of `v` (dot4); groups of rows in parallel.
    out.par_chunks_mut(ROWS_PER_TASK)
        .zip(j.par_chunks(ROWS_PER_TASK * p))
        .for_each(|(o, rows)| {
            let mut o4 = o.chunks_exact_mut(4);
            let mut r4 = rows.chunks_exact(4 * p);
            for (o, r) in (&mut o4).zip(&mut r4) {
                let (r0, rest) = r.split_at(p);
                let (r1, rest) = rest.split_at(p);
                let (r2, r3) = rest.split_at(p);
                o.copy_from_slice(&T::dot4([r0, r1, r2, r3], v));
            }
            for (o, r) in o4
                .into_remainder()
                .iter_mut()
                .zip(r4.remainder().chunks_exact(p))
            {
                *o = T::dot(r, v);
            }
        });
}

/// Rows handled by one rayon task of [`j_v`] (a multiple of 4).
const ROWS_PER_TASK: usize = 16;

/// Columns summed by one task when the per-thread partial results are reduced.
const REDUCE_BLOCK: usize = 8192;

/// Splits the rows `0..m` into one contiguous range per rayon thread, runs `f` on each with
/// a zeroed `p`-vector accumulator, and writes the sum of the accumulators into `out`.
/// The partition depends only on `m` and the thread count, so results are reproducible.
fn rows_reduce<T: Real>(
    m: usize,
    p: usize,
    out: &mut [T],
    f: impl Fn(usize, usize, &mut [T]) + Sync,
) {
    let threads = rayon::current_num_threads().clamp(1, m.max(1));
    let rows_per = m.div_ceil(threads);
    let partials: Vec<Vec<T>> = (0..threads)
        .into_par_iter()
        .map(|t| {
            let mut acc = vec![T::zero_impl(); p];
            let r0 = (t * rows_per).min(m);
            let r1 = ((t + 1) * rows_per).min(m);
            f(r0, r1, &mut acc);
            acc
        })
        .collect();
    out.par_chunks_mut(REDUCE_BLOCK)
        .enumerate()
        .for_each(|(b, blk)| {
            let c0 = b * REDUCE_BLOCK;
            let (first, rest) = partials.split_first().expect("at least one thread");
            blk.copy_from_slice(&first[c0..c0 + blk.len()]);
            for part in rest {
                T::axpy(T::one_impl(), &part[c0..c0 + blk.len()], blk);
            }
        });
}

/// `out ← Jᵀ u` for row-major `J` (`m × p`): rows split between threads, each reading its
/// rows of `J` sequentially (four at a time) into a private `p`-vector; the partial sums are
/// added at the end.
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
    if m == 0 || p == 0 {
        out.fill(T::zero_impl());
        return;
    }
    // Rows split between threads, each streaming its rows four at a time into a private
    // accumulator (axpy4: one load/store of the accumulator per four rows of J).
    rows_reduce(m, p, out, |r0, r1, acc| {
        let rows = &j[r0 * p..r1 * p];
        let us = &u[r0..r1];
        let mut r4 = rows.chunks_exact(4 * p);
        let mut u4 = us.chunks_exact(4);
        for (r, uu) in (&mut r4).zip(&mut u4) {
            let (x0, rest) = r.split_at(p);
            let (x1, rest) = rest.split_at(p);
            let (x2, x3) = rest.split_at(p);
            T::axpy4([uu[0], uu[1], uu[2], uu[3]], [x0, x1, x2, x3], acc);
        }
        for (r, &ui) in r4.remainder().chunks_exact(p).zip(u4.remainder()) {
            T::axpy(ui, r, acc);
        }
    });
}

/// `out ← Jᵀ (J v)` for row-major `J`, reading each row of `J` once from memory:
/// `sᵢ = J[i,:]·v` and `out += sᵢ J[i,:]`, where the update with row `i − 1` (still in
/// cache) runs in the same pass as the dot product of row `i` ([`CpuKernels::dot_axpy`]).
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
    if m == 0 || p == 0 {
        out.fill(T::zero_impl());
        return;
    }
    rows_reduce(m, p, out, |r0, r1, acc| {
        // Row i is dotted with v while row i − 1 (read just before, still in cache) is
        // added to the accumulator, in one pass: the stream from memory never pauses.
        let mut prev: Option<(&[T], T)> = None;
        for row in j[r0 * p..r1 * p].chunks_exact(p) {
            let s = match prev {
                None => T::dot(row, v),
                Some((pr, ps)) => T::dot_axpy(row, v, ps, pr, acc),
            };
            prev = Some((row, s));
        }
        if let Some((pr, ps)) = prev {
            T::axpy(ps, pr, acc);
        }
    });
}
