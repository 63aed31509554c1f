//! The `Network` class: a network of layers from a spec string, on the common model enum.

use crate::errors::{to_py, value_error};
use crate::model::{AnyModel, PyModel, par_obj, parse_parameterization};
use itlin::Network;
use pyo3::prelude::*;

/// Network(spec, input_shape=(1, 28, 28), parameterization="standard")
///
/// A network of layers applied in order to inputs of shape `C×H×W` (`x` is `(N, C, H, W)`
/// or `(N, C·H·W)` flattened in `(c, h, w)` order), from a comma-separated spec:
/// `dense(OUT)` (`z = W a + b` on the flattened input), `conv(OUT,K[,stride=S,pad=P])`
/// (`z[o,y,x] = b[o] + Σ_{i,u,v} W[o,i,u,v] a[i, yS+u−P, xS+v−P]`), `avgpool(K)`,
/// `maxpool(K)`, `flatten`, and the activations `relu`, `tanh`, `gelu`, `softplus`,
/// `identity`. θ concatenates each layer's `W` (row-major: dense `OUT × IN`, conv
/// `OUT × C_in × K × K`) then `b`, in layer order; `dense(h),relu,dense(10)` on input
/// `(784,)` is `Mlp([784, h, 10], "relu")` with the same θ.
#[pyclass(extends = PyModel, frozen, module = "itlin", name = "Network")]
pub struct PyNetwork;

#[pymethods]
impl PyNetwork {
    #[new]
    #[pyo3(signature = (spec, input_shape = None, parameterization = None))]
    fn new(
        spec: &str,
        input_shape: Option<&Bound<'_, PyAny>>,
        parameterization: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let shape: (usize, usize, usize) = match input_shape {
            None => (1, 28, 28),
            Some(s) => {
                if let Ok(d) = s.extract::<usize>() {
                    (d, 1, 1)
                } else if let Ok((c, h, w)) = s.extract::<(usize, usize, usize)>() {
                    (c, h, w)
                } else if let Ok((d,)) = s.extract::<(usize,)>() {
                    (d, 1, 1)
                } else {
                    return Err(value_error(format!(
                        "input_shape {}: expected (C, H, W) or (D,)",
                        s.repr().map_or("?".into(), |r| r.to_string())
                    )));
                }
            }
        };
        let p = parse_parameterization(parameterization)?;
        let net = Network::with_parameterization(shape, spec, p).map_err(to_py)?;
        Ok(PyClassInitializer::from(PyModel {
            inner: AnyModel::Network(net),
        })
        .add_subclass(PyNetwork))
    }

    fn __reduce__<'py>(slf: PyRef<'py, Self>, py: Python<'py>) -> PyResult<Py<PyAny>> {
        let cls = py.get_type::<PyNetwork>();
        let AnyModel::Network(n) = &slf.as_super().inner else {
            unreachable!("a Network wraps a network")
        };
        let args = (
            n.spec(),
            n.input_shape(),
            par_obj(py, n.parameterization())?,
        );
        Ok((cls, args).into_pyobject(py)?.into_any().unbind())
    }

    /// The canonical spec string.
    #[getter]
    fn spec(slf: PyRef<'_, Self>) -> String {
        match &slf.as_super().inner {
            AnyModel::Network(n) => n.spec(),
            AnyModel::Mlp(_) => unreachable!("a Network wraps a network"),
        }
    }
    /// The per-sample input shape `(C, H, W)`.
    #[getter]
    fn input_shape(slf: PyRef<'_, Self>) -> (usize, usize, usize) {
        match &slf.as_super().inner {
            AnyModel::Network(n) => n.input_shape(),
            AnyModel::Mlp(_) => unreachable!("a Network wraps a network"),
        }
    }
    /// The shape `(C, H, W)` of the last layer's output.
    #[getter]
    fn output_shape(slf: PyRef<'_, Self>) -> (usize, usize, usize) {
        match &slf.as_super().inner {
            AnyModel::Network(n) => n.output_shape(),
            AnyModel::Mlp(_) => unreachable!("a Network wraps a network"),
        }
    }
}
