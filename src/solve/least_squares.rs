//! The generic nonlinear least-squares problem: residuals and their Jacobian.
//!
//! A [`LeastSquares`] problem is what [`LevenbergMarquardt`](super::LevenbergMarquardt) and
//! [`GaussNewton`](super::GaussNewton) minimise: the cost
//!
//! ```text
//! F(θ) = ½ ‖r(θ)‖²,   r: R^n → R^m,   J(θ) = ∂r/∂θ ∈ R^{m×n}.
//! ```
//!
//! Nothing here knows about networks: any model with residuals and a Jacobian can be fitted.
//! [`check_jacobian`] compares a problem's analytic Jacobian with central finite differences,
//! which is the first thing to run on a new problem.

use crate::Real;
use faer::{Mat, MatMut};

/// A nonlinear least-squares problem `min_θ ½‖r(θ)‖²` with an analytic Jacobian.
///
/// Both methods take `&self`, so a problem is immutable while it is being solved; use interior
/// mutability (a `Cell`, a `Mutex`) for caches. The solvers never call the methods with slices or
/// matrices of any other shape than `n_params` / `n_residuals`.
///
/// Values that are not finite (NaN, ±∞) are allowed as output: the solvers treat them as a
/// failed evaluation (a rejected step, or [`Termination::NonFinite`](super::Termination) at the
/// starting point), never as a panic.
///
/// ```
/// use itlin::solve::{LeastSquares, LevenbergMarquardt};
/// use faer::MatMut;
///
/// /// Fit y = a·exp(b·t) to three points.
/// struct Exp;
/// const T: [f64; 3] = [0.0, 1.0, 2.0];
/// const Y: [f64; 3] = [2.0, 2.0 * 1.5, 2.0 * 2.25];
/// impl LeastSquares<f64> for Exp {
///     fn n_params(&self) -> usize { 2 }
///     fn n_residuals(&self) -> usize { 3 }
///     fn residuals(&self, p: &[f64], r: &mut [f64]) {
///         for i in 0..3 { r[i] = p[0] * (p[1] * T[i]).exp() - Y[i]; }
///     }
///     fn jacobian(&self, p: &[f64], mut j: MatMut<'_, f64>) {
///         for i in 0..3 {
///             let e = (p[1] * T[i]).exp();
///             j[(i, 0)] = e;
///             j[(i, 1)] = p[0] * T[i] * e;
///         }
///     }
/// }
/// let mut theta = vec![1.0, 0.0];
/// let report = LevenbergMarquardt::new().minimize(&Exp, &mut theta);
/// assert!(report.termination.is_converged());
/// assert!((theta[0] - 2.0).abs() < 1e-6 && (theta[1] - 1.5f64.ln()).abs() < 1e-6);
/// ```
pub trait LeastSquares<T: Real> {
    /// Number of parameters `n` (the length of `θ`).
    fn n_params(&self) -> usize;
    /// Number of residuals `m` (the length of `r`). May be smaller than `n_params`.
    fn n_residuals(&self) -> usize;
    /// Writes `r(θ)` into `r` (length `n_residuals`). `theta` has length `n_params`.
    fn residuals(&self, theta: &[T], r: &mut [T]);
    /// Writes `J(θ) = ∂r/∂θ` into `j`, an `n_residuals × n_params` matrix: `j[(i, k)] = ∂rᵢ/∂θₖ`.
    ///
    /// `j` arrives zero-filled, so sparse Jacobians only need to write their non-zeros.
    fn jacobian(&self, theta: &[T], j: MatMut<'_, T>);
}

impl<T: Real, P: LeastSquares<T> + ?Sized> LeastSquares<T> for &P {
    fn n_params(&self) -> usize {
        (**self).n_params()
    }
    fn n_residuals(&self) -> usize {
        (**self).n_residuals()
    }
    fn residuals(&self, theta: &[T], r: &mut [T]) {
        (**self).residuals(theta, r)
    }
    fn jacobian(&self, theta: &[T], j: MatMut<'_, T>) {
        (**self).jacobian(theta, j)
    }
}

/// Result of [`check_jacobian`]: the analytic and finite-difference Jacobians and their
/// largest discrepancy.
#[derive(Clone, Debug)]
pub struct JacobianCheck {
    /// The problem's analytic Jacobian (f64), `m × n`.
    pub analytic: Mat<f64>,
    /// The central finite-difference Jacobian (f64), `m × n`.
    pub finite_difference: Mat<f64>,
    /// `max_{i,k} max(0, |J_ik − J̃_ik| − νᵢₖ) / (1 + |J̃_ik|)`: a mixed absolute/relative
    /// error (entries near zero are compared absolutely, large ones relatively) after the
    /// rounding allowance `νᵢₖ = 4ε (|rᵢ(θ + h eₖ)| + |rᵢ(θ − h eₖ)|) / 2h` of the difference
    /// quotient, so residuals with large cancelling terms are not flagged (`∞` if any entry is
    /// NaN).
    pub max_error: f64,
    /// The `(row, column)` where `max_error` occurs (`(0, 0)` for an empty Jacobian).
    pub worst: (usize, usize),
}

/// Compares the analytic Jacobian of `problem` at `theta` with central finite differences.
///
/// Column `k` of the finite-difference Jacobian is `(r(θ + h eₖ) − r(θ − h eₖ)) / (2h)` with
/// `h = rel_step · max(|θₖ|, 1)`; the truncation error is `O(h²)` and the rounding error
/// `O(ε/h)`, so `rel_step ≈ ε^{1/3}` (about `6e-6` in f64) balances the two and gives roughly
/// 10 correct digits on a smooth problem. Evaluations are done in `T`.
///
/// # Panics
/// If `theta.len() != problem.n_params()` (the message names both lengths).
#[track_caller]
pub fn check_jacobian<T: Real, P: LeastSquares<T> + ?Sized>(
    problem: &P,
    theta: &[T],
    rel_step: f64,
) -> JacobianCheck {
    let n = problem.n_params();
    let m = problem.n_residuals();
    assert!(
        theta.len() == n,
        "check_jacobian: theta has length {} but the problem has n_params = {n}",
        theta.len()
    );
    let mut jt = Mat::<T>::zeros(m, n);
    problem.jacobian(theta, jt.as_mut());
    let analytic = Mat::from_fn(m, n, |i, k| jt[(i, k)].to_f64());

    let mut fd = Mat::<f64>::zeros(m, n);
    // Rounding allowance of each finite difference: 4ε (|r⁺ᵢ| + |r⁻ᵢ|) / (h⁺ + h⁻).
    let mut noise = Mat::<f64>::zeros(m, n);
    let eps = T::EPSILON.to_f64();
    let mut x = theta.to_vec();
    let mut rp = vec![T::zero_impl(); m];
    let mut rm = vec![T::zero_impl(); m];
    for k in 0..n {
        let xk = theta[k].to_f64();
        let h = rel_step * xk.abs().max(1.0);
        x[k] = T::from_f64(xk + h);
        let hp = x[k].to_f64() - xk;
        problem.residuals(&x, &mut rp);
        x[k] = T::from_f64(xk - h);
        let hm = xk - x[k].to_f64();
        problem.residuals(&x, &mut rm);
        x[k] = theta[k];
        for i in 0..m {
            fd[(i, k)] = (rp[i].to_f64() - rm[i].to_f64()) / (hp + hm);
            noise[(i, k)] = 4.0 * eps * (rp[i].to_f64().abs() + rm[i].to_f64().abs()) / (hp + hm);
        }
    }
    let mut max_error = 0.0f64;
    let mut worst = (0, 0);
    for k in 0..n {
        for i in 0..m {
            let diff = ((analytic[(i, k)] - fd[(i, k)]).abs() - noise[(i, k)]).max(0.0);
            let e = diff / (1.0 + fd[(i, k)].abs());
            // NaN (a non-finite entry on either side) counts as an infinite error.
            let e = if e.is_nan() { f64::INFINITY } else { e };
            if e > max_error {
                max_error = e;
                worst = (i, k);
            }
        }
    }
    JacobianCheck {
        analytic,
        finite_difference: fd,
        max_error,
        worst,
    }
}
