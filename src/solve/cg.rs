//! Preconditioned conjugate gradients for the SPD Gauss-Newton system, matrix-free.
//!
//! # Stopping rule
//!
//! By default CG stops on the **normwise backward error** of its iterate,
//!
//! ```text
//! η(x) = ‖b − A x‖₂ / (‖A‖₂ ‖x‖₂ + ‖b‖₂),
//! ```
//!
//! the quantity a backward-stable direct solve (Cholesky) makes `O(ε)`: `x` is then the exact
//! solution of a system perturbed by `η` relative, and its forward error is at most about
//! `2 κ(A) η`, as for the direct forms. A test on `‖b − Ax‖ ≤ tol ‖b‖` alone leaves an error
//! `κ(A)` times `tol`, whatever the problem's scale. `‖A‖₂` is estimated from below by the
//! largest Rayleigh quotient `pᵀAp / pᵀp` met by the search directions (Lanczos finds the
//! extreme eigenvalues first), so the test is, if anything, stricter than the exact one.
//!
//! The recurrence residual of CG drifts from the true residual `b − A x` by rounding, so
//! when the recurrence says "converged" the true residual is computed (one more operator
//! application) and, if it does not pass, CG restarts from the current iterate on the true
//! residual (iterative refinement). Restarts stop when one no longer halves the true
//! residual: the attainable accuracy has been reached, and the outcome says whether it met
//! the target.

use crate::Real;
use crate::kernels::cpu::CpuKernels;

/// Which preconditioner CG uses on `A = JᵀHJ + NλI`.
///
/// When `P > N·C` (more parameters than outputs, the usual case for a network), `A` is a
/// rank-`N·C` matrix plus `NλI`: it has at most `N·C + 1` distinct eigenvalues, so plain CG
/// ends in at most `N·C + 1` iterations in exact arithmetic. Jacobi scaling
/// `D^{-1/2} A D^{-1/2}` turns the multiple of `I` into the non-uniform `Nλ D⁻¹` and loses
/// that bound (measured: 250–1300 iterations instead of 40–90 for `N·C = 36`). When
/// `P ≤ N·C`, `A` is full-rank and Jacobi removes a bad column scaling of `J`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Preconditioner {
    /// Jacobi when `P ≤ N·C` and the explicit `J` fits the memory budget, else none.
    /// Default.
    #[default]
    Auto,
    /// Jacobi, `M⁻¹ = diag(JᵀHJ + NλI)⁻¹`, whenever the explicit `J` fits the memory budget
    /// (the Hessian-free path has no diagonal and runs unpreconditioned).
    Jacobi,
    /// None (`M = I`).
    None,
    /// Randomised Nyström preconditioner of rank `rank` for the **dual** system
    /// `(K + NλI) α = b` (`K = Θ` for MSE, `K = LᵀΘL` with `H = LLᵀ` for cross-entropy;
    /// see [`NtkNystrom`](super::NtkNystrom)): `⌈rank / C⌉` training samples drawn uniformly
    /// with a seeded RNG, their `C` kernel columns each, `Θ ≈ U Λ Uᵀ`, and
    ///
    /// ```text
    /// P⁻¹ = (λ_r + μ) U (Λ + μI)⁻¹ Uᵀ + (I − U Uᵀ),   μ = Nλ
    /// ```
    ///
    /// (Frangella, Tropp & Udell, *Randomized Nyström preconditioning*, 2023). With it
    /// [`Form::Cg`](super::Form::Cg) solves the dual system matrix-free (kernel-vector
    /// products `Θv = J(Jᵀv)`, one VJP and one JVP), holding `(N·C) × rank` numbers and
    /// never an `(N·C)²` matrix. `rank ≥ N·C` makes `P⁻¹ = (K + μI)⁻¹` (one iteration);
    /// `rank = 0` is dual CG without a preconditioner.
    Nystrom {
        /// Number of kernel columns sampled (rounded up to whole samples).
        rank: usize,
    },
    /// As [`Preconditioner::Nystrom`], but the samples are chosen by greedy pivoted
    /// Cholesky on the kernel: each round takes the samples whose residual diagonal
    /// `Θ_ii − (F Fᵀ)_ii` is largest, so that the approximation `Θ ≈ F Fᵀ` captures the
    /// largest remaining mass first (deterministic; better than uniform sampling when a
    /// few samples dominate the kernel).
    PivotedCholesky {
        /// Number of kernel columns (rounded up to whole samples).
        rank: usize,
    },
}

impl Preconditioner {
    /// The rank of a Nyström-type preconditioner (`None` for the others): these solve the
    /// dual system.
    pub fn nystrom_rank(&self) -> Option<usize> {
        match *self {
            Preconditioner::Nystrom { rank } | Preconditioner::PivotedCholesky { rank } => {
                Some(rank)
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for Preconditioner {
    /// The CLI spelling: `auto`, `jacobi`, `none`, `nystrom:M`, `pivchol:M`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Preconditioner::Auto => write!(f, "auto"),
            Preconditioner::Jacobi => write!(f, "jacobi"),
            Preconditioner::None => write!(f, "none"),
            Preconditioner::Nystrom { rank } => write!(f, "nystrom:{rank}"),
            Preconditioner::PivotedCholesky { rank } => write!(f, "pivchol:{rank}"),
        }
    }
}

impl std::str::FromStr for Preconditioner {
    type Err = String;
    /// Parses the spelling of [`Display`](std::fmt::Display) (case-insensitive).
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        let rank = |v: &str| {
            v.parse::<usize>().map_err(|_| {
                format!("bad preconditioner rank {v:?} in {s:?} (expected a whole number, e.g. nystrom:512)")
            })
        };
        match t.split_once(':') {
            None => match t.as_str() {
                "auto" => Ok(Preconditioner::Auto),
                "jacobi" => Ok(Preconditioner::Jacobi),
                "none" => Ok(Preconditioner::None),
                "nystrom" | "pivchol" => {
                    Err(format!("preconditioner {s:?} needs a rank, e.g. {t}:512"))
                }
                _ => Err(format!(
                    "unknown preconditioner {s:?} (expected auto, jacobi, none, nystrom:M or pivchol:M)"
                )),
            },
            Some(("nystrom", v)) => Ok(Preconditioner::Nystrom { rank: rank(v)? }),
            Some(("pivchol", v)) => Ok(Preconditioner::PivotedCholesky { rank: rank(v)? }),
            Some(_) => Err(format!(
                "unknown preconditioner {s:?} (expected auto, jacobi, none, nystrom:M or pivchol:M)"
            )),
        }
    }
}

/// How CG applies its preconditioner `M⁻¹` (on f64 vectors).
pub(crate) enum Precond<'a> {
    /// `M = I`.
    Identity,
    /// `M⁻¹ = diag(d)`.
    Diagonal(&'a [f64]),
    /// `z ← M⁻¹ r` by a closure (SPD).
    Apply(&'a dyn Fn(&[f64], &mut [f64])),
}

/// CG settings (see [`GaussNewtonStep`](super::GaussNewtonStep)'s builder).
#[derive(Clone, Debug)]
pub(crate) struct CgConfig {
    /// `Some(tol)`: stop when `‖b − A x‖ ≤ tol ‖b‖` (the relative residual). `None`
    /// (default): stop when the backward error `η(x) ≤ 8 ε` of the precision, or accept
    /// `η ≤ 64 ε` once restarts stagnate (see the module docs): a solution as exact as the
    /// direct forms'.
    pub rtol: Option<f64>,
    /// Iteration limit (CG iterations over all restarts).
    pub max_iterations: usize,
    /// Martens' relative-progress test on the quadratic `φ(x) = ½xᵀAx − bᵀx`: stop when
    /// `(φ_i − φ_{i−k}) / φ_i < k ε` with `k = max(10, i/10)`; `None` disables it.
    pub progress_tol: Option<f64>,
    /// The preconditioner ([`Preconditioner::Auto`] is resolved by the caller; here it
    /// means Jacobi when a diagonal is given).
    pub preconditioner: Preconditioner,
}

impl Default for CgConfig {
    fn default() -> Self {
        Self {
            rtol: None,
            max_iterations: 2000,
            progress_tol: None,
            preconditioner: Preconditioner::Auto,
        }
    }
}

/// How a CG solve ended.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CgOutcome {
    /// CG iterations over all restarts (one operator application each; each true-residual
    /// check, `1 + restarts` of them, costs one more).
    pub iterations: usize,
    /// Final `‖b − A x‖ / ‖b‖`, of the true residual whenever one was computed.
    pub relative_residual: f64,
    /// Final normwise backward error `‖b − A x‖ / (‖A‖ ‖x‖ + ‖b‖)` (`‖A‖` estimated from
    /// below, see the module docs).
    #[serde(default)]
    pub backward_error: f64,
    /// Restarts from the true residual (iterative refinement).
    #[serde(default)]
    pub restarts: usize,
    /// Whether the tolerance (or the progress test) was met.
    pub converged: bool,
}

#[cfg(test)]
fn norm(v: &[f64]) -> f64 {
    f64::dot(v, v).sqrt()
}

/// Backward error the default rule aims at (`8 ε` of `T`) and the one it accepts as
/// converged when restarts no longer reduce the true residual (`64 ε`: the operator's own
/// rounding, about `ε` times the length of its dot products relative to `‖A‖‖x‖`, can keep
/// the true residual above the aim on small or cancelling systems).
fn default_eta<T: Real>() -> (f64, f64) {
    let eps = T::EPSILON.to_f64();
    (8.0 * eps, 64.0 * eps)
}

/// The operator on f64 vectors: `v` is rounded to `T` in place (so that the direction CG
/// steps along is exactly the one the operator saw), then `out ← A v` in `T`.
struct Operator<'a, T, F> {
    op: F,
    v_t: &'a mut [T],
    out_t: &'a mut [T],
}

impl<T: Real, F: FnMut(&[T], &mut [T])> Operator<'_, T, F> {
    fn apply(&mut self, v: &mut [f64], out: &mut [f64]) {
        for (t, x) in self.v_t.iter_mut().zip(v.iter_mut()) {
            *t = T::from_f64(*x);
            *x = t.to_f64();
        }
        (self.op)(self.v_t, self.out_t);
        for (o, &t) in out.iter_mut().zip(self.out_t.iter()) {
            *o = t.to_f64();
        }
    }
}

/// Solves `A x = b` for SPD `A` given as `op(v, out)` (`out ← A v`), with an optional
/// warm start. `inv_diag` is the inverse diagonal of `A` when known: the Jacobi
/// preconditioner (when `cfg` asks for it) and a lower bound `max_i A_ii ≤ ‖A‖₂`.
///
/// The operator runs in `T`; the CG recurrences (iterate, residual, direction) are kept in
/// f64, so that for `f32` the attainable accuracy is set by the operator's rounding, as for
/// a direct solve in `f32`, not by the accumulated rounding of the updates.
pub(crate) fn conjugate_gradient<T: Real>(
    op: impl FnMut(&[T], &mut [T]),
    b: &[T],
    inv_diag: Option<&[T]>,
    x0: Option<&[T]>,
    cfg: &CgConfig,
) -> (Vec<T>, CgOutcome) {
    // ‖A‖₂ ≥ max_i A_ii for SPD A: a start for the estimate when the diagonal is known.
    let diag_max = inv_diag.map_or(0.0, |d| {
        d.iter()
            .map(|&v| 1.0 / v.to_f64())
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max)
    });
    let inv_diag: Option<Vec<f64>> = inv_diag
        .filter(|_| cfg.preconditioner != Preconditioner::None)
        .map(|d| d.iter().map(|v| v.to_f64()).collect());
    let pre = match inv_diag.as_deref() {
        Some(d) => Precond::Diagonal(d),
        None => Precond::Identity,
    };
    let (x, outcome, _) = preconditioned_cg(op, b, &pre, diag_max, x0, cfg);
    (x, outcome)
}

/// [`conjugate_gradient`] with any SPD preconditioner `pre` and a known lower bound
/// `a_norm_lower ≤ ‖A‖₂` (0 when none) to start the norm estimate of the stopping rule.
/// Also returns the final estimate of `‖A‖₂` (the largest Rayleigh quotient seen).
pub(crate) fn preconditioned_cg<T: Real>(
    op: impl FnMut(&[T], &mut [T]),
    b: &[T],
    pre: &Precond<'_>,
    a_norm_lower: f64,
    x0: Option<&[T]>,
    cfg: &CgConfig,
) -> (Vec<T>, CgOutcome, f64) {
    preconditioned_cg_with(op, b, pre, a_norm_lower, x0, cfg, &|a, b| f64::dot(a, b))
}

/// An inner product of (possibly sharded) f64 vectors.
pub(crate) type Dot<'a> = &'a dyn Fn(&[f64], &[f64]) -> f64;

/// [`preconditioned_cg`] with the inner product `dot`: for vectors sharded over ranks
/// (each rank holds its rows of `b`, `x` and the operator's output) `dot` sums the local
/// products across ranks, so every rank takes the same decisions; `op` and `pre` act on the
/// local rows (reducing what they must themselves).
pub(crate) fn preconditioned_cg_with<T: Real>(
    op: impl FnMut(&[T], &mut [T]),
    b: &[T],
    pre: &Precond<'_>,
    a_norm_lower: f64,
    x0: Option<&[T]>,
    cfg: &CgConfig,
    dot: Dot<'_>,
) -> (Vec<T>, CgOutcome, f64) {
    let norm = |v: &[f64]| dot(v, v).sqrt();
    let n = b.len();
    let b: Vec<f64> = b.iter().map(|v| v.to_f64()).collect();
    let bnorm = norm(&b);
    if bnorm == 0.0 {
        let outcome = CgOutcome {
            iterations: 0,
            relative_residual: 0.0,
            backward_error: 0.0,
            restarts: 0,
            converged: true,
        };
        return (vec![T::zero_impl(); n], outcome, a_norm_lower);
    }
    let (mut v_t, mut out_t) = (vec![T::zero_impl(); n], vec![T::zero_impl(); n]);
    let mut op = Operator {
        op,
        v_t: &mut v_t,
        out_t: &mut out_t,
    };
    let mut x: Vec<f64> =
        x0.map_or_else(|| vec![0.0; n], |x| x.iter().map(|v| v.to_f64()).collect());
    let mut ap = vec![0.0; n];
    let mut r = b.clone();
    if x0.is_some() {
        op.apply(&mut x, &mut ap);
        f64::axpy(-1.0, &ap, &mut r);
    }
    let mut s = Solver {
        dot,
        a_norm: a_norm_lower,
        bnorm,
        target: cfg.rtol,
        eta: default_eta::<T>(),
    };
    let mut it = 0;
    let mut restarts = 0;
    let mut best_true = f64::INFINITY;
    let outcome = loop {
        let run = s.cg_run(&mut op, &b, pre, &mut x, &mut r, &mut ap, &mut it, cfg);
        if run == RunEnd::Progress {
            let rn = norm(&r);
            break s.outcome(rn / bnorm, rn, &x, restarts, true, it);
        }
        // The true residual b − A x of the iterate rounded to T (the recurrence's drifts by
        // rounding).
        op.apply(&mut x, &mut ap);
        r.copy_from_slice(&b);
        f64::axpy(-1.0, &ap, &mut r);
        let rnorm = norm(&r);
        let met = s.met(rnorm, norm(&x));
        let stagnated = rnorm > 0.5 * best_true;
        best_true = best_true.min(rnorm);
        if met || stagnated || run == RunEnd::Breakdown || it >= cfg.max_iterations {
            let converged = met || s.accepted(rnorm, norm(&x));
            break s.outcome(rnorm / bnorm, rnorm, &x, restarts, converged, it);
        }
        restarts += 1;
    };
    let a_norm = s.a_norm;
    (x.iter().map(|&v| T::from_f64(v)).collect(), outcome, a_norm)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RunEnd {
    /// The recurrence residual met the tolerance.
    Tolerance,
    /// Martens' progress test stopped the run (accepted as converged, no refinement).
    Progress,
    /// Iteration limit.
    Limit,
    /// Non-positive or non-finite curvature `pᵀAp`.
    Breakdown,
}

struct Solver<'d> {
    /// The inner product of the vectors (a sum across ranks when they are sharded).
    dot: Dot<'d>,
    /// Largest Rayleigh quotient seen (a lower bound of ‖A‖₂).
    a_norm: f64,
    bnorm: f64,
    target: Option<f64>,
    /// (aimed, accepted) backward error of the default rule.
    eta: (f64, f64),
}

impl Solver<'_> {
    fn norm(&self, v: &[f64]) -> f64 {
        (self.dot)(v, v).sqrt()
    }

    /// Whether a residual of norm `rnorm` at an iterate of norm `xnorm` passes the test.
    fn met(&self, rnorm: f64, xnorm: f64) -> bool {
        match self.target {
            Some(rtol) => rnorm <= rtol * self.bnorm,
            None => rnorm <= self.eta.0 * (self.a_norm * xnorm + self.bnorm),
        }
    }

    /// Whether a residual that restarts can no longer reduce is accepted as converged.
    fn accepted(&self, rnorm: f64, xnorm: f64) -> bool {
        match self.target {
            Some(rtol) => rnorm <= rtol * self.bnorm,
            None => rnorm <= self.eta.1 * (self.a_norm * xnorm + self.bnorm),
        }
    }

    fn outcome(
        &self,
        rel: f64,
        rnorm: f64,
        x: &[f64],
        restarts: usize,
        converged: bool,
        iterations: usize,
    ) -> CgOutcome {
        CgOutcome {
            iterations,
            relative_residual: rel,
            backward_error: rnorm / (self.a_norm * self.norm(x) + self.bnorm),
            restarts,
            converged,
        }
    }

    /// One preconditioned CG run from `x` with residual `r`, until the recurrence residual
    /// passes the test, the limit, a breakdown or the progress test.
    #[allow(clippy::too_many_arguments)]
    fn cg_run<T: Real, F: FnMut(&[T], &mut [T])>(
        &mut self,
        op: &mut Operator<'_, T, F>,
        b: &[f64],
        pre: &Precond<'_>,
        x: &mut [f64],
        r: &mut [f64],
        ap: &mut [f64],
        it: &mut usize,
        cfg: &CgConfig,
    ) -> RunEnd {
        let precondition = |r: &[f64], z: &mut [f64]| match pre {
            Precond::Diagonal(d) => z
                .iter_mut()
                .zip(r.iter().zip(d.iter()))
                .for_each(|(zi, (&ri, &di))| *zi = ri * di),
            Precond::Identity => z.copy_from_slice(r),
            Precond::Apply(f) => f(r, z),
        };
        let mut z = vec![0.0; r.len()];
        precondition(r, &mut z);
        let mut p = z.clone();
        let mut rz = (self.dot)(r, &z);
        let mut phis: Vec<f64> = Vec::new();
        let start = *it;
        loop {
            if self.met(self.norm(r), self.norm(x)) {
                return RunEnd::Tolerance;
            }
            if *it >= cfg.max_iterations {
                return RunEnd::Limit;
            }
            op.apply(&mut p, ap);
            *it += 1;
            let pap = (self.dot)(&p, ap);
            if !pap.is_finite() || pap <= 0.0 {
                return RunEnd::Breakdown; // A is not SPD along p (or not finite)
            }
            self.a_norm = self.a_norm.max(pap / (self.dot)(&p, &p));
            let alpha = rz / pap;
            f64::axpy(alpha, &p, x);
            f64::axpy(-alpha, ap, r);
            if let Some(eps) = cfg.progress_tol {
                // φ(x) = −½ xᵀ(b + r)
                let phi = -0.5 * ((self.dot)(x, b) + (self.dot)(x, r));
                phis.push(phi);
                let i = *it - start;
                let k = 10usize.max(i / 10);
                if i > k && phi < 0.0 && (phi - phis[i - 1 - k]) / phi < k as f64 * eps {
                    return RunEnd::Progress;
                }
            }
            precondition(r, &mut z);
            let rz_new = (self.dot)(r, &z);
            let beta = rz_new / rz;
            rz = rz_new;
            for (pi, &zi) in p.iter_mut().zip(&z) {
                *pi = zi + beta * *pi;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dense SPD operator `A = Q diag(s) Qᵀ`-like test matrix: tridiagonal with a wide
    /// diagonal spread (badly scaled rows), so Jacobi helps and κ is large.
    fn op_of(a: &[Vec<f64>]) -> impl FnMut(&[f64], &mut [f64]) + '_ {
        move |v, out| {
            for (o, row) in out.iter_mut().zip(a) {
                *o = row.iter().zip(v).map(|(x, y)| x * y).sum();
            }
        }
    }

    fn scaled_laplacian(n: usize, spread: f64) -> Vec<Vec<f64>> {
        let d: Vec<f64> = (0..n)
            .map(|i| spread.powf(i as f64 / (n - 1) as f64))
            .collect();
        let mut a = vec![vec![0.0; n]; n];
        for i in 0..n {
            a[i][i] = 2.0 * d[i] * d[i] + 1e-3 * d[i] * d[i];
            if i + 1 < n {
                a[i][i + 1] = -d[i] * d[i + 1];
                a[i + 1][i] = -d[i] * d[i + 1];
            }
        }
        a
    }

    fn residual(a: &[Vec<f64>], x: &[f64], b: &[f64]) -> f64 {
        let r: Vec<f64> = a
            .iter()
            .zip(b)
            .map(|(row, bi)| bi - row.iter().zip(x).map(|(p, q)| p * q).sum::<f64>())
            .collect();
        norm(&r)
    }

    #[test]
    fn default_stop_reaches_epsilon_backward_error() {
        let n = 60;
        let a = scaled_laplacian(n, 1e3);
        let b: Vec<f64> = (0..n).map(|i| ((i * 7 % 11) as f64 - 5.0) / 3.0).collect();
        let inv: Vec<f64> = (0..n).map(|i| 1.0 / a[i][i]).collect();
        let (x, out) = conjugate_gradient(op_of(&a), &b, Some(&inv), None, &CgConfig::default());
        assert!(out.converged, "{out:?}");
        let a_norm = (0..n)
            .map(|i| a[i].iter().map(|v| v.abs()).sum::<f64>())
            .fold(0.0, f64::max);
        let eta = residual(&a, &x, &b) / (a_norm * norm(&x) + norm(&b));
        assert!(eta < 1e-14, "true backward error {eta:e}, {out:?}");
    }

    #[test]
    fn jacobi_preconditioning_is_used() {
        // Rows scaled over 8 orders of magnitude: without the preconditioner CG needs far
        // more iterations (or stalls at the limit) than with it.
        let n = 40;
        let a = scaled_laplacian(n, 1e4);
        let b = vec![1.0; n];
        let inv: Vec<f64> = (0..n).map(|i| 1.0 / a[i][i]).collect();
        let cfg = CgConfig::default();
        let (_, jacobi) = conjugate_gradient(op_of(&a), &b, Some(&inv), None, &cfg);
        let none_cfg = CgConfig {
            preconditioner: Preconditioner::None,
            ..CgConfig::default()
        };
        let (_, plain) = conjugate_gradient(op_of(&a), &b, Some(&inv), None, &none_cfg);
        assert!(jacobi.converged, "{jacobi:?}");
        assert!(
            2 * jacobi.iterations < plain.iterations,
            "Jacobi {jacobi:?} vs none {plain:?}"
        );
    }
}
