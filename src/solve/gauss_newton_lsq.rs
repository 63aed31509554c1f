//! Plain Gauss–Newton with a backtracking line search (see [`GaussNewton`]).

use super::least_squares::LeastSquares;
use super::lsq_common::{
    Evaluator, Observer, Progress, Tolerances, add_step, bad_input, check_input,
    gradient_and_column_norms, gradient_cosine, norm2,
};
use super::report::{IterationInfo, Report, Termination};
use crate::Real;
use faer::Mat;
use std::ops::ControlFlow;
use std::time::Instant;

/// Armijo sufficient-decrease constant.
const ARMIJO_C1: f64 = 1e-4;
/// Halvings of the step before the line search gives up.
const MAX_HALVINGS: usize = 40;

/// Gauss–Newton solver for [`LeastSquares`] problems.
///
/// Each iteration solves the linear least-squares problem `min_δ ‖J δ + r‖` for its
/// **minimum-norm** solution `δ = −J⁺ r`, through a thin SVD of `J` (in f64) with singular
/// values below `rcond · σ_max` treated as zero, so rank-deficient and underdetermined
/// Jacobians are handled. The step is then shortened by backtracking, `α ∈ {1, ½, ¼, …}`,
/// until the Armijo condition `F(θ + αδ) ≤ F(θ) + 10⁻⁴ α gᵀδ` holds (`g = Jᵀr`); non-finite
/// trial residuals also halve `α`. With the line search off, every full step is taken.
///
/// Gauss–Newton converges quadratically on zero-residual problems with a full-rank Jacobian
/// and is the baseline against which [`LevenbergMarquardt`](super::LevenbergMarquardt)'s
/// damping is judged; on large-residual or badly scaled problems LM is the robust choice.
/// For networks, the [damped step](crate::maths#damped-gauss-newton-step) is `GaussNewtonStep` / `gauss_newton_step`.
///
/// Defaults: `ftol = xtol = √ε` of `T`, `gtol = 0`, cost tolerance 0,
/// `max_evaluations = 100 (n + 1)`, line search on, `rcond = ε_f64 · max(m, n)`.
/// The meaning of each tolerance is the same as for
/// [`LevenbergMarquardt`](super::LevenbergMarquardt) (see [`Termination::Converged`]).
///
/// ```
/// use itlin::solve::{GaussNewton, test_problems};
/// let problem = test_problems::by_name("helical_valley").unwrap();
/// let mut theta = problem.start();
/// let report = GaussNewton::new().minimize(&problem, &mut theta);
/// assert!(report.cost < 1e-20, "{report}");
/// ```
#[derive(Debug)]
pub struct GaussNewton<T: Real = f64> {
    tol: Tolerances,
    line_search: bool,
    rcond: Option<f64>,
    observer: Observer<T>,
}

impl<T: Real> Default for GaussNewton<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Real> GaussNewton<T> {
    /// A solver with the default settings.
    pub fn new() -> Self {
        GaussNewton {
            tol: Tolerances::new(),
            line_search: true,
            rcond: None,
            observer: Observer::none(),
        }
    }

    /// Relative-reduction tolerance (default `√ε` of `T`): stop when the actual and the
    /// predicted (linear-model) relative reductions of the cost are both `≤ ftol`.
    pub fn with_ftol(mut self, ftol: f64) -> Self {
        self.tol.ftol = Some(ftol);
        self
    }

    /// Relative-step tolerance (default `√ε` of `T`): stop when `‖αδ‖ ≤ xtol · ‖θ‖`.
    pub fn with_xtol(mut self, xtol: f64) -> Self {
        self.tol.xtol = Some(xtol);
        self
    }

    /// Gradient tolerance (default 0), on MINPACK's scaled gradient (cosine) measure.
    pub fn with_gtol(mut self, gtol: f64) -> Self {
        self.tol.gtol = gtol;
        self
    }

    /// Absolute cost tolerance (default 0): stop when `½‖r‖² ≤ cost`.
    pub fn with_cost_tolerance(mut self, cost: f64) -> Self {
        self.tol.cost = cost;
        self
    }

    /// Budget of residual evaluations, the start included (default `100 (n + 1)`).
    pub fn with_max_evaluations(mut self, max_evaluations: usize) -> Self {
        self.tol.max_evaluations = Some(max_evaluations);
        self
    }

    /// Backtracking (Armijo) line search on or off (default on).
    pub fn with_line_search(mut self, line_search: bool) -> Self {
        self.line_search = line_search;
        self
    }

    /// Relative cut-off for singular values of `J` in the minimum-norm solve
    /// (default `ε_f64 · max(m, n)`).
    pub fn with_rcond(mut self, rcond: f64) -> Self {
        self.rcond = Some(rcond);
        self
    }

    /// A callback after every trial point (each line-search trial); `ControlFlow::Break(())`
    /// stops the solve with [`Termination::User`]. `IterationInfo::lambda` holds the step
    /// length `α`.
    pub fn with_observer(
        mut self,
        observer: impl FnMut(&IterationInfo<'_, T>) -> ControlFlow<()> + Send + 'static,
    ) -> Self {
        self.observer = Observer::new(Box::new(observer));
        self
    }

    /// Minimises `½‖r(θ)‖²` from `theta`, which holds the best point found on return.
    /// Never panics on numerical trouble or a `theta` of the wrong length.
    pub fn minimize<P: LeastSquares<T> + ?Sized>(&self, problem: &P, theta: &mut [T]) -> Report {
        if let Err(msg) = check_input(problem, theta) {
            return bad_input(msg);
        }
        let (m, n) = (problem.n_residuals(), problem.n_params());
        let ftol = self.tol.ftol::<T>();
        let xtol = self.tol.xtol::<T>();
        let max_fev = self.tol.max_evaluations(n).max(1);
        let rcond = self.rcond.unwrap_or(f64::EPSILON * m.max(n).max(1) as f64);
        let converged = |ftol, xtol, gtol, cost| Termination::Converged {
            ftol,
            xtol,
            gtol,
            cost,
        };

        let mut prog = Progress::new();
        let mut ev = Evaluator::new(problem);
        let mut r = vec![0.0; m];
        let mut cost = ev.residuals(theta, &mut r);
        prog.initial_cost = cost;
        if !cost.is_finite() {
            return prog.finish(
                Termination::NonFinite,
                super::lsq_common::half_norm2(&r),
                &ev,
            );
        }
        if cost <= self.tol.cost {
            return prog.finish(converged(false, false, false, true), cost, &ev);
        }
        if n == 0 {
            return prog.finish(converged(false, false, true, false), cost, &ev);
        }
        let mut j = Mat::<f64>::zeros(m, n);
        let mut trial = theta.to_vec();
        let mut r_new = vec![0.0; m];
        let mut step = vec![0.0; n];
        loop {
            if !ev.jacobian(theta, &mut j) {
                return prog.finish(Termination::NonFinite, cost, &ev);
            }
            let (g, colnorm) = gradient_and_column_norms(&j, &r);
            if gradient_cosine(&g, &colnorm, (2.0 * cost).sqrt()) <= self.tol.gtol {
                return prog.finish(converged(false, false, true, false), cost, &ev);
            }
            let gnorm = g.iter().fold(0.0f64, |a, x| a.max(x.abs()));
            let t0 = Instant::now();
            let Some((p, jp_norm2)) = min_norm_step(&j, &r, rcond) else {
                prog.t_lin += t0.elapsed();
                return prog.finish(Termination::Stalled, cost, &ev);
            };
            prog.t_lin += t0.elapsed();
            let slope: f64 = g.iter().zip(&p).map(|(a, b)| a * b).sum();
            let xnorm = norm2(&theta.iter().map(|t| t.to_f64()).collect::<Vec<_>>());

            let mut alpha = 1.0f64;
            let mut halvings = 0;
            loop {
                if ev.nfev >= max_fev {
                    return prog.finish(Termination::MaxEvaluations, cost, &ev);
                }
                for (s, pk) in step.iter_mut().zip(&p) {
                    *s = alpha * pk;
                }
                add_step(theta, &step, &mut trial);
                let c = ev.residuals(&trial, &mut r_new);
                prog.iterations += 1;
                prog.lambdas.push(alpha);
                let ok =
                    c.is_finite() && (!self.line_search || c <= cost + ARMIJO_C1 * alpha * slope);
                // Predicted reduction of the linear model along αδ.
                let pred = -(alpha * slope) - 0.5 * alpha * alpha * jp_norm2;
                let actred = cost - c;
                let step_norm = alpha * norm2(&p);
                let ftol_ok = c.is_finite() && actred.abs() <= ftol * cost && pred <= ftol * cost;
                let xtol_ok = step_norm <= xtol * xnorm;
                if ok {
                    theta.copy_from_slice(&trial);
                    std::mem::swap(&mut r, &mut r_new);
                    cost = c;
                    prog.accepted += 1;
                }
                let info = IterationInfo {
                    iteration: prog.iterations,
                    cost,
                    trial_cost: c,
                    lambda: alpha,
                    rho: if pred > 0.0 { actred / pred } else { f64::NAN },
                    step_norm,
                    gradient_norm: gnorm,
                    accepted: ok,
                    evaluations: ev.nfev,
                    jacobian_evaluations: ev.njev,
                    theta,
                };
                if self.observer.call(&info) {
                    return prog.finish(Termination::User, cost, &ev);
                }
                let small = cost <= self.tol.cost;
                if small || (ok && (ftol_ok || xtol_ok)) {
                    return prog.finish(converged(ftol_ok, xtol_ok, false, small), cost, &ev);
                }
                if ok {
                    break;
                }
                halvings += 1;
                if halvings > MAX_HALVINGS || xtol_ok {
                    return prog.finish(Termination::Stalled, cost, &ev);
                }
                alpha *= 0.5;
            }
        }
    }
}

/// `δ = −J⁺ r` by a thin SVD (singular values `≤ rcond σ_max` dropped), and `‖Jδ‖²`.
/// `None` if the SVD fails or the step is not finite.
fn min_norm_step(j: &Mat<f64>, r: &[f64], rcond: f64) -> Option<(Vec<f64>, f64)> {
    let (m, n) = (j.nrows(), j.ncols());
    let svd = j.thin_svd().ok()?;
    let (u, v) = (svd.U(), svd.V());
    let s = svd.S().column_vector();
    let k = m.min(n);
    let smax = (0..k).map(|i| s[i]).fold(0.0f64, f64::max);
    let mut p = vec![0.0; n];
    let mut jp2 = 0.0;
    for i in 0..k {
        // (NaN singular values are skipped too.)
        if s[i].partial_cmp(&(rcond * smax)) != Some(std::cmp::Ordering::Greater) {
            continue;
        }
        let c: f64 = (0..m).map(|row| u[(row, i)] * r[row]).sum();
        jp2 += c * c;
        let coef = -c / s[i];
        for (row, pk) in p.iter_mut().enumerate() {
            *pk += coef * v[(row, i)];
        }
    }
    p.iter().all(|x| x.is_finite()).then_some((p, jp2))
}
