//! The lower triangle of the empirical NTK `Θ = J Jᵀ` as [`Model::ntk_lower`](super::Model)
//! computes it: the [`Method`] choice, `J Jᵀ` from an explicit Jacobian, and the structured
//! form from an MLP's backprop signals,
//! `Θ = Σ_l (G_l G_lᵀ) ⊙ ((s_w² A_{l−1} A_{l−1}ᵀ + s_b²) ⊗ 1_{C×C})`
//! (one Gram of signals and one Gram of activations per layer; the read-out layer's signals
//! are `e_c`, so its term is `δ_{cc'} (s_w² a_n·a_{n'} + s_b²)`). The rest of the kernel
//! toolbox (full kernel, cross-kernels, diagonal, distances) is in [`crate::ntk`], which
//! re-exports these items.

use super::jacobian::Jacobian;
use super::signals::Signals;
use crate::Real;
use crate::linalg::{gram_lower, mirror_lower, par};
use faer::linalg::matmul::matmul;
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::{Accum, Mat, MatMut, MatRef};
use rayon::prelude::*;

/// How to compute the empirical NTK.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Method {
    /// `J Jᵀ` from the explicit Jacobian (symmetric rank-`P` update, lower half).
    Explicit,
    /// Per-layer Grams ([structured NTK](crate::maths#structured-ntk)); only for models that
    /// expose their layer structure ([`Mlp`](super::Mlp)); other models fall back to
    /// `Explicit`.
    Structured,
    /// The cheaper of the two by a flop count.
    Auto,
}

/// `J Jᵀ` (lower half only) from an explicit Jacobian.
pub fn explicit_lower<T: Real>(j: &Jacobian<T>) -> Mat<T> {
    let m = j.nrows();
    let mut k = Mat::zeros(m, m);
    gram_lower(k.as_mut(), j.as_ref(), T::one_impl(), false);
    k
}

/// Column panel width of the structured assembly: the Gram panel stays in cache while its
/// Hadamard product with the activation kernel is added to Θ.
const PANEL: usize = 256;

/// The structured NTK (lower half only) from an MLP's signals.
pub fn structured_lower<T: Real>(s: &Signals<T>) -> Mat<T> {
    let (n, c) = (s.n, s.c);
    let m = n * c;
    let mut theta = Mat::<T>::zeros(m, m);
    let nl = s.layers.len();
    let mut panel = Mat::<T>::zeros(m, PANEL.min(m.max(1)));
    for (l, layer) in s.layers.iter().enumerate() {
        let ka = activation_kernel(&s.acts[l], n, layer.fan_in, layer.w_scale, layer.b_scale);
        if l == nl - 1 {
            // G_L rows are e_c: Θ[nc, n'c] += K_A[n, n'].
            for n2 in 0..n {
                for n1 in n2..n {
                    let v = ka[(n1, n2)];
                    for cc in 0..c {
                        theta[(n1 * c + cc, n2 * c + cc)] += v;
                    }
                }
            }
            continue;
        }
        let g = MatRef::from_row_major_slice(&s.grads[l], m, layer.fan_out);
        let mut j0 = 0;
        while j0 < m {
            let w = PANEL.min(m - j0);
            let rows = m - j0;
            let mut dst = panel.as_mut().submatrix_mut(0, 0, rows, w);
            matmul(
                dst.rb_mut(),
                Accum::Replace,
                g.subrows(j0, rows),
                g.subrows(j0, w).transpose(),
                T::one_impl(),
                par(),
            );
            hadamard_add_panel(theta.as_mut(), dst.rb(), &ka, c, j0);
            j0 += w;
        }
    }
    theta
}

/// `Θ[j0+i, j0+jj] += P[i, jj] · K_A[(j0+i)/C, (j0+jj)/C]` for the lower part of a panel,
/// columns in parallel, each column walked in runs of `C` rows sharing one `K_A` entry.
pub(crate) fn hadamard_add_panel<T: Real>(
    mut theta: MatMut<'_, T>,
    p: MatRef<'_, T>,
    ka: &Mat<T>,
    c: usize,
    j0: usize,
) {
    let w = p.ncols();
    let mut cols: Vec<(usize, MatMut<'_, T>)> = Vec::with_capacity(w);
    let mut rest = theta.rb_mut().subcols_mut(j0, w);
    for jj in 0..w {
        let (col, tail) = rest.split_at_col_mut(1);
        cols.push((jj, col));
        rest = tail;
    }
    cols.into_par_iter().for_each(|(jj, mut col)| {
        let gj = j0 + jj;
        let nj = gj / c;
        let dst = col
            .rb_mut()
            .col_mut(0)
            .try_as_col_major_mut()
            .expect("Mat columns are contiguous")
            .as_slice_mut();
        let src = p
            .col(jj)
            .try_as_col_major()
            .expect("Mat columns are contiguous")
            .as_slice();
        let mut i = jj;
        while i < p.nrows() {
            let gi = j0 + i;
            let ni = gi / c;
            let end = ((ni + 1) * c - j0).min(p.nrows());
            let k = ka[(ni, nj)];
            for (d, &v) in dst[gi..j0 + end].iter_mut().zip(&src[i..end]) {
                *d += v * k;
            }
            i = end;
        }
    });
}

/// `s_w² A Aᵀ + s_b²` (full, `N × N`).
pub(crate) fn activation_kernel<T: Real>(
    a: &[T],
    n: usize,
    fan_in: usize,
    sw: f64,
    sb: f64,
) -> Mat<T> {
    let a = MatRef::from_row_major_slice(a, n, fan_in);
    let mut k = Mat::<T>::zeros(n, n);
    gram_lower(k.as_mut(), a, T::from_f64(sw * sw), false);
    mirror_lower(k.as_mut());
    let b2 = T::from_f64(sb * sb);
    for j in 0..n {
        for i in 0..n {
            k[(i, j)] += b2;
        }
    }
    k
}
