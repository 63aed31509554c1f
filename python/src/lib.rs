//! The Python extension module `itlin._itlin`: the crate's models, NTK, Gauss-Newton steps,
//! least squares and trainer for NumPy, JAX and PyTorch arrays.

mod arrays;
mod bench;
mod errors;
mod lsq;
mod model;
mod network;
mod ntk;
mod solve;
mod train;

use pyo3::prelude::*;

#[pymodule]
fn _itlin(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<model::PyModel>()?;
    m.add_class::<model::PyMlp>()?;
    m.add_class::<network::PyNetwork>()?;
    m.add_class::<lsq::PyReport>()?;
    m.add_function(wrap_pyfunction!(ntk::ntk, m)?)?;
    m.add_function(wrap_pyfunction!(ntk::ntk_vector_product, m)?)?;
    m.add_function(wrap_pyfunction!(ntk::kernel_distance, m)?)?;
    m.add_function(wrap_pyfunction!(solve::gauss_newton_step, m)?)?;
    m.add_function(wrap_pyfunction!(solve::gradient_descent_closed_form, m)?)?;
    m.add_function(wrap_pyfunction!(lsq::least_squares, m)?)?;
    m.add_function(wrap_pyfunction!(train::_train, m)?)?;
    m.add_function(wrap_pyfunction!(arrays::_reads_in_place, m)?)?;
    m.add_function(wrap_pyfunction!(bench::_time_rust, m)?)?;
    Ok(())
}
