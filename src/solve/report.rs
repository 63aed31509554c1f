//! What a least-squares solve returns ([`Report`], [`Termination`], [`Timings`]) and what an
//! observer sees after every trial step ([`IterationInfo`]).
//!
//! Numerical outcomes are data, not panics: a solve that ran out of evaluations, met NaN, or was
//! given a `θ` of the wrong length still returns a [`Report`] that says so.

use std::fmt;
use std::time::Duration;

/// Why a solve stopped.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Termination {
    /// A convergence test was met; each flag says which (several may hold at once).
    Converged {
        /// Relative reduction. Levenberg–Marquardt: the predicted reduction of a step not
        /// dominated by the damping was `≤ ftol · cost` (the actual reduction is rounding
        /// noise there). Gauss–Newton: actual and predicted reductions were both
        /// `≤ ftol · cost` (MINPACK's `info = 1`).
        ftol: bool,
        /// Relative step: `‖D δ‖ ≤ xtol · ‖D θ‖` for an accepted step (MINPACK's `info = 2`).
        xtol: bool,
        /// Gradient: `max_k |(Jᵀr)_k| / (‖J_{:,k}‖ ‖r‖) ≤ gtol`, the largest cosine between the
        /// residual and a Jacobian column (MINPACK's `info = 4`).
        gtol: bool,
        /// Small cost: `½‖r‖² ≤ cost_tolerance` (an absolute tolerance, 0 by default, so by
        /// default this means an exactly zero residual).
        cost: bool,
    },
    /// The residual-evaluation budget (`with_max_evaluations`) was used up.
    MaxEvaluations,
    /// The residuals or the Jacobian at the starting point (or the Jacobian at every recent
    /// point) were not finite; nothing could be done. `θ` holds the last point with finite
    /// residuals, or the start.
    NonFinite,
    /// No further progress is possible at working precision: the damping overflowed, or
    /// the step or the reduction fell below machine precision before a tolerance was met
    /// (MINPACK's `info = 6, 7, 8`). The final point is usually still a good one.
    Stalled,
    /// The observer asked to stop.
    User,
    /// The problem and the arguments do not fit together (for example `θ` of the wrong
    /// length); the message says what was wrong. Nothing was evaluated.
    BadInput(String),
}

impl Termination {
    /// Whether a convergence test was met.
    pub fn is_converged(&self) -> bool {
        matches!(self, Termination::Converged { .. })
    }
}

impl fmt::Display for Termination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Termination::Converged {
                ftol,
                xtol,
                gtol,
                cost,
            } => {
                let names: Vec<&str> = [
                    (*ftol, "ftol"),
                    (*xtol, "xtol"),
                    (*gtol, "gtol"),
                    (*cost, "cost"),
                ]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, n)| *n)
                .collect();
                write!(f, "converged ({})", names.join(", "))
            }
            Termination::MaxEvaluations => write!(f, "maximum number of evaluations reached"),
            Termination::NonFinite => write!(f, "non-finite residuals or Jacobian"),
            Termination::Stalled => write!(f, "stalled: no further reduction at working precision"),
            Termination::User => write!(f, "stopped by the observer"),
            Termination::BadInput(m) => write!(f, "bad input: {m}"),
        }
    }
}

/// Wall-clock time spent in each part of a solve.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// In the problem's `residuals`.
    pub residuals: Duration,
    /// In the problem's `jacobian` (including the conversion to f64).
    pub jacobian: Duration,
    /// In the linear algebra: the QR / SVD factorisations and the step solves.
    pub linear_solve: Duration,
    /// The whole solve (the rest is bookkeeping and observers).
    pub total: Duration,
}

/// The outcome of a least-squares solve.
///
/// Costs are `½‖r‖²`, computed in f64 whatever the scalar type of the problem.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Why the solve stopped.
    pub termination: Termination,
    /// Final cost `½‖r(θ)‖²` at the returned `θ` (NaN or ∞ only with
    /// [`Termination::NonFinite`] at the start).
    pub cost: f64,
    /// Cost at the starting point.
    pub initial_cost: f64,
    /// Trial steps computed (one linear solve each), accepted or not.
    pub iterations: usize,
    /// Trial steps that were accepted.
    pub accepted_steps: usize,
    /// Residual evaluations, including the one at the starting point.
    pub evaluations: usize,
    /// Jacobian evaluations.
    pub jacobian_evaluations: usize,
    /// The damping `λ` of every trial step, in order (Levenberg–Marquardt; for Gauss–Newton
    /// it holds the step length `α` of every line-search trial instead).
    pub lambda_history: Vec<f64>,
    /// Time split.
    pub timings: Timings,
}

impl Report {
    /// `‖r‖ = √(2 · cost)`, the final residual norm (what MINPACK prints as "final L2 norm").
    pub fn residual_norm(&self) -> f64 {
        (2.0 * self.cost).sqrt()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        writeln!(f, "termination:           {}", self.termination)?;
        writeln!(f, "initial cost ½‖r‖²:    {:.10e}", self.initial_cost)?;
        writeln!(f, "final cost ½‖r‖²:      {:.10e}", self.cost)?;
        writeln!(
            f,
            "iterations:            {} ({} accepted)",
            self.iterations, self.accepted_steps
        )?;
        writeln!(f, "residual evaluations:  {}", self.evaluations)?;
        writeln!(f, "Jacobian evaluations:  {}", self.jacobian_evaluations)?;
        if let (Some(first), Some(last)) = (self.lambda_history.first(), self.lambda_history.last())
        {
            writeln!(f, "λ first / last:        {first:.3e} / {last:.3e}")?;
        }
        write!(
            f,
            "time:                  {:.3} ms total = residuals {:.3} + Jacobian {:.3} + linear solve {:.3} + other {:.3}",
            ms(self.timings.total),
            ms(self.timings.residuals),
            ms(self.timings.jacobian),
            ms(self.timings.linear_solve),
            ms(self.timings.total.saturating_sub(
                self.timings.residuals + self.timings.jacobian + self.timings.linear_solve
            )),
        )
    }
}

/// What an observer sees after every trial step.
///
/// Observers are set with `with_observer` on the solvers and return
/// [`ControlFlow::Break`](std::ops::ControlFlow) to stop the solve ([`Termination::User`]).
#[derive(Clone, Copy, Debug)]
pub struct IterationInfo<'a, T> {
    /// Trial step number, from 1.
    pub iteration: usize,
    /// Cost `½‖r‖²` at the current point (after this trial was accepted or rejected).
    pub cost: f64,
    /// Cost at the trial point (NaN when its residuals were not finite).
    pub trial_cost: f64,
    /// Damping `λ` used for this trial (Gauss–Newton: the step length `α`).
    pub lambda: f64,
    /// Gain ratio `ρ` = actual / predicted reduction (NaN when not computed).
    pub rho: f64,
    /// Euclidean norm of the trial step `‖δ‖`.
    pub step_norm: f64,
    /// `‖Jᵀr‖_∞` at the point where the current Jacobian was evaluated.
    pub gradient_norm: f64,
    /// Whether the trial step was accepted.
    pub accepted: bool,
    /// Residual evaluations so far.
    pub evaluations: usize,
    /// Jacobian evaluations so far.
    pub jacobian_evaluations: usize,
    /// The current parameters (after this trial).
    pub theta: &'a [T],
}
