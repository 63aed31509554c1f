//! Plumbing shared by the generic least-squares drivers: counted and timed evaluations in f64,
//! the stopping tolerances, the observer type, and the input checks.

use super::least_squares::LeastSquares;
use super::report::{IterationInfo, Report, Termination, Timings};
use crate::Real;
use faer::Mat;
use std::fmt;
use std::marker::PhantomData;
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A per-iteration callback; `ControlFlow::Break(())` stops the solve.
pub(crate) type ObserverFn<T> =
    Box<dyn FnMut(&IterationInfo<'_, T>) -> ControlFlow<()> + Send + 'static>;

/// Optional observer, callable through `&self` (behind a mutex so the solver stays `Sync`).
pub(crate) struct Observer<T>(Option<Mutex<ObserverFn<T>>>);

impl<T> Observer<T> {
    pub(crate) fn none() -> Self {
        Observer(None)
    }
    pub(crate) fn new(f: ObserverFn<T>) -> Self {
        Observer(Some(Mutex::new(f)))
    }
    /// Calls the observer; `true` means "stop".
    pub(crate) fn call(&self, info: &IterationInfo<'_, T>) -> bool {
        match &self.0 {
            None => false,
            Some(m) => {
                // A poisoned mutex means an earlier observer call panicked; keep calling it.
                let mut f = m.lock().unwrap_or_else(|e| e.into_inner());
                f(info).is_break()
            }
        }
    }
}

impl<T> fmt::Debug for Observer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

/// Stopping tolerances common to the drivers (documented on the builders).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tolerances {
    pub ftol: Option<f64>,
    pub xtol: Option<f64>,
    pub gtol: f64,
    pub cost: f64,
    pub max_evaluations: Option<usize>,
}

impl Tolerances {
    pub(crate) const fn new() -> Self {
        Tolerances {
            ftol: None,
            xtol: None,
            gtol: 0.0,
            cost: 0.0,
            max_evaluations: None,
        }
    }
    /// `ftol`, defaulting to `√ε` of `T` (MINPACK `lmder1`).
    pub(crate) fn ftol<T: Real>(&self) -> f64 {
        self.ftol.unwrap_or(T::EPSILON.to_f64().sqrt())
    }
    /// `xtol`, defaulting to `√ε` of `T`.
    pub(crate) fn xtol<T: Real>(&self) -> f64 {
        self.xtol.unwrap_or(T::EPSILON.to_f64().sqrt())
    }
    /// Evaluation budget, defaulting to `100 (n + 1)` (MINPACK `lmder1`).
    pub(crate) fn max_evaluations(&self, n: usize) -> usize {
        self.max_evaluations
            .unwrap_or(100usize.saturating_mul(n.saturating_add(1)))
    }
}

/// Counted, timed evaluations of a problem, converted to f64.
pub(crate) struct Evaluator<'p, T: Real, P: LeastSquares<T> + ?Sized> {
    problem: &'p P,
    r_t: Vec<T>,
    j_t: Mat<T>,
    pub nfev: usize,
    pub njev: usize,
    pub t_res: Duration,
    pub t_jac: Duration,
    _t: PhantomData<T>,
}

impl<'p, T: Real, P: LeastSquares<T> + ?Sized> Evaluator<'p, T, P> {
    pub(crate) fn new(problem: &'p P) -> Self {
        let (m, n) = (problem.n_residuals(), problem.n_params());
        Evaluator {
            problem,
            r_t: vec![T::zero_impl(); m],
            j_t: Mat::zeros(m, n),
            nfev: 0,
            njev: 0,
            t_res: Duration::ZERO,
            t_jac: Duration::ZERO,
            _t: PhantomData,
        }
    }

    /// Evaluates `r(θ)` into `out` (f64); returns `½‖r‖²` (NaN or ∞ if any entry is not finite).
    pub(crate) fn residuals(&mut self, theta: &[T], out: &mut [f64]) -> f64 {
        let t0 = Instant::now();
        self.r_t.fill(T::zero_impl());
        self.problem.residuals(theta, &mut self.r_t);
        self.t_res += t0.elapsed();
        self.nfev += 1;
        let mut ok = true;
        for (o, r) in out.iter_mut().zip(&self.r_t) {
            *o = r.to_f64();
            ok &= o.is_finite();
        }
        if ok { half_norm2(out) } else { f64::NAN }
    }

    /// Evaluates `J(θ)` into `out` (f64, `m × n`); returns whether every entry is finite.
    pub(crate) fn jacobian(&mut self, theta: &[T], out: &mut Mat<f64>) -> bool {
        let t0 = Instant::now();
        self.j_t.fill(T::zero_impl());
        self.problem.jacobian(theta, self.j_t.as_mut());
        let mut ok = true;
        for k in 0..out.ncols() {
            for i in 0..out.nrows() {
                let v = self.j_t[(i, k)].to_f64();
                ok &= v.is_finite();
                out[(i, k)] = v;
            }
        }
        self.t_jac += t0.elapsed();
        self.njev += 1;
        ok
    }
}

/// `½‖v‖²`, accumulated in f64 (∞ on overflow).
pub(crate) fn half_norm2(v: &[f64]) -> f64 {
    0.5 * v.iter().map(|x| x * x).sum::<f64>()
}

/// Euclidean norm, with scaling so that it neither overflows nor underflows.
pub(crate) fn norm2(v: &[f64]) -> f64 {
    let s = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    if s == 0.0 || !s.is_finite() {
        return s;
    }
    s * v.iter().map(|x| (x / s) * (x / s)).sum::<f64>().sqrt()
}

/// `g = Jᵀ r` and the column norms of `J`.
pub(crate) fn gradient_and_column_norms(j: &Mat<f64>, r: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let n = j.ncols();
    let mut g = vec![0.0; n];
    let mut c = vec![0.0; n];
    let mut col = Vec::with_capacity(j.nrows());
    for k in 0..n {
        col.clear();
        col.extend((0..j.nrows()).map(|i| j[(i, k)]));
        g[k] = col.iter().zip(r).map(|(a, b)| a * b).sum();
        c[k] = norm2(&col);
    }
    (g, c)
}

/// MINPACK's scaled gradient measure `max_k |g_k| / (‖J_k‖ ‖r‖)` (columns with zero norm skipped).
pub(crate) fn gradient_cosine(g: &[f64], colnorms: &[f64], rnorm: f64) -> f64 {
    if rnorm == 0.0 {
        return 0.0;
    }
    g.iter()
        .zip(colnorms)
        .filter(|(_, c)| **c > 0.0)
        .map(|(gk, c)| (gk / (c * rnorm)).abs())
        .fold(0.0, f64::max)
}

/// Checks `θ` against the problem; `Err` is the `BadInput` message.
pub(crate) fn check_input<T: Real, P: LeastSquares<T> + ?Sized>(
    problem: &P,
    theta: &[T],
) -> Result<(), String> {
    let n = problem.n_params();
    if theta.len() != n {
        return Err(format!(
            "theta has length {} but the problem has n_params = {n}",
            theta.len()
        ));
    }
    Ok(())
}

/// Counters and history accumulated during a solve, turned into a [`Report`] at the end.
pub(crate) struct Progress {
    pub start: Instant,
    pub initial_cost: f64,
    pub iterations: usize,
    pub accepted: usize,
    pub lambdas: Vec<f64>,
    pub t_lin: Duration,
}

impl Progress {
    pub(crate) fn new() -> Self {
        Progress {
            start: Instant::now(),
            initial_cost: f64::NAN,
            iterations: 0,
            accepted: 0,
            lambdas: Vec::new(),
            t_lin: Duration::ZERO,
        }
    }

    pub(crate) fn finish<T: Real, P: LeastSquares<T> + ?Sized>(
        self,
        termination: Termination,
        cost: f64,
        ev: &Evaluator<'_, T, P>,
    ) -> Report {
        Report {
            termination,
            cost,
            initial_cost: self.initial_cost,
            iterations: self.iterations,
            accepted_steps: self.accepted,
            evaluations: ev.nfev,
            jacobian_evaluations: ev.njev,
            lambda_history: self.lambdas,
            timings: Timings {
                residuals: ev.t_res,
                jacobian: ev.t_jac,
                linear_solve: self.t_lin,
                total: self.start.elapsed(),
            },
        }
    }
}

/// A report for input that could not be used at all.
pub(crate) fn bad_input(msg: String) -> Report {
    Report {
        termination: Termination::BadInput(msg),
        cost: f64::NAN,
        initial_cost: f64::NAN,
        iterations: 0,
        accepted_steps: 0,
        evaluations: 0,
        jacobian_evaluations: 0,
        lambda_history: Vec::new(),
        timings: Timings::default(),
    }
}

/// `θ + δ` rounded to `T`, written into `out`.
pub(crate) fn add_step<T: Real>(theta: &[T], step: &[f64], out: &mut [T]) {
    for ((o, t), d) in out.iter_mut().zip(theta).zip(step) {
        *o = T::from_f64(t.to_f64() + d);
    }
}
