//! Pieces of the empirical NTK `Θ = J Jᵀ` without the whole `(N·C)²` matrix: the kernel
//! columns of a few samples, `Θ[:, S] = J J_Sᵀ`, and the diagonal `Θ_ii = ‖J_i‖²`. These are
//! what a Nyström or pivoted-Cholesky approximation of `Θ` needs
//! ([`Model::ntk_columns`](super::Model::ntk_columns),
//! [`Model::ntk_diagonal`](super::Model::ntk_diagonal)).
//!
//! Generic models (the trait defaults): `Θ[:, s·C + k] = J (J_{s,k})ᵀ` is one single-sample
//! VJP (the row `J_{s,k}`) and one JVP on the whole batch; `Θ_ii` is `‖J_i‖²` from
//! single-sample VJPs. An MLP uses its backprop signals (this file), per layer
//! `Θ[nc, sk] = Σ_l (g_{l,nc} · g_{l,sk}) (s_w² a_{l−1,n} · a_{l−1,s} + s_b²)`, i.e. two
//! thin GEMMs per layer against the sampled rows.

use super::signals::Signals;
use crate::Real;
use crate::linalg::par;
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef};

/// The rows `rows` of a row-major `_ × w` buffer, as a row-major `|rows| × w` buffer.
fn gather_rows<T: Real>(src: &[T], w: usize, rows: impl Iterator<Item = usize>) -> Vec<T> {
    let mut out = Vec::new();
    for r in rows {
        out.extend_from_slice(&src[r * w..(r + 1) * w]);
    }
    out
}

/// `Θ[:, S]` from an MLP's signals on the whole batch: per layer, the activation
/// cross-Gram `K_A = s_w² A A_Sᵀ + s_b²` (`N × |S|`) and, below the read-out layer, the
/// signal cross-Gram `G G_Sᵀ` (`(N·C) × (|S|·C)`), multiplied entrywise
/// (`Θ[nc, jk] += (G G_Sᵀ)[nc, jk] · K_A[n, j]`); the read-out layer's signals are `e_c`, so
/// its term is `δ_{ck} K_A[n, j]`.
///
/// # Panics
/// If a sample index is `≥ N`.
#[track_caller]
pub fn structured_columns<T: Real>(s: &Signals<T>, samples: &[usize]) -> Mat<T> {
    let (n, c) = (s.n, s.c);
    assert!(
        samples.iter().all(|&j| j < n),
        "ntk_columns: a sample index is ≥ N = {n}"
    );
    let (m, ms) = (n * c, samples.len() * c);
    let mut out = Mat::<T>::zeros(m, ms);
    let nl = s.layers.len();
    for (l, layer) in s.layers.iter().enumerate() {
        let (fi, fo) = (layer.fan_in, layer.fan_out);
        let a = MatRef::from_row_major_slice(&s.acts[l], n, fi);
        let a_s = gather_rows(&s.acts[l], fi, samples.iter().copied());
        let a_s = MatRef::from_row_major_slice(&a_s, samples.len(), fi);
        let mut ka = Mat::<T>::zeros(n, samples.len());
        let sw2 = T::from_f64(layer.w_scale * layer.w_scale);
        matmul(ka.as_mut(), Accum::Replace, a, a_s.transpose(), sw2, par());
        let b2 = T::from_f64(layer.b_scale * layer.b_scale);
        if l == nl - 1 {
            for j in 0..samples.len() {
                for i in 0..n {
                    let v = ka[(i, j)] + b2;
                    for k in 0..c {
                        out[(i * c + k, j * c + k)] += v;
                    }
                }
            }
            continue;
        }
        let g = MatRef::from_row_major_slice(&s.grads[l], m, fo);
        let rows = samples.iter().flat_map(|&j| (j * c)..(j * c + c));
        let g_s = gather_rows(&s.grads[l], fo, rows);
        let g_s = MatRef::from_row_major_slice(&g_s, ms, fo);
        let mut gg = Mat::<T>::zeros(m, ms);
        matmul(
            gg.as_mut(),
            Accum::Replace,
            g,
            g_s.transpose(),
            T::one_impl(),
            par(),
        );
        for jj in 0..ms {
            for i in 0..m {
                out[(i, jj)] += gg[(i, jj)] * (ka[(i / c, jj / c)] + b2);
            }
        }
    }
    out
}

/// `diag Θ` from an MLP's signals: `Θ[nc, nc] = Σ_l ‖g_{l,nc}‖² (s_w² ‖a_{l−1,n}‖² + s_b²)`.
pub fn structured_diagonal<T: Real>(s: &Signals<T>) -> Vec<T> {
    let m = s.n * s.c;
    let mut d = vec![T::zero_impl(); m];
    for (l, layer) in s.layers.iter().enumerate() {
        let (sw2, sb2) = (
            T::from_f64(layer.w_scale * layer.w_scale),
            T::from_f64(layer.b_scale * layer.b_scale),
        );
        for (r, dr) in d.iter_mut().enumerate() {
            let g = &s.grads[l][r * layer.fan_out..(r + 1) * layer.fan_out];
            let n = r / s.c;
            let a = &s.acts[l][n * layer.fan_in..(n + 1) * layer.fan_in];
            *dr += T::dot(g, g) * (sw2 * T::dot(a, a) + sb2);
        }
    }
    d
}
