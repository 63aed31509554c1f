//! The empirical neural tangent kernel `Θ = J Jᵀ` (`(N·C) × (N·C)`, sample-major rows), its
//! products, diagonal, cross-kernels, and the kernel distance.
//!
//! For an [`Mlp`] the structured form
//! `Θ = Σ_l (G_l G_lᵀ) ⊙ ((s_w² A_{l−1} A_{l−1}ᵀ + s_b²) ⊗ 1_{C×C})`
//! needs one Gram of backprop signals and one Gram of activations per layer: about
//! `P / Σ_l fan_out_l` times fewer flops than `J Jᵀ` and no `J` in memory. The read-out
//! layer's signals are `e_c`, so its term is `δ_{cc'} (s_w² a_n·a_{n'} + s_b²)` with no
//! `M × M` product at all. [`Method`], [`explicit_lower`], [`structured_lower`] and
//! [`flop_estimates`] live with the [`Model`] trait (whose `ntk_lower` uses them) and are
//! re-exported here.

use crate::Real;
use crate::linalg::{frobenius, mirror_lower, par};
use crate::model::{Mlp, Model, Signals};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef};

pub use crate::model::mlp::flop_estimates;
pub use crate::model::ntk_lower::{Method, explicit_lower, structured_lower};

/// The empirical NTK `Θ(X, X; θ)`, full symmetric `(N·C) × (N·C)`.
///
/// # Panics
/// If `θ` or `X` do not fit the model.
#[track_caller]
pub fn empirical<T: Real, M: Model<T> + ?Sized>(
    model: &M,
    theta: &[T],
    x: MatRef<'_, T>,
    method: Method,
) -> Mat<T> {
    let mut k = model.ntk_lower(theta, x, method);
    mirror_lower(k.as_mut());
    k
}

/// The cross-kernel `Θ(X₁, X₂) = J(X₁) J(X₂)ᵀ`, `(N₁·C) × (N₂·C)`, structured; used to
/// predict on test points with a kernel solution.
///
/// # Panics
/// If `θ` or either input does not fit the MLP.
#[track_caller]
pub fn cross<T: Real>(mlp: &Mlp, theta: &[T], x1: MatRef<'_, T>, x2: MatRef<'_, T>) -> Mat<T> {
    let s1 = mlp.signals(theta, x1);
    let s2 = mlp.signals(theta, x2);
    let (n1, n2, c) = (s1.n, s2.n, s1.c);
    let mut out = Mat::<T>::zeros(n1 * c, n2 * c);
    for (l, layer) in s1.layers.iter().enumerate() {
        let a1 = MatRef::from_row_major_slice(&s1.acts[l], n1, layer.fan_in);
        let a2 = MatRef::from_row_major_slice(&s2.acts[l], n2, layer.fan_in);
        let mut ka = Mat::<T>::zeros(n1, n2);
        matmul(
            ka.as_mut(),
            Accum::Replace,
            a1,
            a2.transpose(),
            T::from_f64(layer.w_scale * layer.w_scale),
            par(),
        );
        let b2 = T::from_f64(layer.b_scale * layer.b_scale);
        let g1 = MatRef::from_row_major_slice(&s1.grads[l], n1 * c, layer.fan_out);
        let g2 = MatRef::from_row_major_slice(&s2.grads[l], n2 * c, layer.fan_out);
        let mut gg = Mat::<T>::zeros(n1 * c, n2 * c);
        matmul(
            gg.as_mut(),
            Accum::Replace,
            g1,
            g2.transpose(),
            T::one_impl(),
            par(),
        );
        for j in 0..n2 * c {
            for i in 0..n1 * c {
                out[(i, j)] += gg[(i, j)] * (ka[(i / c, j / c)] + b2);
            }
        }
    }
    out
}

/// `Θ v = J (Jᵀ v)` without forming Θ or J: one VJP and one JVP. `v` and the result are
/// vectors of length `N·C` in sample-major order.
///
/// # Panics
/// If `v.len() != N·C` or `θ`, `X` do not fit the model.
#[track_caller]
pub fn ntk_vector_product<T: Real, M: Model<T> + ?Sized>(
    model: &M,
    theta: &[T],
    x: MatRef<'_, T>,
    v: &[T],
) -> Vec<T> {
    let (n, c) = (x.nrows(), model.n_outputs());
    assert_eq!(
        v.len(),
        n * c,
        "ntk_vector_product: v has length {}, N·C = {}",
        v.len(),
        n * c
    );
    let u = MatRef::from_row_major_slice(v, n, c);
    let jtv = model.vjp(theta, x, u);
    let (_, jv) = model.jvp(theta, x, &jtv);
    let mut out = Vec::with_capacity(n * c);
    for i in 0..n {
        for k in 0..c {
            out.push(jv[(i, k)]);
        }
    }
    out
}

/// The diagonal of Θ: `Θ[nc, nc] = Σ_l ‖g_{l,nc}‖² (s_w² ‖a_{l−1,n}‖² + s_b²)`.
pub fn diagonal<T: Real>(s: &Signals<T>) -> Vec<T> {
    crate::model::ntk_columns::structured_diagonal(s)
}

/// `tr Θ = Σ_i Θ_ii` (the squared Frobenius norm of `J`), in f64.
pub fn trace<T: Real>(s: &Signals<T>) -> f64 {
    diagonal(s).iter().map(|x| x.to_f64()).sum()
}

/// Kernel distance `d(Θ₁, Θ₂) = 1 − ⟨Θ₁, Θ₂⟩_F / (‖Θ₁‖_F ‖Θ₂‖_F)` (0 for parallel kernels,
/// 1 for orthogonal ones). Returns NaN if either kernel is zero.
///
/// # Panics
/// If the kernels have different shapes.
#[track_caller]
pub fn kernel_distance<T: Real>(a: MatRef<'_, T>, b: MatRef<'_, T>) -> f64 {
    assert!(
        a.nrows() == b.nrows() && a.ncols() == b.ncols(),
        "kernel_distance: {}×{} and {}×{}",
        a.nrows(),
        a.ncols(),
        b.nrows(),
        b.ncols()
    );
    let (ab, na, nb) = frobenius(a, b);
    if na == 0.0 || nb == 0.0 {
        return f64::NAN;
    }
    1.0 - ab / (na * nb)
}
