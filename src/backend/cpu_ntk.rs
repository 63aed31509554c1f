//! The CPU backend's NTK assembly from backprop signals: per layer the activation kernel
//! `K_A = s_w² A_{l−1} A_{l−1}ᵀ + s_b²` and the Gram of the signals `G_l G_lᵀ` in column
//! panels, whose Hadamard product with `K_A ⊗ 1_{C×C}` is added to the lower half of `Θ`
//! while the panel is in cache (no `M × M` Gram per layer is ever stored).

use crate::Real;
use crate::backend::Layer;
use crate::linalg::{gram_lower, mirror_lower, par};
use faer::linalg::matmul::matmul;
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::{Accum, Mat, MatMut, MatRef};
use rayon::prelude::*;

/// Column panel width of the structured assembly: the Gram panel stays in cache while its
/// Hadamard product with the activation kernel is added to Θ.
pub(crate) const PANEL: usize = 256;

/// Adds the structured NTK's lower half (diagonal included) into `theta` (`M × M`,
/// `M = N·C`, column-major: its columns must be contiguous) from the layer inputs
/// `acts[l]` (`A_{l−1}`, row-major `N × fan_in`; `acts[0]` is `X`) and backprop signals
/// `grads[l]` (row-major `M × fan_out`). The strict upper half is left as it was.
///
/// # Panics
/// If the lengths do not fit the layers, or `theta`'s columns are not contiguous.
#[track_caller]
pub(crate) fn structured_lower_into<T: Real>(
    mut theta: MatMut<'_, T>,
    acts: &[Vec<T>],
    grads: &[Vec<T>],
    layers: &[Layer],
    n: usize,
    c: usize,
) {
    let m = n * c;
    assert!(
        theta.nrows() == m && theta.ncols() == m,
        "structured NTK: Θ is {}×{}, expected {m}×{m}",
        theta.nrows(),
        theta.ncols()
    );
    let nl = layers.len();
    let mut panel = Mat::<T>::zeros(m, PANEL.min(m.max(1)));
    for (l, layer) in layers.iter().enumerate() {
        let ka = activation_kernel(&acts[l], n, layer.fan_in, layer.w_scale, layer.b_scale);
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
        let g = MatRef::from_row_major_slice(&grads[l], m, layer.fan_out);
        add_signal_gram(theta.rb_mut(), g, &ka, c, &mut panel);
    }
}

/// `Θ += (G Gᵀ) ⊙ (K_A ⊗ 1_{C×C})` (lower half) for one layer's signals `G` (`M × fan_out`)
/// and activation kernel `K_A` (`N × N`): the Gram in column panels of [`PANEL`] columns
/// (`panel` is `M × min(PANEL, M)` scratch), each added while it is in cache.
pub(crate) fn add_signal_gram<T: Real>(
    mut theta: MatMut<'_, T>,
    g: MatRef<'_, T>,
    ka: &Mat<T>,
    c: usize,
    panel: &mut Mat<T>,
) {
    let m = g.nrows();
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
        hadamard_add_panel(theta.rb_mut(), dst.rb(), ka, c, j0);
        j0 += w;
    }
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
