//! The first-order update rules as the backends apply them: SGD (plain, momentum,
//! Nesterov) and Adam, each with optional weight decay, skipped whole when the gradient is
//! not finite. The per-step scalars are computed once on the host ([`AdamStep::new`]), so
//! every backend rounds them the same way.

use crate::Real;

/// Which SGD variant an update applies (velocity `v`, step size `η`, momentum `μ`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgdMode {
    /// `θ ← θ − η g`.
    Plain,
    /// `v ← μ v + g`, `θ ← θ − η v`.
    Momentum,
    /// `v ← μ v + g`, `θ ← θ − η (g + μ v)`.
    Nesterov,
}

/// The per-step scalars of Adam at update number `t` (1-based), rounded to `T` from f64:
/// `step = η / (1 − β₁ᵗ)`, `inv_bc2 = 1 / (1 − β₂ᵗ)`, and `β₁, β₂, 1 − β₁, 1 − β₂, ε`.
/// The update is `m ← β₁ m + (1 − β₁) g`, `v ← β₂ v + (1 − β₂) g²`,
/// `θ ← θ − step · m / (√(v · inv_bc2) + ε)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep<T> {
    /// `β₁`.
    pub b1: T,
    /// `β₂`.
    pub b2: T,
    /// `1 − β₁` (rounded from f64).
    pub one_b1: T,
    /// `1 − β₂` (rounded from f64).
    pub one_b2: T,
    /// `η / (1 − β₁ᵗ)`.
    pub step: T,
    /// `1 / (1 − β₂ᵗ)`.
    pub inv_bc2: T,
    /// `ε`.
    pub eps: T,
}

impl<T: Real> AdamStep<T> {
    /// The scalars of update `t ≥ 1` with step size `lr`.
    pub fn new(beta1: f64, beta2: f64, eps: f64, lr: f64, t: u64) -> Self {
        let t = i32::try_from(t).unwrap_or(i32::MAX);
        let bc1 = 1.0 - beta1.powi(t);
        let bc2 = 1.0 - beta2.powi(t);
        Self {
            b1: T::from_f64(beta1),
            b2: T::from_f64(beta2),
            one_b1: T::from_f64(1.0 - beta1),
            one_b2: T::from_f64(1.0 - beta2),
            step: T::from_f64(lr / bc1),
            inv_bc2: T::from_f64(1.0 / bc2),
            eps: T::from_f64(eps),
        }
    }
}

/// One first-order update rule with its step's scalars.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Update<T> {
    /// SGD: the variant, step size `η` and momentum `μ` (unused by [`SgdMode::Plain`]).
    Sgd {
        /// The variant.
        mode: SgdMode,
        /// `η`.
        eta: T,
        /// `μ`.
        mu: T,
    },
    /// Adam with the scalars of this step.
    Adam(AdamStep<T>),
}

/// SGD on host slices: `θ ← θ − η g` ([`SgdMode::Plain`], by the SIMD `axpy`), or with the
/// velocity `m`: `m ← μ m + g`, then `θ ← θ − η m` (momentum) or `θ ← θ − η (g + μ m)`
/// (Nesterov), entry by entry.
///
/// # Panics
/// If the lengths differ or a momentum variant gets no velocity.
#[track_caller]
pub fn sgd_host<T: Real>(
    theta: &mut [T],
    grad: &[T],
    m: Option<&mut [T]>,
    mode: SgdMode,
    eta: T,
    mu: T,
) {
    assert_eq!(
        grad.len(),
        theta.len(),
        "sgd: gradient and θ lengths differ"
    );
    match (mode, m) {
        (SgdMode::Plain, _) => T::axpy(-eta, grad, theta),
        (_, None) => panic!("sgd: {mode:?} needs the velocity buffer"),
        (_, Some(m)) => {
            assert_eq!(m.len(), theta.len(), "sgd: velocity and θ lengths differ");
            let nesterov = mode == SgdMode::Nesterov;
            for ((th, vi), &g) in theta.iter_mut().zip(m.iter_mut()).zip(grad) {
                *vi = mu * *vi + g;
                let d = if nesterov { g + mu * *vi } else { *vi };
                *th -= eta * d;
            }
        }
    }
}

/// Adam on host slices (see [`AdamStep`]), entry by entry.
///
/// # Panics
/// If the lengths differ.
#[track_caller]
pub fn adam_host<T: Real>(theta: &mut [T], grad: &[T], m: &mut [T], v: &mut [T], s: AdamStep<T>) {
    let p = theta.len();
    assert!(
        grad.len() == p && m.len() == p && v.len() == p,
        "adam: gradient, moments and θ lengths differ"
    );
    for i in 0..p {
        let g = grad[i];
        m[i] = s.b1 * m[i] + s.one_b1 * g;
        v[i] = s.b2 * v[i] + s.one_b2 * g * g;
        let denom = (v[i] * s.inv_bc2).sqrt() + s.eps;
        theta[i] -= s.step * m[i] / denom;
    }
}
