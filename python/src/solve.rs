//! `gauss_newton_step` and `gradient_descent_closed_form`: one damped Gauss-Newton step of a
//! model at θ, in the form the caller or the size-based choice picks.

use crate::arrays::{Scalar, out1, theta_dtype};
use crate::errors::{no_panic, to_py, value_error};
use crate::model::{AnyModel, Batch, PyModel, by_dtype, check_budget};
use itlin::solve::{Form, GaussNewtonStep, Loss, StepStatus};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Parses a form name.
fn parse_form(s: &str) -> PyResult<Form> {
    match s.to_ascii_lowercase().as_str() {
        "auto" => Ok(Form::Auto),
        "primal" => Ok(Form::Primal),
        "dual" => Ok(Form::Dual),
        "cg" => Ok(Form::Cg),
        "spectral" => Ok(Form::Spectral),
        _ => Err(value_error(format!(
            "form '{s}': expected 'auto', 'primal', 'dual', 'cg' or 'spectral'"
        ))),
    }
}

/// Refuses a forced dense form whose matrices exceed the memory budget.
fn check_form<T>(form: Form, n: usize, c: usize, p: usize) -> PyResult<()> {
    let m = n * c;
    match form {
        Form::Primal => {
            check_budget::<T>("the primal Gauss-Newton matrix JᵀJ", p, p)?;
            check_budget::<T>("the Jacobian of the primal form", m, p)
        }
        Form::Dual | Form::Spectral => check_budget::<T>("the kernel of the dual form", 2 * m, m),
        Form::Auto | Form::Cg => Ok(()),
    }
}

fn status_name(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Solved => "solved",
        StepStatus::DampingRaised => "damping_raised",
        StepStatus::NonFinite => "non_finite",
        StepStatus::Failed => "failed",
        StepStatus::NotConverged => "not_converged",
    }
}

#[allow(clippy::too_many_arguments)]
fn gn_t<T: Scalar>(
    py: Python<'_>,
    m: &AnyModel,
    theta: &Bound<'_, PyAny>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    loss: Loss,
    damping: f64,
    form: Form,
    want_report: bool,
) -> PyResult<Py<PyAny>> {
    let b = Batch::<T>::read(m, theta, x)?;
    let y = b.outputs_like(m, y, "y")?;
    let (c, p) = (m.n_outputs(), m.n_params());
    let step = GaussNewtonStep::new(loss)
        .with_damping(damping)
        .with_form(form);
    check_form::<T>(step.resolve_form::<T>(b.n, c, p), b.n, c, p)?;
    let (th, xs, ys, model) = (
        b.theta.data(),
        b.x.mat(b.n, m.n_inputs()),
        y.mat(b.n, c),
        m.model::<T>(),
    );
    let (delta, report) = py.detach(|| no_panic(|| step.solve(model, th, xs, ys)))?;
    if matches!(report.status, StepStatus::NonFinite | StepStatus::Failed) {
        let msg = format!(
            "gauss_newton_step: {} (the loss at theta is {}); the step is zero",
            match report.status {
                StepStatus::NonFinite => "the outputs or residuals are not finite",
                _ => "no damping up to the retry limit gave a finite solution",
            },
            report.loss
        );
        let warn = py.get_type::<pyo3::exceptions::PyRuntimeWarning>();
        PyErr::warn(py, &warn, &std::ffi::CString::new(msg).expect("no NUL"), 1)?;
    }
    let delta = out1(py, delta).into_any();
    if !want_report {
        return Ok(delta.unbind());
    }
    let json =
        serde_json::to_string(&report).map_err(|e| to_py(itlin::Error::data(e.to_string())))?;
    let d = py
        .import("json")?
        .call_method1("loads", (json,))?
        .cast_into::<PyDict>()?;
    d.set_item("status", status_name(report.status))?;
    d.set_item("form", format!("{:?}", report.form).to_ascii_lowercase())?;
    Ok((delta, d).into_pyobject(py)?.into_any().unbind())
}

/// gauss_newton_step(net, theta, x, y, loss="mse", damping=1e-3, form="auto", report=False)
///     -> ndarray of shape (P,)  (or (delta, report_dict) with report=True)
///
/// One damped Gauss-Newton step δ at θ for the mean loss over the batch: the minimiser of
/// `(1/N) Σ_n [g_nᵀ (Jδ)_n + ½ (Jδ)_nᵀ H_n (Jδ)_n] + (λ/2)‖δ‖²`, i.e. the solution of
///
///     (JᵀHJ + NλI) δ = −Jᵀg,
///
/// with `J = net.jacobian(theta, x)`, `λ = damping`, and for loss="mse" (`L = (1/2N) Σ ‖f_n − y_n‖²`)
/// `g = vec(f − y)`, `H = I`; for loss="ce" (mean softmax cross-entropy, `y` one-hot or
/// probability rows) `g_n = p_n − y_n`, `H_n = diag(p_n) − p_n p_nᵀ` (the GGN).
///
/// form: "primal" (Cholesky of the P×P matrix), "dual" (`δ = −Jᵀα`,
/// `(HΘ + NλI) α = g` on the (N·C)² kernel), "cg" (conjugate gradients with JVP/VJP),
/// "spectral" (eigendecomposition of Θ; MSE), or "auto" (primal when P ≤ N·C and it fits
/// the memory budget, else dual when the kernel fits, else CG). All give the same δ.
///
/// With report=True also returns a dict: form used, status ("solved", "damping_raised",
/// "not_converged", "non_finite", "failed"), lambda, lambda_used, loss, timings. A
/// "non_finite" or "failed" step is zero and also raises a RuntimeWarning.
#[pyfunction]
#[pyo3(signature = (net, theta, x, y, loss = "mse", damping = 1e-3, form = "auto", report = false))]
#[allow(clippy::too_many_arguments)]
pub fn gauss_newton_step(
    py: Python<'_>,
    net: PyRef<'_, PyModel>,
    theta: &Bound<'_, PyAny>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    loss: &str,
    damping: f64,
    form: &str,
    report: bool,
) -> PyResult<Py<PyAny>> {
    let loss: Loss = loss.parse().map_err(to_py)?;
    let form = parse_form(form)?;
    if !(damping.is_finite() && damping >= 0.0) {
        return Err(value_error(format!(
            "damping must be finite and ≥ 0, got {damping}"
        )));
    }
    by_dtype!(
        theta_dtype(theta, "theta")?,
        gn_t(py, &net.inner, theta, x, y, loss, damping, form, report)
    )
}

#[allow(clippy::too_many_arguments)]
fn gd_t<T: Scalar>(
    py: Python<'_>,
    m: &AnyModel,
    theta: &Bound<'_, PyAny>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    lr: f64,
    k: u64,
) -> PyResult<Py<PyAny>> {
    let b = Batch::<T>::read(m, theta, x)?;
    let y = b.outputs_like(m, y, "y")?;
    let c = m.n_outputs();
    check_form::<T>(Form::Spectral, b.n, c, m.n_params())?;
    let (th, xs, ys, model) = (
        b.theta.data(),
        b.x.mat(b.n, m.n_inputs()),
        y.mat(b.n, c),
        m.model::<T>(),
    );
    let delta = py.detach(|| {
        no_panic(|| itlin::solve::gradient_descent_closed_form(model, th, xs, ys, lr, k))
    })?;
    Ok(out1(py, delta).into_any().unbind())
}

/// gradient_descent_closed_form(net, theta, x, y, lr, k) -> ndarray of shape (P,)
///
/// The displacement δ_K of `k` full-batch gradient-descent steps of size `lr` on the
/// linearised mean MSE `(1/2N)‖f(X; θ) + J δ − Y‖²`, in closed form: with `Θ = U S Uᵀ`,
/// `δ_K = −Jᵀ U diag(φ_K(s_i)) Uᵀ r`, `φ_K(s) = (1 − (1 − lr·s/N)^K)/s` (limit `lr·K/N`
/// as s → 0) and `r = vec(f − y)`. One eigendecomposition, so `k = 10⁶` costs as much as 1.
#[pyfunction]
pub fn gradient_descent_closed_form(
    py: Python<'_>,
    net: PyRef<'_, PyModel>,
    theta: &Bound<'_, PyAny>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    lr: f64,
    k: u64,
) -> PyResult<Py<PyAny>> {
    if !(lr.is_finite() && lr > 0.0) {
        return Err(value_error(format!("lr must be finite and > 0, got {lr}")));
    }
    by_dtype!(
        theta_dtype(theta, "theta")?,
        gd_t(py, &net.inner, theta, x, y, lr, k)
    )
}
