//! `ntk`, `ntk_vector_product` and `kernel_distance`: the empirical neural tangent kernel
//! `Θ = J Jᵀ` of a model at θ on a batch.

use crate::arrays::{Scalar, input, out_symmetric, out1, theta_dtype};
use crate::errors::{no_panic, value_error};
use crate::model::{AnyModel, Batch, PyModel, by_dtype, check_budget};
use itlin::ntk::Method;
use pyo3::prelude::*;

/// Parses `"explicit"`, `"structured"` or `"auto"`.
fn parse_method(s: &str) -> PyResult<Method> {
    match s.to_ascii_lowercase().as_str() {
        "explicit" => Ok(Method::Explicit),
        "structured" => Ok(Method::Structured),
        "auto" => Ok(Method::Auto),
        _ => Err(value_error(format!(
            "method '{s}': expected 'explicit', 'structured' or 'auto'"
        ))),
    }
}

fn ntk_t<T: Scalar>(
    py: Python<'_>,
    m: &AnyModel,
    theta: &Bound<'_, PyAny>,
    x: &Bound<'_, PyAny>,
    method: Method,
) -> PyResult<Py<PyAny>> {
    let b = Batch::<T>::read(m, theta, x)?;
    let rows = b.n * m.n_outputs();
    // the kernel and its mirrored copy; the explicit method also holds J
    check_budget::<T>("the NTK", 2 * rows, rows)?;
    if method == Method::Explicit {
        check_budget::<T>("the Jacobian behind the explicit NTK", rows, m.n_params())?;
    }
    let (th, xs, model) = (b.theta.data(), b.x.mat(b.n, m.n_inputs()), m.model::<T>());
    let k = py.detach(|| no_panic(|| itlin::ntk::empirical(model, th, xs, method)))?;
    Ok(out_symmetric(py, k)?.into_any().unbind())
}

fn ntk_vp_t<T: Scalar>(
    py: Python<'_>,
    m: &AnyModel,
    theta: &Bound<'_, PyAny>,
    x: &Bound<'_, PyAny>,
    v: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let b = Batch::<T>::read(m, theta, x)?;
    let rows = b.n * m.n_outputs();
    let ctx = format!("theta has dtype {}", T::DTYPE.name());
    let v = input::<T>(v, "v", &ctx)?;
    v.expect(&[Some(rows)], &format!("(N*C,) = ({rows},)"))?;
    v.finite()?;
    let (th, xs, vs, model) = (
        b.theta.data(),
        b.x.mat(b.n, m.n_inputs()),
        v.data(),
        m.model::<T>(),
    );
    let out = py.detach(|| no_panic(|| itlin::ntk::ntk_vector_product(model, th, xs, vs)))?;
    Ok(out1(py, out).into_any().unbind())
}

/// ntk(net, theta, x, method="auto") -> ndarray of shape (N*C, N*C)
///
/// The empirical neural tangent kernel `Θ(X, X; θ) = J Jᵀ`, full and symmetric, rows and
/// columns sample-major (`n·C + c`), as `J @ J.T` with `J = net.jacobian(theta, x)`.
///
/// method="explicit" forms `J` and its Gram; "structured" sums per-layer Grams,
/// `Θ = Σ_l (G_l G_lᵀ) ⊙ ((s_w² A_{l−1} A_{l−1}ᵀ + s_b²) ⊗ 1_{C×C})` with `G_l = ∂f/∂z_l`
/// the backprop signals and `A_{l−1}` the layer inputs (no `J` in memory, about
/// `P / Σ widths` times fewer flops); "auto" takes the cheaper by a flop count.
#[pyfunction]
#[pyo3(signature = (net, theta, x, method = "auto"))]
pub fn ntk(
    py: Python<'_>,
    net: PyRef<'_, PyModel>,
    theta: &Bound<'_, PyAny>,
    x: &Bound<'_, PyAny>,
    method: &str,
) -> PyResult<Py<PyAny>> {
    let method = parse_method(method)?;
    by_dtype!(
        theta_dtype(theta, "theta")?,
        ntk_t(py, &net.inner, theta, x, method)
    )
}

/// ntk_vector_product(net, theta, x, v) -> ndarray of shape (N*C,)
///
/// `Θ v = J (Jᵀ v)` for `v` of shape (N*C,) (sample-major), without forming Θ or J: one
/// VJP and one JVP.
#[pyfunction]
pub fn ntk_vector_product(
    py: Python<'_>,
    net: PyRef<'_, PyModel>,
    theta: &Bound<'_, PyAny>,
    x: &Bound<'_, PyAny>,
    v: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    by_dtype!(
        theta_dtype(theta, "theta")?,
        ntk_vp_t(py, &net.inner, theta, x, v)
    )
}

fn distance_t<T: Scalar>(
    py: Python<'_>,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
) -> PyResult<f64> {
    let ctx = format!("k1 has dtype {}", T::DTYPE.name());
    let a = input::<T>(a, "k1", &ctx)?;
    let s = a.shape().to_vec();
    if s.len() != 2 || s[0] != s[1] || s[0] == 0 {
        return Err(value_error(format!(
            "k1 has shape {}, expected a non-empty square matrix",
            crate::arrays::shape_str(&s)
        )));
    }
    let b = input::<T>(b, "k2", &ctx)?;
    b.expect(
        &[Some(s[0]), Some(s[1])],
        &format!("{}, the shape of k1", crate::arrays::shape_str(&s)),
    )?;
    a.finite()?;
    b.finite()?;
    let (am, bm) = (a.mat(s[0], s[1]), b.mat(s[0], s[1]));
    py.detach(|| no_panic(|| itlin::ntk::kernel_distance(am, bm)))
}

/// kernel_distance(k1, k2) -> float
///
/// `d(Θ₁, Θ₂) = 1 − ⟨Θ₁, Θ₂⟩_F / (‖Θ₁‖_F ‖Θ₂‖_F)`: 0 for kernels that are multiples of each
/// other, how far the features moved between two NTKs of the same samples.
#[pyfunction]
pub fn kernel_distance(
    py: Python<'_>,
    k1: &Bound<'_, PyAny>,
    k2: &Bound<'_, PyAny>,
) -> PyResult<f64> {
    by_dtype!(theta_dtype(k1, "k1")?, distance_t(py, k1, k2))
}
