//! The damped Gauss-Newton step by preconditioned conjugate gradients on the **dual**
//! (kernel) system, matrix-free: neither `Θ` nor `J` is formed.
//!
//! # MSE
//!
//! `(Θ + μI) α = g`, `δ = −Jᵀα`, `μ = Nλ`, with kernel-vector products `Θv = J(Jᵀv)` (one
//! VJP and one JVP, both reusing one forward trace at θ). The system is SPD.
//!
//! # Cross-entropy
//!
//! The dual system `(HΘ + μI) α = g` is not symmetric. With the factor `H = L Lᵀ`,
//! `L_n = (I − p_n 1ᵀ) diag(√p_n)`, and `J̃ = LᵀJ` (so `JᵀHJ = J̃ᵀJ̃`), Woodbury's identity
//! `(J̃ᵀJ̃ + μI)⁻¹ = μ⁻¹ (I − J̃ᵀ (J̃J̃ᵀ + μI)⁻¹ J̃)` gives the symmetric form
//!
//! ```text
//! (LᵀΘL + μI) β = LᵀΘ g,     α = (g − L β) / μ,     δ = −Jᵀα,
//! ```
//!
//! exact for any `g` (check: `HΘα = L(LᵀΘg − LᵀΘLβ)/μ = Lβ`, so `HΘα + μα = g`), with no
//! division by the probabilities. Forming `α` subtracts `Lβ` from `g`, which amplifies the
//! error of `β` by up to `(‖LᵀΘL‖ + μ)/μ`; so the true residual `g − (HΘ + μI)α` is computed
//! (one more kernel product) and the same solve is repeated on it (iterative refinement,
//! at most twice, while it halves the residual). The reported residual and backward error
//! are those of the nonsymmetric system `(HΘ + μI) α = g`, as for the dense dual form.
//! Needs `λ > 0`.
//!
//! # Preconditioning
//!
//! [`Preconditioner::Nystrom`] / [`Preconditioner::PivotedCholesky`]: the randomised
//! Nyström preconditioner of [`NtkNystrom`] (for cross-entropy, of `Lᵀ Θ̂ L`); rank 0 or any
//! other preconditioner: none.

use super::cg::{CgConfig, CgOutcome, Precond, Preconditioner, preconditioned_cg};
use super::nystrom::{NtkNystrom, apply_l, apply_lt, sqrt_probs};
use crate::model::{Trace, Workspace};
use crate::{Model, Real};
use faer::{Mat, MatRef};
use std::time::Instant;

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Kernel-vector products `Θv = J(Jᵀv)` at one θ on one `X`, reusing one forward trace and
/// its buffers (no allocation per product).
pub(super) struct KernelOp<'a, T: Real, M: Model<T> + ?Sized> {
    model: &'a M,
    theta: &'a [T],
    x: MatRef<'a, T>,
    trace: Trace<T>,
    ws: Workspace<T>,
    pub(super) grad: Vec<T>,
    c: usize,
}

impl<'a, T: Real, M: Model<T> + ?Sized> KernelOp<'a, T, M> {
    pub(super) fn new(model: &'a M, theta: &'a [T], x: MatRef<'a, T>) -> Self {
        let mut trace = Trace::new();
        model.trace_into(theta, x, &mut trace);
        Self {
            model,
            theta,
            x,
            trace,
            ws: Workspace::new(),
            grad: vec![T::zero_impl(); model.n_params()],
            c: model.n_outputs(),
        }
    }
    /// `Jᵀ v` into `self.grad`.
    pub(super) fn jt(&mut self, v: &[T]) {
        let u = MatRef::from_row_major_slice(v, self.x.nrows(), self.c);
        self.model.vjp_with_trace_into(
            self.theta,
            self.x,
            &self.trace,
            u,
            &mut self.grad,
            &mut self.ws,
        );
    }
    /// `out ← Θ v`.
    fn theta_mul(&mut self, v: &[T], out: &mut [T]) {
        self.jt(v);
        self.j_grad(out);
    }
    /// `out ← J self.grad` (the second half of a kernel product).
    pub(super) fn j_grad(&mut self, out: &mut [T]) {
        self.model.jvp_with_trace_into(
            self.theta,
            self.x,
            &self.trace,
            &self.grad,
            out,
            &mut self.ws,
        );
    }
    /// `−Jᵀ α`.
    fn neg_jt(&mut self, alpha: &[T]) -> Vec<T> {
        self.jt(alpha);
        self.grad.iter().map(|&v| -v).collect()
    }
}

/// What [`dual_cg_step`] hands back for the step's report.
pub(super) struct DualCgStep<T> {
    /// `δ`; `None` when the step cannot be taken (cross-entropy with `λ = 0`).
    pub delta: Option<Vec<T>>,
    /// The CG outcome (residual and backward error of the dual system).
    pub outcome: Option<CgOutcome>,
    /// Seconds: preconditioner and trace; CG; the final `Jᵀα`.
    pub seconds_assemble: f64,
    pub seconds_solve: f64,
    pub seconds_map_back: f64,
}

/// The dual CG step (see the module docs). `g` is sample-major (`N·C`), `probs` the softmax
/// outputs for cross-entropy, `shift = μ = Nλ`. `factor`: a Nyström approximation at this
/// θ on this `X` to reuse; else one is built when the preconditioner asks for it (seeded
/// with `seed`).
#[allow(clippy::too_many_arguments)]
pub(super) fn dual_cg_step<T: Real, M: Model<T> + ?Sized>(
    model: &M,
    theta: &[T],
    x: MatRef<'_, T>,
    g: &[T],
    probs: Option<&Mat<T>>,
    shift: f64,
    cfg: &CgConfig,
    factor: Option<&NtkNystrom>,
    seed: u64,
) -> DualCgStep<T> {
    let mut res = DualCgStep {
        delta: None,
        outcome: None,
        seconds_assemble: 0.0,
        seconds_solve: 0.0,
        seconds_map_back: 0.0,
    };
    let c = model.n_outputs();
    let t = Instant::now();
    let built;
    let factor = match factor {
        Some(f) => Some(f),
        None => {
            built = NtkNystrom::for_preconditioner(model, theta, x, cfg.preconditioner, seed);
            built.as_ref()
        }
    };
    let eig = factor.map(|f| f.system_factor(probs));
    let mut kop = KernelOp::new(model, theta, x);
    res.seconds_assemble = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let pre_fn = |r: &[f64], z: &mut [f64]| {
        if let Some(e) = eig.as_deref() {
            e.apply(shift, r, z);
        }
    };
    let pre = if eig.is_some() {
        Precond::Apply(&pre_fn)
    } else {
        Precond::Identity
    };
    let a_lower = eig.as_deref().map_or(0.0, |e| e.top()) + shift;
    let mut cg_cfg = cfg.clone();
    if cg_cfg.preconditioner.nystrom_rank().is_none() {
        cg_cfg.preconditioner = Preconditioner::None;
    }
    let shift_t = T::from_f64(shift);
    let result = match probs {
        None => {
            let op = |v: &[T], out: &mut [T]| {
                kop.theta_mul(v, out);
                T::axpy(shift_t, v, out);
            };
            let (alpha, out, _) = preconditioned_cg(op, g, &pre, a_lower, None, &cg_cfg);
            res.seconds_solve = t.elapsed().as_secs_f64();
            (alpha, out)
        }
        Some(pr) => {
            if shift <= 0.0 {
                res.seconds_solve = t.elapsed().as_secs_f64();
                return res;
            }
            let r = ce_solve(&mut kop, pr, g, shift, &pre, a_lower, &cg_cfg, c);
            res.seconds_solve = t.elapsed().as_secs_f64();
            r
        }
    };
    let (alpha, info) = result;
    res.outcome = Some(info);
    let t = Instant::now();
    res.delta = Some(kop.neg_jt(&alpha));
    res.seconds_map_back = t.elapsed().as_secs_f64();
    res
}

/// The cross-entropy dual solve by the symmetric Woodbury form with refinement (module
/// docs). Returns `α` and the outcome measured on `(HΘ + μI) α = g`.
#[allow(clippy::too_many_arguments)]
fn ce_solve<T: Real, M: Model<T> + ?Sized>(
    kop: &mut KernelOp<'_, T, M>,
    pr: &Mat<T>,
    g: &[T],
    mu: f64,
    pre: &Precond<'_>,
    a_lower: f64,
    cfg: &CgConfig,
    c: usize,
) -> (Vec<T>, CgOutcome) {
    let m = g.len();
    let sp = sqrt_probs(pr);
    let to_t = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
    let to_f = |v: &[T]| v.iter().map(|x| x.to_f64()).collect::<Vec<f64>>();
    let mut kv = vec![T::zero_impl(); m];
    let g64 = to_f(g);
    let gnorm = norm(&g64);
    let eps = T::EPSILON.to_f64();
    let mut alpha = vec![0.0; m];
    let mut resid = g64.clone();
    let (mut iters, mut restarts, mut a_norm) = (0, 0, a_lower);
    let mut best = f64::INFINITY;
    for round in 0..3 {
        // b = Lᵀ Θ resid
        kop.theta_mul(&to_t(&resid), &mut kv);
        let b = to_t(&apply_lt(&sp, pr, &to_f(&kv), c));
        let mut lv = vec![T::zero_impl(); m];
        let op = |v: &[T], out: &mut [T]| {
            let w = to_t(&apply_l(&sp, pr, &to_f(v), c));
            kop.theta_mul(&w, &mut lv);
            let lt = apply_lt(&sp, pr, &to_f(&lv), c);
            for ((o, &l), &vi) in out.iter_mut().zip(&lt).zip(v) {
                *o = T::from_f64(l + mu * vi.to_f64());
            }
        };
        let mut sub = cfg.clone();
        sub.max_iterations = cfg.max_iterations.saturating_sub(iters).max(1);
        let (beta, out, an) = preconditioned_cg(op, &b, pre, a_norm, None, &sub);
        iters += out.iterations;
        restarts += out.restarts + usize::from(round > 0);
        a_norm = a_norm.max(an);
        // α += (resid − Lβ)/μ
        let lb = apply_l(&sp, pr, &to_f(&beta), c);
        for ((a, &r), &l) in alpha.iter_mut().zip(&resid).zip(&lb) {
            *a += (r - l) / mu;
        }
        // true residual g − (HΘ + μI) α, with α rounded to T as it is returned
        let alpha_t = to_t(&alpha);
        alpha = to_f(&alpha_t);
        kop.theta_mul(&alpha_t, &mut kv);
        let h = apply_l(&sp, pr, &apply_lt(&sp, pr, &to_f(&kv), c), c);
        for i in 0..m {
            resid[i] = g64[i] - h[i] - mu * alpha[i];
        }
        let rn = norm(&resid);
        let target = match cfg.rtol {
            Some(rtol) => rtol * gnorm,
            None => 8.0 * eps * (a_norm * norm(&alpha) + gnorm),
        };
        let stagnated = rn > 0.5 * best;
        best = best.min(rn);
        if rn <= target || stagnated || iters >= cfg.max_iterations {
            break;
        }
    }
    let rn = norm(&resid);
    let an = norm(&alpha);
    let eta = if gnorm > 0.0 {
        rn / (a_norm * an + gnorm)
    } else {
        0.0
    };
    let converged = match cfg.rtol {
        Some(rtol) => rn <= rtol * gnorm,
        None => eta <= 64.0 * eps,
    };
    let outcome = CgOutcome {
        iterations: iters,
        relative_residual: if gnorm > 0.0 { rn / gnorm } else { 0.0 },
        backward_error: eta,
        restarts,
        converged: converged || gnorm == 0.0,
    };
    (to_t(&alpha), outcome)
}
