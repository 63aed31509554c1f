//! `_time_rust`: times the crate call behind a binding function in this same process, on
//! the same (borrowed) arrays, with nothing of the binding around it: the reference for the
//! binding's overhead (`bench/bench_python.py` alternates it with the Python call).

use crate::arrays::{Scalar, input, theta_dtype};
use crate::errors::value_error;
use crate::model::{AnyModel, PyModel, by_dtype};
use itlin::ntk::Method;
use itlin::solve::{Form, Loss, gauss_newton_step};
use pyo3::prelude::*;
use std::hint::black_box;
use std::time::Instant;

#[allow(clippy::too_many_arguments)]
fn time_t<T: Scalar>(
    py: Python<'_>,
    m: &AnyModel,
    op: &str,
    theta: &Bound<'_, PyAny>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    v: &Bound<'_, PyAny>,
    reps: usize,
) -> PyResult<Vec<f64>> {
    let b = crate::model::Batch::<T>::read(m, theta, x)?;
    let y = b.outputs_like(m, y, "y")?;
    let v = input::<T>(v, "v", "")?;
    let (th, xs, ys, vs) = (
        b.theta.data(),
        b.x.mat(b.n, m.n_inputs()),
        y.mat(b.n, m.n_outputs()),
        v.data(),
    );
    let model = m.model::<T>();
    let call: Box<dyn Fn() + Send + Sync + '_> = match op {
        "forward" => Box::new(move || drop(black_box(model.forward(th, xs)))),
        "jvp" => Box::new(move || drop(black_box(model.jvp(th, xs, vs)))),
        "vjp" => Box::new(move || drop(black_box(model.vjp(th, xs, ys)))),
        "jacobian" => Box::new(move || drop(black_box(model.jacobian(th, xs)))),
        "ntk" => Box::new(move || {
            drop(black_box(itlin::ntk::empirical(
                model,
                th,
                xs,
                Method::Structured,
            )))
        }),
        "gn_step" => Box::new(move || {
            drop(black_box(gauss_newton_step(
                model,
                th,
                xs,
                ys,
                Loss::Mse,
                1e-3,
                Form::Auto,
            )))
        }),
        _ => return Err(value_error(format!("unknown op '{op}'"))),
    };
    Ok(py.detach(|| {
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                call();
                t.elapsed().as_secs_f64()
            })
            .collect()
    }))
}

/// _time_rust(net, op, theta, x, y, v, reps) -> list of seconds: the crate call behind
/// `op` ("forward", "jvp", "vjp" (cotangent y), "jacobian", "ntk" (structured), "gn_step"
/// (MSE, λ = 1e-3, form auto)) timed `reps` times from Rust, GIL released.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn _time_rust(
    py: Python<'_>,
    net: PyRef<'_, PyModel>,
    op: &str,
    theta: &Bound<'_, PyAny>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    v: &Bound<'_, PyAny>,
    reps: usize,
) -> PyResult<Vec<f64>> {
    by_dtype!(
        theta_dtype(theta, "theta")?,
        time_t(py, &net.inner, op, theta, x, y, v, reps)
    )
}
