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
use crate::backend::cpu_ntk::structured_lower_into;
use crate::linalg::gram_lower;
use faer::Mat;

/// How to compute the empirical NTK.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Method {
    /// `J Jᵀ` from the explicit Jacobian (symmetric rank-`P` update, lower half).
    Explicit,
    /// Per-layer Grams ([structured NTK](crate::maths#structured-ntk)); only for models that
    /// expose their layer structure ([`Mlp`](super::Mlp), and [`Network`](super::Network),
    /// which picks per layer between Grams and `J_l J_lᵀ`); other models fall back to
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

/// The structured NTK (lower half only) from an MLP's signals.
pub fn structured_lower<T: Real>(s: &Signals<T>) -> Mat<T> {
    let m = s.n * s.c;
    let mut theta = Mat::<T>::zeros(m, m);
    structured_lower_into(theta.as_mut(), &s.acts, &s.grads, &s.layers, s.n, s.c);
    theta
}
