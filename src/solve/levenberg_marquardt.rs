//! Levenberg–Marquardt for generic nonlinear least squares (see [`LevenbergMarquardt`]).

use super::least_squares::LeastSquares;
use super::lm_linear::{Linearisation, acceleration};
use super::lsq_common::{
    Evaluator, Observer, Progress, Tolerances, add_step, bad_input, check_input, gradient_cosine,
    half_norm2, norm2,
};
use super::report::{IterationInfo, Report, Termination};
use crate::Real;
use faer::Mat;
use std::ops::ControlFlow;
use std::time::Instant;

/// Gain ratio above which a step is accepted (MINPACK's `p0001`).
const ACCEPT_RHO: f64 = 1e-4;
/// Gain ratio below which a geodesic-acceleration correction of the trial step is tried.
const ACCEL_RHO: f64 = 0.5;
/// Largest `2‖D a‖ / ‖D v‖` for which the corrected step `v + a/2` is tried (Transtrum &
/// Sethna's `α`).
const ACCEL_ALPHA: f64 = 0.75;
/// After a trial with non-finite residuals the next scaled step is at most this fraction of
/// the failed one.
const NONFINITE_SHRINK: f64 = 0.1;
/// Damping beyond which the solve is declared stalled.
const LAMBDA_MAX: f64 = 1e300;

/// Levenberg–Marquardt solver for [`LeastSquares`] problems.
///
/// # Algorithm
///
/// At the current point `θ` with residuals `r` and Jacobian `J` (converted to f64), each trial
/// step solves the damped, scaled linear least-squares problem
///
/// ```text
/// δ(λ) = argmin_δ ½‖J δ + r‖² + ½ λ ‖D δ‖²,   i.e.   (JᵀJ + λ DᵀD) δ = −Jᵀr,
/// ```
///
/// **never by forming `JᵀJ`**: once per Jacobian, a Householder QR of the augmented matrix
/// `[J | r] = Q [R | Qᵀr]` gives the triangular `R` (`min(m,n) × n`) and `Qᵀr`; then every
/// `λ` costs one small QR of the `(min(m,n) + n) × n` stacked matrix `[R; √λ D]` and a
/// triangular solve (faer's QR least squares). Conditioning is that of `J`, not of `JᵀJ`; the
/// stacked matrix has full column rank for any `λ > 0`, so rank-deficient or
/// underdetermined (`m < n`) Jacobians need no special case. Everything is done in f64 even
/// for `f32` problems.
///
/// The gain ratio `ρ = (F(θ) − F(θ + δ)) / (L(0) − L(δ))` compares the actual reduction of
/// `F = ½‖r‖²` with the reduction predicted by the linear model, `½‖Jδ‖² + λ‖Dδ‖²`
/// (computed as `½‖Rδ‖² + λ‖Dδ‖²`, exact and non-negative). A step is accepted when
/// `ρ > 10⁻⁴`. Damping follows Nielsen (1999), as in Madsen, Nielsen & Tingleff,
/// *Methods for non-linear least squares problems* (2004), §3.2:
/// accepted: `λ ← λ · max(1/3, 1 − (2ρ − 1)³)`, `ν ← 2`; rejected: `λ ← λ ν`, `ν ← 2ν`.
/// The first `λ` is `τ · max_k (JᵀJ)_kk / D_k²` (`τ` = [`with_initial_lambda`], default
/// `1e-6`, so the first step is nearly a Gauss–Newton step).
///
/// Scaling `D` (Moré 1978, MINPACK `mode = 1`): `D_k` is the largest norm seen so far of
/// column `k` of `J` (1 for a column that has always been zero). This makes the method
/// invariant to a diagonal rescaling of the parameters; [`with_scaling(false)`] uses `D = I`
/// (Levenberg's original damping).
///
/// Non-finite trial residuals are a rejected step (λ goes up), not an error; a non-finite
/// Jacobian at a newly accepted point undoes the step and raises λ. Non-finite residuals or
/// Jacobian at the start end the solve with [`Termination::NonFinite`].
///
/// **Geodesic acceleration** (Transtrum & Sethna, *Improvements to the Levenberg–Marquardt
/// algorithm for nonlinear least-squares minimization*, 2012), used only where it pays: when
/// a trial step `v = δ(λ)` realises less than half of its predicted reduction (`ρ < ½`), the
/// residuals at the trial give the second directional derivative along `v` for free,
/// `r_vv ≈ 2 (r(θ + v) − r(θ) − J v)` (exact for residuals quadratic along `v`), and the
/// acceleration `a = −(JᵀJ + λDᵀD)⁻¹ Jᵀ r_vv` (one more small QR, of `[J; √λ D]`) bends the
/// step along the curved valley that made `ρ` small. If `2‖D a‖ ≤ 0.75 ‖D v‖` (Transtrum's
/// `α`: the correction is a correction, not a new direction) the corrected step `v + a/2` is
/// evaluated (one residual evaluation) and replaces `v` when its cost is lower; the gain ratio,
/// the acceptance and the λ update then use its cost against `v`'s predicted reduction. On the
/// NIST problems this turns the slow crawls of plain LM along the Lanczos and Chwirut valleys
/// (steps with `ρ ≈ 0.45` and λ stuck) into a few steps. [`with_acceleration(false)`] turns
/// it off.
///
/// **Non-finite trials** (overflow, a logarithm of a negative number) are a rejection, and
/// since such a trial says nothing about how far the model can be trusted, the next trial step
/// is also made at most a tenth of the failed one in the scaled norm `‖D δ‖`, by raising λ
/// (ν-doubling, no evaluations) until the step is that short. Plain ν-doubling from a tiny
/// λ shrinks a step along a direction of small curvature hardly at all, and the first finite
/// trial can then land in a far basin (BoxBOD from NIST's start 1 reaches the `b₂ → ∞`
/// plateau that way, as MINPACK does).
///
/// **Stopping tests**, on scaled quantities and at working precision by default (see
/// [`Termination::Converged`]):
///
/// - `ftol`: the predicted reduction of a step that is not dominated by the damping is tiny,
///   `L(0) − L(δ) ≤ ftol · F(θ)` (default `ftol = ε`): not even the undamped model can lower
///   the cost by one rounding unit, so no further step can be verified. Unlike MINPACK's
///   test, the actual reduction is not required to be that small too: near the minimum it is
///   rounding noise (for NIST's small-residual problems the cost is only known to about
///   `ε ‖y‖ / ‖r‖` relative, 1e-12 for Misra1b), which kept the MINPACK-style test from ever
///   firing and left the solve to stall on a run of noisy rejections.
/// - `xtol`: an accepted, undamped step is tiny, `‖D δ‖ ≤ xtol · ‖D θ‖` (default `10 ε`).
/// - `gtol`: the largest cosine between `r` and a column of `J` is `≤ gtol` (default `ε`).
/// - an absolute cost tolerance (default 0, so only an exactly zero residual);
/// - `Stalled` when the damping overflows or a step changes neither `θ` nor `F` at working
///   precision.
///
/// The budget, `1000 (n + 1)` residual evaluations by default (MINPACK's `lmder1` allows
/// `100 (n + 1)`; a residual evaluation is cheap next to what a wrong answer costs), bounds the
/// work, so a solve always ends. Two guards against false convergence (a short step because λ
/// is large, not because `θ` has converged, which a run of ν-doubling rejections produces
/// quickly): the step test (`xtol`) only counts for accepted steps, and neither `ftol` nor
/// `xtol` counts for a step whose predicted reduction is dominated by the damping,
/// `λ‖Dδ‖² > 100 ‖Jδ‖²`. Without them, Chebyquad from 10× its standard start "converged" at a
/// cost of 1e22 after one Jacobian; with them it runs on (and honestly runs out of
/// evaluations).
///
/// With these defaults every run of the 18 lower- and average-difficulty NIST StRD nonlinear
/// regression problems (36 runs) reaches the certified parameters to better than 1e-6
/// relative, in fewer residual evaluations in total than MINPACK's `lmder` with tolerances
/// 1e-15.
///
/// Why QR and not Cholesky of `JᵀJ + λDᵀD`: forming `JᵀJ` squares the condition number
/// (`κ(JᵀJ) = κ(J)²`), so with small `λ` on an ill-conditioned Jacobian (Watson, Osborne 2,
/// Powell's singular function near its solution) the normal equations lose twice the digits
/// that the QR route loses; the cost of the QR route is one `m × (n+1)` factorisation per Jacobian plus one `2n × n`
/// factorisation per λ, which is small next to the evaluations for the problems this driver
/// is for (`n` up to a few hundred). For network-sized problems use `NetworkLm`.
///
/// [`with_initial_lambda`]: LevenbergMarquardt::with_initial_lambda
/// [`with_scaling(false)`]: LevenbergMarquardt::with_scaling
/// [`with_acceleration(false)`]: LevenbergMarquardt::with_acceleration
///
/// # Settings
///
/// Defaults (`ε` is the machine epsilon of `T`: 2.2e-16 for f64, 1.2e-7 for f32):
///
/// | setting | default |
/// |---|---|
/// | [`with_ftol`](Self::with_ftol) | `ε`: predicted reduction of an undamped step `≤ ε · F` |
/// | [`with_xtol`](Self::with_xtol) | `10 ε`: accepted undamped step `‖Dδ‖ ≤ 10 ε ‖Dθ‖` |
/// | [`with_gtol`](Self::with_gtol) | `ε` (scaled gradient, the largest cosine between `r` and a column of `J`) |
/// | [`with_cost_tolerance`](Self::with_cost_tolerance) | 0 (only an exactly zero residual) |
/// | [`with_max_evaluations`](Self::with_max_evaluations) | `1000 (n + 1)` residual evaluations |
/// | [`with_initial_lambda`](Self::with_initial_lambda) | `τ = 1e-6` |
/// | [`with_scaling`](Self::with_scaling) | `true` (Moré's column-norm scaling) |
/// | [`with_acceleration`](Self::with_acceleration) | `true` (geodesic correction of steps with `ρ < ½`) |
///
/// ```
/// use itlin::solve::{LevenbergMarquardt, test_problems};
/// let problem = test_problems::by_name("rosenbrock").unwrap();
/// let mut theta = problem.start();
/// let report = LevenbergMarquardt::new().with_ftol(1e-12).minimize(&problem, &mut theta);
/// assert!(report.termination.is_converged());
/// assert!((theta[0] - 1.0).abs() < 1e-8 && (theta[1] - 1.0).abs() < 1e-8);
/// println!("{report}");
/// ```
#[derive(Debug)]
pub struct LevenbergMarquardt<T: Real = f64> {
    tol: Tolerances,
    tau: f64,
    scaling: bool,
    acceleration: bool,
    observer: Observer<T>,
}

impl<T: Real> Default for LevenbergMarquardt<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Real> LevenbergMarquardt<T> {
    /// A solver with the default settings (see the table on [`LevenbergMarquardt`]).
    pub fn new() -> Self {
        let eps = T::EPSILON.to_f64();
        LevenbergMarquardt {
            tol: Tolerances {
                ftol: Some(eps),
                xtol: Some(10.0 * eps),
                gtol: eps,
                ..Tolerances::new()
            },
            tau: 1e-6,
            scaling: true,
            acceleration: true,
            observer: Observer::none(),
        }
    }

    /// Relative-reduction tolerance: stop when a step that is not dominated by the damping
    /// predicts a reduction `L(0) − L(δ) ≤ ftol · F(θ)`. Default `ε` of `T` (working
    /// precision); `√ε` gives about half the digits in fewer evaluations.
    pub fn with_ftol(mut self, ftol: f64) -> Self {
        self.tol.ftol = Some(ftol);
        self
    }

    /// Relative-step tolerance: stop when an accepted, undamped step has
    /// `‖D δ‖ ≤ xtol · ‖D θ‖`. Default `10 ε` of `T`.
    pub fn with_xtol(mut self, xtol: f64) -> Self {
        self.tol.xtol = Some(xtol);
        self
    }

    /// Gradient tolerance: stop when the largest cosine between `r` and a column of `J` is
    /// `≤ gtol`. Default `ε` of `T`.
    pub fn with_gtol(mut self, gtol: f64) -> Self {
        self.tol.gtol = gtol;
        self
    }

    /// Absolute cost tolerance: stop when `½‖r‖² ≤ cost`. Default 0. Useful for zero-residual
    /// problems whose Jacobian is singular at the solution, where convergence is only linear
    /// and the relative tests never fire (Powell's singular function).
    pub fn with_cost_tolerance(mut self, cost: f64) -> Self {
        self.tol.cost = cost;
        self
    }

    /// Budget of residual evaluations (the starting point counts, and so does every
    /// geodesic-acceleration trial). Default `1000 (n + 1)`.
    pub fn with_max_evaluations(mut self, max_evaluations: usize) -> Self {
        self.tol.max_evaluations = Some(max_evaluations);
        self
    }

    /// Initial damping factor `τ`: the first `λ` is `τ · max_k (JᵀJ)_kk / D_k²` (so `τ` itself
    /// when scaling is on). Default `1e-6`: nearly a Gauss–Newton first step, which needed
    /// fewer evaluations than `1e-3` over the MGH set (1944 against 2031 from the standard
    /// starts, with the other defaults) and over the 36 NIST runs; use `1e-3`…`1` when the
    /// first steps are known to overshoot.
    pub fn with_initial_lambda(mut self, tau: f64) -> Self {
        self.tau = tau;
        self
    }

    /// Marquardt's diagonal scaling `D` from the Jacobian column norms (on by default);
    /// `false` uses `D = I`.
    pub fn with_scaling(mut self, scaling: bool) -> Self {
        self.scaling = scaling;
        self
    }

    /// Geodesic acceleration (on by default): when a trial step `v` gains less than half of
    /// its predicted reduction (`ρ < ½`), the second directional derivative of the residuals
    /// along `v`, read off that trial at no cost, gives a second-order correction `a`; the
    /// corrected step `v + a/2` costs one more residual evaluation and replaces `v` when it
    /// lowers the cost further. `false` gives plain Levenberg–Marquardt.
    pub fn with_acceleration(mut self, acceleration: bool) -> Self {
        self.acceleration = acceleration;
        self
    }

    /// A callback run after every trial step; returning `ControlFlow::Break(())` stops the
    /// solve with [`Termination::User`].
    pub fn with_observer(
        mut self,
        observer: impl FnMut(&IterationInfo<'_, T>) -> ControlFlow<()> + Send + 'static,
    ) -> Self {
        self.observer = Observer::new(Box::new(observer));
        self
    }

    /// Minimises `½‖r(θ)‖²` from `theta`, which holds the best point found on return.
    ///
    /// Never panics on numerical trouble or a `theta` of the wrong length: the outcome is in
    /// [`Report::termination`].
    pub fn minimize<P: LeastSquares<T> + ?Sized>(&self, problem: &P, theta: &mut [T]) -> Report {
        if let Err(msg) = check_input(problem, theta) {
            return bad_input(msg);
        }
        let (m, n) = (problem.n_residuals(), problem.n_params());
        let ftol = self.tol.ftol::<T>();
        let xtol = self.tol.xtol::<T>();
        let gtol = self.tol.gtol;
        let max_fev = self
            .tol
            .max_evaluations
            .unwrap_or(1000usize.saturating_mul(n.saturating_add(1)))
            .max(1);
        let eps = T::EPSILON.to_f64();

        let mut prog = Progress::new();
        let mut ev = Evaluator::new(problem);
        let mut r = vec![0.0; m];
        let mut cost = ev.residuals(theta, &mut r);
        prog.initial_cost = cost;
        if !cost.is_finite() {
            let c = half_norm2(&r);
            return prog.finish(Termination::NonFinite, c, &ev);
        }
        let converged = |ftol, xtol, gtol, cost| Termination::Converged {
            ftol,
            xtol,
            gtol,
            cost,
        };
        if cost <= self.tol.cost {
            return prog.finish(converged(false, false, false, true), cost, &ev);
        }
        if n == 0 {
            return prog.finish(converged(false, false, true, false), cost, &ev);
        }

        let mut j = Mat::<f64>::zeros(m, n);
        let mut d = vec![0.0f64; n];
        let mut lambda = f64::NAN;
        let mut nu = 2.0f64;
        let mut trial = theta.to_vec();
        let mut r_new = vec![0.0; m];
        let mut trial2 = theta.to_vec();
        let mut r_new2 = vec![0.0; m];
        let mut j_fresh;
        let mut shrink_to: Option<f64> = None;
        // The last point whose Jacobian was finite, to fall back to.
        let mut prev_theta = theta.to_vec();
        let mut prev_r = r.clone();
        let mut prev_cost = cost;
        let mut lin: Option<Linearisation> = None;

        loop {
            // ---- linearise at the current point (or fall back to the previous one)
            let j_ok = ev.jacobian(theta, &mut j);
            j_fresh = j_ok;
            if j_ok {
                let t0 = Instant::now();
                let new = Linearisation::new(&j, &r);
                prog.t_lin += t0.elapsed();
                for (dk, &c) in d.iter_mut().zip(&new.colnorm) {
                    *dk = if !self.scaling {
                        1.0
                    } else if *dk == 0.0 {
                        if c > 0.0 { c } else { 1.0 }
                    } else {
                        dk.max(c)
                    };
                }
                if lambda.is_nan() {
                    let ratio = (0..n)
                        .map(|k| (new.colnorm[k] / d[k]).powi(2))
                        .fold(0.0, f64::max);
                    lambda = self.tau * if ratio > 0.0 { ratio } else { 1.0 };
                }
                prev_theta.copy_from_slice(theta);
                prev_r.copy_from_slice(&r);
                prev_cost = cost;
                let cosine = gradient_cosine(&new.g, &new.colnorm, (2.0 * cost).sqrt());
                lin = Some(new);
                if cosine <= gtol {
                    return prog.finish(converged(false, false, true, false), cost, &ev);
                }
            } else if lin.is_none() {
                return prog.finish(Termination::NonFinite, cost, &ev);
            } else {
                // Undo the step that led to a non-finite Jacobian and damp harder.
                theta.copy_from_slice(&prev_theta);
                r.copy_from_slice(&prev_r);
                cost = prev_cost;
                lambda *= nu;
                nu *= 2.0;
            }
            let lin_ref = lin.as_ref().expect("set above");
            let gnorm = lin_ref.g.iter().fold(0.0f64, |a, g| a.max(g.abs()));

            // ---- inner loop: trial steps until one is accepted
            loop {
                if ev.nfev >= max_fev {
                    return prog.finish(Termination::MaxEvaluations, cost, &ev);
                }
                if lambda.is_nan() || lambda > LAMBDA_MAX {
                    return prog.finish(Termination::Stalled, cost, &ev);
                }
                let t0 = Instant::now();
                let mut step = lin_ref.solve(&d, lambda);
                if let Some(bound) = shrink_to.take() {
                    while norm2(&step.dp) > bound && lambda <= LAMBDA_MAX {
                        lambda *= nu;
                        nu *= 2.0;
                        step = lin_ref.solve(&d, lambda);
                    }
                }
                prog.t_lin += t0.elapsed();
                prog.iterations += 1;
                prog.lambdas.push(lambda);

                let dnorm_step = norm2(&step.dp);
                let xnorm: f64 = {
                    let dx: Vec<f64> = (0..n).map(|k| d[k] * theta[k].to_f64()).collect();
                    norm2(&dx)
                };
                // A step whose predicted reduction comes mostly from the damping term is
                // short because λ is large, not because θ has converged: the convergence
                // tests do not count for it (this avoids MINPACK-style false convergence
                // after a run of rejections).
                let undamped = lambda * step.dp_norm2 <= 1e2 * step.jp_norm2;
                let pred = step.predicted;
                // The undamped model cannot reduce the cost by more than ftol·F: converged.
                let ftol_ok = undamped && pred <= ftol * cost;
                let mut step_norm = norm2(&step.p);
                let (trial_cost, rho) = if step.p.iter().all(|v| v.is_finite()) {
                    add_step(theta, &step.p, &mut trial);
                    let mut c = ev.residuals(&trial, &mut r_new);
                    // Finite `c` and positive `pred`: the ratio is finite.
                    let poor = c.is_finite() && pred > 0.0 && (cost - c) / pred < ACCEL_RHO;
                    let correction =
                        if self.acceleration && poor && j_fresh && !ftol_ok && ev.nfev < max_fev {
                            acceleration(&j, &r, &r_new, &step.p, &d, lambda)
                        } else {
                            None
                        };
                    if let Some(a) = correction {
                        let dnorm_a =
                            norm2(&a.iter().zip(&d).map(|(x, y)| x * y).collect::<Vec<_>>());
                        if 2.0 * dnorm_a <= ACCEL_ALPHA * dnorm_step {
                            let p2: Vec<f64> =
                                step.p.iter().zip(&a).map(|(v, a)| v + 0.5 * a).collect();
                            add_step(theta, &p2, &mut trial2);
                            let c2 = ev.residuals(&trial2, &mut r_new2);
                            if c2 < c {
                                c = c2;
                                step_norm = norm2(&p2);
                                std::mem::swap(&mut trial, &mut trial2);
                                std::mem::swap(&mut r_new, &mut r_new2);
                            }
                        }
                    }
                    let rho = if c.is_finite() && pred > 0.0 {
                        (cost - c) / pred
                    } else {
                        f64::NAN
                    };
                    (c, rho)
                } else {
                    (f64::NAN, f64::NAN)
                };
                let accepted = rho > ACCEPT_RHO;
                let actred = cost - trial_cost;
                // The step test counts only for accepted steps: a run of rejections shrinks
                // the step too, and that is not convergence (it ends as `Stalled` below).
                let xtol_ok = accepted && undamped && dnorm_step <= xtol * xnorm;
                let stalled_f = trial_cost.is_finite()
                    && actred.abs() <= eps * cost
                    && pred <= eps * cost
                    && rho <= 2.0;
                let stalled_x = dnorm_step <= eps * xnorm;

                if accepted {
                    theta.copy_from_slice(&trial);
                    std::mem::swap(&mut r, &mut r_new);
                    cost = trial_cost;
                    lambda *= (1.0 / 3.0f64).max(1.0 - (2.0 * rho - 1.0).powi(3));
                    nu = 2.0;
                    prog.accepted += 1;
                } else {
                    lambda *= nu;
                    nu *= 2.0;
                    if !trial_cost.is_finite() {
                        // Nothing was learnt about the model's validity except that the step
                        // was far too long: the next one is at most a tenth of it.
                        shrink_to = Some(NONFINITE_SHRINK * dnorm_step);
                    }
                }
                let info = IterationInfo {
                    iteration: prog.iterations,
                    cost,
                    trial_cost,
                    lambda: prog.lambdas[prog.iterations - 1],
                    rho,
                    step_norm,
                    gradient_norm: gnorm,
                    accepted,
                    evaluations: ev.nfev,
                    jacobian_evaluations: ev.njev,
                    theta,
                };
                if self.observer.call(&info) {
                    return prog.finish(Termination::User, cost, &ev);
                }
                let small = cost <= self.tol.cost;
                if small || ftol_ok || xtol_ok {
                    return prog.finish(converged(ftol_ok, xtol_ok, false, small), cost, &ev);
                }
                if stalled_f || stalled_x {
                    return prog.finish(Termination::Stalled, cost, &ev);
                }
                if accepted {
                    break;
                }
            }
        }
    }
}
