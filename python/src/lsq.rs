//! `least_squares`: Levenberg-Marquardt on residual and Jacobian callables written in Python.
//!
//! The solver runs with the GIL released; each call of a callable takes it back. When a
//! callable raises (or returns the wrong shape), the solve is stopped at once (the values
//! of that evaluation and every later one are NaN, which the solver rejects, and its
//! observer ends the solve) and that exception is raised from `least_squares`.

use crate::arrays::{Dtype, Scalar, as_ndarray, input, out1, output_of, shape_str, theta_dtype};
use crate::errors::{no_panic, value_error};
use crate::model::by_dtype;
use faer::MatMut;
use itlin::solve::{LeastSquares, LevenbergMarquardt, Report};
use numpy::PyUntypedArrayMethods;
use pyo3::prelude::*;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A problem whose residuals (and Jacobian, when given) are Python callables of θ.
struct PyProblem<T> {
    residuals: Py<PyAny>,
    jacobian: Option<Py<PyAny>>,
    n: usize,
    m: usize,
    /// The first exception a callable raised.
    error: Mutex<Option<PyErr>>,
    /// Set with `error`: every later evaluation returns NaN without calling Python.
    abort: Arc<AtomicBool>,
    /// `(θ₀, r(θ₀))` from the call that found `m`, served to the solver's first evaluation.
    first: Mutex<Option<(Vec<T>, Vec<T>)>>,
}

impl<T: Scalar> PyProblem<T> {
    fn fail(&self, e: PyErr) {
        let mut slot = self.error.lock().expect("error slot");
        if slot.is_none() {
            *slot = Some(e);
        }
        self.abort.store(true, Ordering::SeqCst);
    }

    /// `r(θ)` from the callable into `r`; false (and the error recorded) when it failed.
    fn call_residuals(&self, theta: &[T], r: &mut [T]) -> bool {
        let res = Python::attach(|py| -> PyResult<()> {
            let out = self.residuals.call1(py, (out1(py, theta.to_vec()),))?;
            let a = output_of::<T>(out.bind(py), "residuals(theta)")?;
            a.expect(
                &[Some(self.m)],
                &format!("({},), the length of residuals(theta0)", self.m),
            )?;
            r.copy_from_slice(a.data());
            Ok(())
        });
        match res {
            Ok(()) => true,
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }
}

impl<T: Scalar> LeastSquares<T> for PyProblem<T> {
    fn n_params(&self) -> usize {
        self.n
    }
    fn n_residuals(&self) -> usize {
        self.m
    }
    fn residuals(&self, theta: &[T], r: &mut [T]) {
        let nan = T::from_f64(f64::NAN);
        if let Some((t0, r0)) = self.first.lock().expect("cache").take()
            && t0 == theta
        {
            r.copy_from_slice(&r0);
            return;
        }
        if self.abort.load(Ordering::SeqCst) || !self.call_residuals(theta, r) {
            r.fill(nan);
        }
    }
    fn jacobian(&self, theta: &[T], mut j: MatMut<'_, T>) {
        let nan = T::from_f64(f64::NAN);
        let fill_nan = |j: &mut MatMut<'_, T>| {
            for k in 0..self.n {
                for i in 0..self.m {
                    j[(i, k)] = nan;
                }
            }
        };
        if self.abort.load(Ordering::SeqCst) {
            fill_nan(&mut j);
            return;
        }
        match &self.jacobian {
            Some(jac) => {
                let res = Python::attach(|py| -> PyResult<()> {
                    let out = jac.call1(py, (out1(py, theta.to_vec()),))?;
                    let a = output_of::<T>(out.bind(py), "jacobian(theta)")?;
                    a.expect(
                        &[Some(self.m), Some(self.n)],
                        &format!("(m, n) = ({}, {}), residuals by parameters", self.m, self.n),
                    )?;
                    let d = a.data();
                    for i in 0..self.m {
                        for k in 0..self.n {
                            j[(i, k)] = d[i * self.n + k];
                        }
                    }
                    Ok(())
                });
                if let Err(e) = res {
                    self.fail(e);
                    fill_nan(&mut j);
                }
            }
            None => {
                // central differences, h_k = ε^{1/3} max(1, |θ_k|)
                let h0 = T::EPSILON.to_f64().cbrt();
                let mut t = theta.to_vec();
                let (mut rp, mut rm) = (vec![nan; self.m], vec![nan; self.m]);
                for k in 0..self.n {
                    let h = h0 * theta[k].to_f64().abs().max(1.0);
                    t[k] = T::from_f64(theta[k].to_f64() + h);
                    let hp = t[k].to_f64() - theta[k].to_f64();
                    let ok = self.call_residuals(&t, &mut rp);
                    t[k] = T::from_f64(theta[k].to_f64() - h);
                    let hm = theta[k].to_f64() - t[k].to_f64();
                    let ok = ok && self.call_residuals(&t, &mut rm);
                    t[k] = theta[k];
                    if !ok {
                        fill_nan(&mut j);
                        return;
                    }
                    for i in 0..self.m {
                        j[(i, k)] = T::from_f64((rp[i].to_f64() - rm[i].to_f64()) / (hp + hm));
                    }
                }
            }
        }
    }
}

/// The outcome of `least_squares`.
#[pyclass(frozen, get_all, module = "itlin", name = "LeastSquaresReport")]
pub struct PyReport {
    /// The best θ found (shape (n,), the dtype of theta0).
    x: Py<PyAny>,
    /// Final cost `½‖r(x)‖²`.
    cost: f64,
    /// Cost at theta0.
    initial_cost: f64,
    /// Why the solve stopped, e.g. "converged (ftol)", "maximum number of evaluations reached".
    termination: String,
    /// Whether a convergence test was met.
    converged: bool,
    /// Trial steps computed (one linear solve each).
    iterations: usize,
    /// Trial steps accepted.
    accepted_steps: usize,
    /// Residual evaluations counted by the solver (theta0 included; finite-difference
    /// Jacobians are not counted).
    evaluations: usize,
    /// Jacobian evaluations.
    jacobian_evaluations: usize,
    /// The damping λ of every trial step.
    lambda_history: Vec<f64>,
}

#[pymethods]
impl PyReport {
    /// `‖r(x)‖ = √(2 cost)`.
    #[getter]
    fn residual_norm(&self) -> f64 {
        (2.0 * self.cost).sqrt()
    }
    fn __repr__(&self) -> String {
        format!(
            "LeastSquaresReport(termination='{}', cost={:e}, iterations={}, evaluations={})",
            self.termination, self.cost, self.iterations, self.evaluations
        )
    }
}

/// Options of the solver; `None` keeps `LevenbergMarquardt::new()`'s default.
#[derive(Clone, Copy)]
struct Options {
    ftol: Option<f64>,
    xtol: Option<f64>,
    gtol: Option<f64>,
    max_evaluations: Option<usize>,
    initial_lambda: Option<f64>,
}

fn lsq_t<T: Scalar>(
    py: Python<'_>,
    residuals: &Bound<'_, PyAny>,
    theta0: &Bound<'_, PyAny>,
    jacobian: Option<&Bound<'_, PyAny>>,
    o: Options,
) -> PyResult<PyReport> {
    let t0 = input::<T>(theta0, "theta0", "")?;
    if t0.shape().len() != 1 || t0.shape()[0] == 0 {
        return Err(value_error(format!(
            "theta0 has shape {}, expected (n,) with n ≥ 1",
            shape_str(t0.shape())
        )));
    }
    t0.finite()?;
    let mut theta = t0.data().to_vec();
    let n = theta.len();
    // r(θ₀) once, with the GIL, to learn m (a raise here propagates as it is)
    let r0 = residuals.call1((out1(py, theta.clone()),))?;
    let r0 = output_of::<T>(&r0, "residuals(theta0)")?;
    if r0.shape().len() != 1 || r0.shape()[0] == 0 {
        return Err(value_error(format!(
            "residuals(theta0) has shape {}, expected (m,) with m ≥ 1",
            shape_str(r0.shape())
        )));
    }
    let m = r0.shape()[0];
    let abort = Arc::new(AtomicBool::new(false));
    let problem = PyProblem {
        residuals: residuals.clone().unbind(),
        jacobian: jacobian.map(|j| j.clone().unbind()),
        n,
        m,
        error: Mutex::new(None),
        abort: abort.clone(),
        first: Mutex::new(Some((theta.clone(), r0.data().to_vec()))),
    };
    let mut lm = LevenbergMarquardt::<T>::new().with_observer(move |_| {
        if abort.load(Ordering::SeqCst) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    if let Some(v) = o.ftol {
        lm = lm.with_ftol(v);
    }
    if let Some(v) = o.xtol {
        lm = lm.with_xtol(v);
    }
    if let Some(v) = o.gtol {
        lm = lm.with_gtol(v);
    }
    if let Some(v) = o.max_evaluations {
        lm = lm.with_max_evaluations(v);
    }
    if let Some(v) = o.initial_lambda {
        lm = lm.with_initial_lambda(v);
    }
    let report: Report = py.detach(|| no_panic(|| lm.minimize(&problem, &mut theta)))?;
    if let Some(e) = problem.error.lock().expect("error slot").take() {
        return Err(e);
    }
    Ok(PyReport {
        x: out1(py, theta).into_any().unbind(),
        cost: report.cost,
        initial_cost: report.initial_cost,
        termination: report.termination.to_string(),
        converged: report.termination.is_converged(),
        iterations: report.iterations,
        accepted_steps: report.accepted_steps,
        evaluations: report.evaluations,
        jacobian_evaluations: report.jacobian_evaluations,
        lambda_history: report.lambda_history,
    })
}

/// least_squares(residuals, theta0, jacobian=None, *, ftol=None, xtol=None, gtol=None,
///               max_evaluations=None, initial_lambda=None) -> LeastSquaresReport
///
/// Minimises `F(θ) = ½‖r(θ)‖²` for `r: Rⁿ → Rᵐ` by Levenberg-Marquardt (Moré's scaling,
/// geodesic acceleration; the defaults of the Rust `LevenbergMarquardt::new()`: ftol = ε,
/// xtol = 10ε, gtol = ε of the dtype, 1000(n+1) evaluations, τ = 1e-6).
///
/// `residuals(theta)` returns an array of shape (m,); `jacobian(theta)` returns
/// `J = ∂r/∂θ` of shape (m, n) (`J[i, k] = ∂r_i/∂θ_k`). Without `jacobian`, J is taken by
/// central differences (2n residual calls). Both get a fresh float array θ of shape (n,)
/// with theta0's dtype (float32 or float64). If a callable raises, or returns the wrong
/// shape (ValueError), the solve stops and that exception propagates.
#[pyfunction]
#[pyo3(signature = (residuals, theta0, jacobian = None, *, ftol = None, xtol = None, gtol = None, max_evaluations = None, initial_lambda = None))]
#[allow(clippy::too_many_arguments)]
pub fn least_squares(
    py: Python<'_>,
    residuals: &Bound<'_, PyAny>,
    theta0: &Bound<'_, PyAny>,
    jacobian: Option<&Bound<'_, PyAny>>,
    ftol: Option<f64>,
    xtol: Option<f64>,
    gtol: Option<f64>,
    max_evaluations: Option<usize>,
    initial_lambda: Option<f64>,
) -> PyResult<PyReport> {
    if !residuals.is_callable() {
        return Err(value_error("residuals must be callable"));
    }
    let jacobian = jacobian.filter(|j| !j.is_none());
    if let Some(j) = jacobian
        && !j.is_callable()
    {
        return Err(value_error("jacobian must be callable or None"));
    }
    for (name, v) in [
        ("ftol", ftol),
        ("xtol", xtol),
        ("gtol", gtol),
        ("initial_lambda", initial_lambda),
    ] {
        if let Some(v) = v
            && !(v.is_finite() && v >= 0.0)
        {
            return Err(value_error(format!(
                "{name} must be finite and ≥ 0, got {v}"
            )));
        }
    }
    let o = Options {
        ftol,
        xtol,
        gtol,
        max_evaluations,
        initial_lambda,
    };
    // integer starting points (e.g. [1, 1]) are solved in float64
    let dt = match theta_dtype(theta0, "theta0") {
        Ok(d) => d,
        Err(e) => {
            let kind: String = as_ndarray(theta0, "theta0")?
                .dtype()
                .getattr("kind")?
                .extract()?;
            if !matches!(kind.as_str(), "i" | "u" | "b") {
                return Err(e);
            }
            Dtype::F64
        }
    };
    by_dtype!(dt, lsq_t(py, residuals, theta0, jacobian, o))
}
