//! One damped Gauss-Newton step for a [`Model`], in the form the caller or [`Form::Auto`]
//! chooses.

use super::cg::{CgConfig, CgOutcome, Preconditioner, conjugate_gradient};
use super::dense::{DampedSolve, all_finite, damped_cholesky_solve, damped_lu_solve};
use super::nystrom::NtkNystrom;
pub(super) use super::spectral::sample_major;
use super::spectral::{Filter, SpectralCache};
use crate::linalg::{gram_lower, mirror_lower, par};
use crate::loss::{Loss, output_residual, softmax};
use crate::memory::{default_budget, dense_bytes};
use crate::{Jacobian, Model, Real};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef};
use std::time::Instant;

/// Which linear system the step solves (all give the same `δ`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Form {
    /// Choose by size: primal when `P ≤ N·C`, else dual when the `(N·C)²` kernel fits the
    /// memory budget, else CG.
    Auto,
    /// `(JᵀHJ + NλI) δ = −Jᵀg`, Cholesky of a `P × P` matrix.
    Primal,
    /// `δ = −Jᵀα`, `(HΘ + NλI) α = g`: Cholesky (MSE) or LU (cross-entropy) of an
    /// `(N·C) × (N·C)` matrix; `Θ` structured, `Jᵀα` one VJP.
    Dual,
    /// Conjugate gradients, matrix-free when the sizes ask for it. With
    /// [`Preconditioner::Nystrom`] or [`Preconditioner::PivotedCholesky`] (or
    /// [`GaussNewtonStep::with_cg_dual`]) CG solves the **dual** system
    /// `(Θ + NλI) α = g`, `δ = −Jᵀα` with kernel-vector products `Θv = J(Jᵀv)` (one VJP and
    /// one JVP; for cross-entropy the symmetric form `(LᵀΘL + NλI) β = LᵀΘg`,
    /// `α = (g − Lβ)/(Nλ)` with `H = LLᵀ`, refined on the true residual): vectors of length
    /// `N·C`, the small side when `P > N·C`, and no `(N·C)²` or `(N·C) × P` matrix. Otherwise
    /// CG runs on the primal `(JᵀHJ + NλI)` (see [`Preconditioner`] for which one is used);
    /// explicit `J` when it fits the memory budget, else JVP/VJP (Hessian-free). By default CG runs until
    /// the normwise backward error `‖b − Aδ‖ / (‖A‖‖δ‖ + ‖b‖)` of its iterate is `8 ε`
    /// (checked on the true residual, with restarts from it), so `δ` is as exact as the
    /// direct forms' (forward error ≲ `2κ(A)·8ε`); when it cannot get there the report says
    /// [`StepStatus::NotConverged`].
    Cg,
    /// One eigendecomposition `Θ = U S Uᵀ`, `α = U (S + NλI)⁻¹ Uᵀ g` (MSE; cross-entropy
    /// falls back to `Dual`). See [`SpectralCache`] to reuse it across many `λ`.
    Spectral,
}

/// How a step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StepStatus {
    /// Solved with the requested damping.
    Solved,
    /// The system needed more damping than requested (see `lambda_used`).
    DampingRaised,
    /// Residuals, Jacobian or kernel were not finite: `δ = 0`.
    NonFinite,
    /// No damping up to the retry limit gave a finite solution: `δ = 0`.
    Failed,
    /// CG stopped at its iteration limit, lost positive curvature, or reached the attainable
    /// accuracy before its tolerance: `δ` is the last iterate (see `cg` in the report for
    /// its residual and backward error).
    NotConverged,
}

/// What happened in one step: form, damping, iterations and a time split.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepReport {
    /// The form actually used.
    pub form: Form,
    /// Outcome.
    pub status: StepStatus,
    /// Requested damping `λ`.
    pub lambda: f64,
    /// Damping actually used after retries.
    pub lambda_used: f64,
    /// Times the damping was raised.
    pub damping_retries: usize,
    /// CG iterations and final relative residual (CG form only).
    pub cg: Option<CgOutcome>,
    /// Mean loss at θ.
    pub loss: f64,
    /// Predicted decrease of the (undamped) quadratic model of the mean loss, when asked for
    /// with [`GaussNewtonStep::with_predicted_reduction`].
    pub predicted_reduction: Option<f64>,
    /// Seconds: forward pass and residuals.
    pub seconds_residual: f64,
    /// Seconds: Jacobian / kernel assembly.
    pub seconds_assemble: f64,
    /// Seconds: factorisation and solve (or CG iterations).
    pub seconds_solve: f64,
    /// Seconds: the final `Jᵀα` / back-substitution into parameter space.
    pub seconds_map_back: f64,
}

/// A damped Gauss-Newton step, configured with a builder.
///
/// ```
/// use itlin::{Mlp, Activation, Init};
/// use itlin::solve::{GaussNewtonStep, Loss, Form};
/// let mlp = Mlp::new(&[4, 8, 2], Activation::Tanh).unwrap();
/// let theta: Vec<f64> = mlp.init(Init::Standard, 0);
/// let x = faer::Mat::from_fn(5, 4, |i, j| (i as f64 - j as f64) / 4.0);
/// let y = faer::Mat::from_fn(5, 2, |i, j| ((i + j) % 2) as f64);
/// let (delta, report) = GaussNewtonStep::new(Loss::Mse).with_damping(1e-3).with_form(Form::Dual)
///     .solve(&mlp, &theta, x.as_ref(), y.as_ref());
/// assert_eq!(delta.len(), theta.len());
/// assert_eq!(report.form, Form::Dual);
/// ```
#[derive(Clone, Debug)]
pub struct GaussNewtonStep {
    loss: Loss,
    lambda: f64,
    form: Form,
    memory_budget: u64,
    pub(super) cg: CgConfig,
    pub(super) cg_dual: bool,
    pub(super) nystrom_seed: u64,
    predicted_reduction: bool,
}

impl GaussNewtonStep {
    /// Defaults: damping `λ = 1e-3`, [`Form::Auto`], memory budget
    /// [`default_budget`](crate::memory::default_budget), CG stopped at a backward error of
    /// `8 ε` (see [`Form::Cg`]) within 2,000 iterations, [`Preconditioner::Auto`], no
    /// predicted reduction.
    pub fn new(loss: Loss) -> Self {
        Self {
            loss,
            lambda: 1e-3,
            form: Form::Auto,
            memory_budget: default_budget(),
            cg: CgConfig::default(),
            cg_dual: false,
            nystrom_seed: 0,
            predicted_reduction: false,
        }
    }
    /// Damping `λ ≥ 0` (the system is `JᵀHJ + NλI`).
    pub fn with_damping(mut self, lambda: f64) -> Self {
        self.lambda = lambda.max(0.0);
        self
    }
    /// The form to solve.
    pub fn with_form(mut self, form: Form) -> Self {
        self.form = form;
        self
    }
    /// Bytes allowed for `J` and dense kernels.
    pub fn with_memory_budget(mut self, bytes: u64) -> Self {
        self.memory_budget = bytes;
        self
    }
    /// Stops CG on the relative residual `‖b − Aδ‖ ≤ rtol ‖b‖` instead of the default
    /// backward-error test (see [`Form::Cg`]). The forward error is then up to `κ(A)·rtol`.
    pub fn with_cg_tolerance(mut self, rtol: f64) -> Self {
        self.cg.rtol = Some(rtol);
        self
    }
    /// The CG preconditioner (default [`Preconditioner::Auto`]).
    pub fn with_cg_preconditioner(mut self, preconditioner: Preconditioner) -> Self {
        self.cg.preconditioner = preconditioner;
        self
    }
    /// CG iteration limit (operator applications).
    pub fn with_cg_max_iterations(mut self, iters: usize) -> Self {
        self.cg.max_iterations = iters;
        self
    }
    /// Also compute the predicted decrease of the quadratic model (one extra JVP).
    pub fn with_predicted_reduction(mut self, yes: bool) -> Self {
        self.predicted_reduction = yes;
        self
    }

    /// The form [`Form::Auto`] resolves to for these sizes.
    pub fn resolve_form<T: Real>(&self, n: usize, c: usize, p: usize) -> Form {
        let m = n * c;
        match self.form {
            Form::Auto => {
                if p <= m && dense_bytes::<T>(p, p) + dense_bytes::<T>(m, p) <= self.memory_budget {
                    Form::Primal
                } else if 2 * dense_bytes::<T>(m, m) <= self.memory_budget {
                    Form::Dual
                } else {
                    Form::Cg
                }
            }
            Form::Spectral if self.loss == Loss::CrossEntropy => Form::Dual,
            f => f,
        }
    }

    /// Solves the step at θ: returns `δ` (length `P`) and the report.
    ///
    /// # Panics
    /// If `θ`, `X` or `Y` do not fit the model (`Y` must be `N × C`).
    #[track_caller]
    pub fn solve<T: Real, M: Model<T> + ?Sized>(
        &self,
        model: &M,
        theta: &[T],
        x: MatRef<'_, T>,
        y: MatRef<'_, T>,
    ) -> (Vec<T>, StepReport) {
        self.solve_impl(model, theta, x, y, None, None)
    }

    #[track_caller]
    pub(super) fn solve_impl<T: Real, M: Model<T> + ?Sized>(
        &self,
        model: &M,
        theta: &[T],
        x: MatRef<'_, T>,
        y: MatRef<'_, T>,
        f_at: Option<MatRef<'_, T>>,
        nystrom: Option<&NtkNystrom>,
    ) -> (Vec<T>, StepReport) {
        let (n, c, p) = (x.nrows(), model.n_outputs(), model.n_params());
        assert!(
            y.nrows() == n && y.ncols() == c,
            "GaussNewtonStep::solve: Y is {}×{}, expected N×C = {n}×{c}",
            y.nrows(),
            y.ncols()
        );
        let form = self.resolve_form::<T>(n, c, p);
        let t0 = Instant::now();
        let f = match f_at {
            Some(f) => f.to_owned(),
            None => model.forward(theta, x),
        };
        let g = output_residual(self.loss, f.as_ref(), y);
        let probs = (self.loss == Loss::CrossEntropy).then(|| softmax(f.as_ref()));
        let mut report = StepReport {
            form,
            status: StepStatus::Solved,
            lambda: self.lambda,
            lambda_used: self.lambda,
            damping_retries: 0,
            cg: None,
            loss: crate::loss::loss_value(self.loss, f.as_ref(), y),
            predicted_reduction: None,
            seconds_residual: t0.elapsed().as_secs_f64(),
            seconds_assemble: 0.0,
            seconds_solve: 0.0,
            seconds_map_back: 0.0,
        };
        let zero = vec![T::zero_impl(); p];
        if !all_finite(g.as_ref()) {
            report.status = StepStatus::NonFinite;
            return (zero, report);
        }
        let g_vec = sample_major(g.as_ref());
        let shift = n as f64 * self.lambda;
        let delta = match form {
            Form::Primal => {
                self.primal(model, theta, x, &g_vec, probs.as_ref(), shift, &mut report)
            }
            Form::Dual => self.dual(model, theta, x, &g_vec, probs.as_ref(), shift, &mut report),
            Form::Spectral => {
                let t = Instant::now();
                let cache = SpectralCache::new(model, theta, x, y);
                report.seconds_assemble = t.elapsed().as_secs_f64();
                match cache {
                    Some(cache) => {
                        let t = Instant::now();
                        let d = cache.delta(
                            model,
                            theta,
                            x,
                            Filter::Damping {
                                lambda: self.lambda,
                            },
                        );
                        report.seconds_map_back = t.elapsed().as_secs_f64();
                        Some(d)
                    }
                    None => None,
                }
            }
            Form::Cg if self.cg_is_dual() || nystrom.is_some() => {
                let g = (&g_vec[..], probs.as_ref());
                self.dual_cg(model, theta, x, g, shift, nystrom, &mut report)
            }
            Form::Cg => self.cg(model, theta, x, &g_vec, probs.as_ref(), shift, &mut report),
            Form::Auto => unreachable!("resolved above"),
        };
        let Some(delta) = delta.filter(|d| d.iter().all(|v| v.is_finite())) else {
            if report.status == StepStatus::Solved || report.status == StepStatus::DampingRaised {
                report.status = StepStatus::Failed;
            }
            return (zero, report);
        };
        if report.damping_retries > 0 {
            report.status = StepStatus::DampingRaised;
        }
        if self.predicted_reduction {
            report.predicted_reduction = Some(predicted_reduction(
                model,
                theta,
                x,
                &delta,
                &g_vec,
                probs.as_ref(),
            ));
        }
        (delta, report)
    }

    #[allow(clippy::too_many_arguments)]
    fn primal<T: Real, M: Model<T> + ?Sized>(
        &self,
        model: &M,
        theta: &[T],
        x: MatRef<'_, T>,
        g: &[T],
        probs: Option<&Mat<T>>,
        shift: f64,
        report: &mut StepReport,
    ) -> Option<Vec<T>> {
        let t = Instant::now();
        let j = model.jacobian(theta, x);
        let p = j.ncols();
        let mut a = Mat::<T>::zeros(p, p);
        match probs {
            None => gram_lower(a.as_mut(), j.as_ref().transpose(), T::one_impl(), false),
            Some(pr) => {
                let hj = h_times_rows(pr, j.as_ref());
                matmul(
                    a.as_mut(),
                    Accum::Replace,
                    j.as_ref().transpose(),
                    hj.as_ref(),
                    T::one_impl(),
                    par(),
                );
            }
        }
        if !all_finite(a.as_ref()) {
            report.status = StepStatus::NonFinite;
            return None;
        }
        let mut rhs = j.tmul_vec(g);
        rhs.iter_mut().for_each(|v| *v = -*v);
        report.seconds_assemble = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let sol = damped_cholesky_solve(
            a.as_ref(),
            shift,
            MatRef::from_column_major_slice(&rhs, p, 1),
        );
        report.seconds_solve = t.elapsed().as_secs_f64();
        let sol = record(sol, x.nrows(), report)?;
        Some((0..p).map(|i| sol.x[(i, 0)]).collect())
    }

    #[allow(clippy::too_many_arguments)]
    fn dual<T: Real, M: Model<T> + ?Sized>(
        &self,
        model: &M,
        theta: &[T],
        x: MatRef<'_, T>,
        g: &[T],
        probs: Option<&Mat<T>>,
        shift: f64,
        report: &mut StepReport,
    ) -> Option<Vec<T>> {
        let (n, c) = (x.nrows(), model.n_outputs());
        let m = n * c;
        let t = Instant::now();
        let mut k = model.ntk_lower(theta, x, crate::ntk::Method::Auto);
        if !all_finite_lower(k.as_ref()) {
            report.status = StepStatus::NonFinite;
            return None;
        }
        let rhs = MatRef::from_column_major_slice(g, m, 1);
        let sol = match probs {
            None => {
                report.seconds_assemble = t.elapsed().as_secs_f64();
                let t = Instant::now();
                let s = damped_cholesky_solve(k.as_ref(), shift, rhs);
                report.seconds_solve = t.elapsed().as_secs_f64();
                s
            }
            Some(pr) => {
                mirror_lower(k.as_mut());
                let hk = h_times_rows(pr, k.as_ref());
                report.seconds_assemble = t.elapsed().as_secs_f64();
                let t = Instant::now();
                let s = damped_lu_solve(hk.as_ref(), shift, rhs);
                report.seconds_solve = t.elapsed().as_secs_f64();
                s
            }
        };
        let sol = record(sol, n, report)?;
        let t = Instant::now();
        let alpha: Vec<T> = (0..m).map(|i| -sol.x[(i, 0)]).collect();
        let d = model.vjp(theta, x, MatRef::from_row_major_slice(&alpha, n, c));
        report.seconds_map_back = t.elapsed().as_secs_f64();
        Some(d)
    }

    #[allow(clippy::too_many_arguments)]
    fn cg<T: Real, M: Model<T> + ?Sized>(
        &self,
        model: &M,
        theta: &[T],
        x: MatRef<'_, T>,
        g: &[T],
        probs: Option<&Mat<T>>,
        shift: f64,
        report: &mut StepReport,
    ) -> Option<Vec<T>> {
        let (n, c, p) = (x.nrows(), model.n_outputs(), model.n_params());
        let t = Instant::now();
        let shift_t = T::from_f64(shift);
        let explicit = dense_bytes::<T>(n * c, p) <= self.memory_budget;
        let (b, outcome) = if explicit {
            let j = model.jacobian(theta, x);
            let mut b = j.tmul_vec(g);
            b.iter_mut().for_each(|v| *v = -*v);
            let diag = gn_diagonal(&j, probs);
            report.seconds_assemble = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let op = |v: &[T], out: &mut [T]| {
                match probs {
                    None => out.copy_from_slice(&j.gn_mul_vec(v)),
                    Some(pr) => {
                        out.copy_from_slice(&j.tmul_vec(&apply_h(Some(pr), &j.mul_vec(v), c)))
                    }
                }
                T::axpy(shift_t, v, out);
            };
            let pre: Vec<T> = diag
                .iter()
                .map(|&d| T::one_impl() / (d + shift_t).max(T::from_f64(f64::MIN_POSITIVE)))
                .collect();
            let mut cfg = self.cg.clone();
            if cfg.preconditioner == Preconditioner::Auto && p > n * c {
                cfg.preconditioner = Preconditioner::None;
            }
            let r = conjugate_gradient(op, &b, Some(&pre), None, &cfg);
            report.seconds_solve = t.elapsed().as_secs_f64();
            (b, r)
        } else {
            let u = MatRef::from_row_major_slice(g, n, c);
            let mut b = model.vjp(theta, x, u);
            b.iter_mut().for_each(|v| *v = -*v);
            report.seconds_assemble = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let op = |v: &[T], out: &mut [T]| {
                let (_, jv) = model.jvp(theta, x, v);
                let hjv = apply_h(probs, &sample_major(jv.as_ref()), c);
                out.copy_from_slice(&model.vjp(theta, x, MatRef::from_row_major_slice(&hjv, n, c)));
                T::axpy(shift_t, v, out);
            };
            let r = conjugate_gradient(op, &b, None, None, &self.cg);
            report.seconds_solve = t.elapsed().as_secs_f64();
            (b, r)
        };
        let _ = b;
        let (sol, info) = outcome;
        if !info.converged {
            report.status = StepStatus::NotConverged;
        }
        report.cg = Some(info);
        Some(sol)
    }
}

fn record<T: Real>(
    sol: Option<DampedSolve<T>>,
    n: usize,
    report: &mut StepReport,
) -> Option<DampedSolve<T>> {
    let sol = sol?;
    report.damping_retries = sol.retries;
    report.lambda_used = sol.shift / n.max(1) as f64;
    Some(sol)
}

fn all_finite_lower<T: Real>(k: MatRef<'_, T>) -> bool {
    (0..k.ncols()).all(|j| (j..k.nrows()).all(|i| k[(i, j)].is_finite()))
}

/// `H v` with per-sample blocks `H_n = diag(p_n) − p_n p_nᵀ` (identity when `probs` is None).
pub(crate) fn apply_h<T: Real>(probs: Option<&Mat<T>>, v: &[T], c: usize) -> Vec<T> {
    let Some(pr) = probs else { return v.to_vec() };
    let mut out = vec![T::zero_impl(); v.len()];
    for (nidx, (vo, vi)) in out.chunks_exact_mut(c).zip(v.chunks_exact(c)).enumerate() {
        let mut pv = T::zero_impl();
        for k in 0..c {
            pv += pr[(nidx, k)] * vi[k];
        }
        for k in 0..c {
            vo[k] = pr[(nidx, k)] * (vi[k] - pv);
        }
    }
    out
}

/// `H Θ` applied to the rows of a full `(N·C) × (N·C)` matrix.
/// Decrease of the Gauss-Newton model of the mean loss for the step `δ`:
/// `−(gᵀJδ + ½ (Jδ)ᵀH(Jδ)) / N`, with one JVP.
pub(crate) fn predicted_reduction<T: Real, M: Model<T> + ?Sized>(
    model: &M,
    theta: &[T],
    x: MatRef<'_, T>,
    delta: &[T],
    g: &[T],
    probs: Option<&Mat<T>>,
) -> f64 {
    let (_, jd) = model.jvp(theta, x, delta);
    let jd = sample_major(jd.as_ref());
    let hjd = apply_h(probs, &jd, model.n_outputs());
    let dot = |a: &[T], b: &[T]| {
        a.iter()
            .zip(b)
            .map(|(u, v)| u.to_f64() * v.to_f64())
            .sum::<f64>()
    };
    -(dot(g, &jd) + 0.5 * dot(&jd, &hjd)) / x.nrows().max(1) as f64
}

pub(crate) fn h_times_rows<T: Real>(probs: &Mat<T>, k: MatRef<'_, T>) -> Mat<T> {
    let (m, c) = (k.nrows(), probs.ncols());
    let mut out = Mat::<T>::zeros(m, k.ncols());
    for j in 0..k.ncols() {
        for nidx in 0..m / c {
            let mut pv = T::zero_impl();
            for a in 0..c {
                pv += probs[(nidx, a)] * k[(nidx * c + a, j)];
            }
            for a in 0..c {
                out[(nidx * c + a, j)] = probs[(nidx, a)] * (k[(nidx * c + a, j)] - pv);
            }
        }
    }
    out
}

/// `diag(JᵀHJ)`.
fn gn_diagonal<T: Real>(j: &Jacobian<T>, probs: Option<&Mat<T>>) -> Vec<T> {
    let (m, p) = (j.nrows(), j.ncols());
    let mut d = vec![T::zero_impl(); p];
    match probs {
        None => {
            for r in 0..m {
                for (dv, &v) in d.iter_mut().zip(j.row(r)) {
                    *dv += v * v;
                }
            }
        }
        Some(pr) => {
            let c = pr.ncols();
            let mut s = vec![T::zero_impl(); p];
            for nidx in 0..m / c {
                s.fill(T::zero_impl());
                for a in 0..c {
                    let pa = pr[(nidx, a)];
                    for ((dv, sv), &v) in d.iter_mut().zip(s.iter_mut()).zip(j.row(nidx * c + a)) {
                        *dv += pa * v * v;
                        *sv += pa * v;
                    }
                }
                for (dv, &sv) in d.iter_mut().zip(&s) {
                    *dv -= sv * sv;
                }
            }
        }
    }
    d
}

/// One damped Gauss-Newton step `δ` at θ (see the module docs for the system solved).
/// `y` is `N × C`: targets for MSE, one-hot (or probability) rows for cross-entropy.
/// On non-finite residuals, or if no damping gives a finite solution, returns zeros; with
/// [`Form::Cg`] (or [`Form::Auto`] resolving to it) a solve that did not reach its tolerance
/// returns the last iterate. Use [`GaussNewtonStep::solve`] to see which in the report
/// ([`StepStatus`], and [`CgOutcome`](super::CgOutcome) for CG).
///
/// # Panics
/// If `θ`, `X` or `Y` do not fit the model.
#[track_caller]
pub fn gauss_newton_step<T: Real, M: Model<T> + ?Sized>(
    model: &M,
    theta: &[T],
    x: MatRef<'_, T>,
    y: MatRef<'_, T>,
    loss: Loss,
    lambda: f64,
    form: Form,
) -> Vec<T> {
    GaussNewtonStep::new(loss)
        .with_damping(lambda)
        .with_form(form)
        .solve(model, theta, x, y)
        .0
}
