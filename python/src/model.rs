//! The model classes: `Model` (the base every network class extends, holding one of the
//! crate's models) and `Mlp`.
//!
//! Every numeric method validates θ and the batch against the model first (a mismatch is a
//! `ValueError` naming both shapes), reads the arrays without a copy when they are
//! C-contiguous, and releases the GIL for the computation.

use crate::arrays::{Dtype, Input, Scalar, input, out1, out2, row_major, theta_dtype};
use crate::errors::{no_panic, to_py, value_error};
use itlin::{Activation, Init, Mlp, Model, Parameterization};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// One of the crate's models, whichever class wraps it. Adding a model kind is one variant
/// here and one arm in each method below.
#[derive(Clone, Debug, PartialEq)]
pub enum AnyModel {
    /// A multi-layer perceptron.
    Mlp(Mlp),
    /// A network of layers from a spec string.
    Network(itlin::Network),
}

impl AnyModel {
    /// The model as the crate's [`Model`] trait object.
    pub fn model<T: Scalar>(&self) -> &dyn Model<T> {
        match self {
            AnyModel::Mlp(m) => m,
            AnyModel::Network(n) => n,
        }
    }
    /// `P`.
    pub fn n_params(&self) -> usize {
        self.model::<f64>().n_params()
    }
    /// `d`.
    pub fn n_inputs(&self) -> usize {
        self.model::<f64>().n_inputs()
    }
    /// `C`.
    pub fn n_outputs(&self) -> usize {
        self.model::<f64>().n_outputs()
    }
    /// θ drawn by `init` from the ChaCha8 stream of `seed`.
    pub fn init<T: Scalar>(&self, init: Init, seed: u64) -> Vec<T> {
        match self {
            AnyModel::Mlp(m) => m.init(init, seed),
            AnyModel::Network(n) => n.init(init, seed),
        }
    }
    /// Entries of the per-layer buffers a forward pass on `n` samples keeps (activations and
    /// derivatives), for the memory check before a call.
    pub fn activation_entries(&self, n: usize) -> u64 {
        match self {
            AnyModel::Mlp(m) => {
                let widths: u64 = m.widths().iter().map(|&w| w as u64).sum();
                (n as u64).saturating_mul(widths).saturating_mul(3)
            }
            AnyModel::Network(net) => {
                let sizes: u64 = net
                    .layers()
                    .iter()
                    .map(|l| {
                        let (c, h, w) = l.output.dims();
                        (c * h * w) as u64
                    })
                    .sum::<u64>()
                    + Model::<f64>::n_inputs(net) as u64;
                (n as u64).saturating_mul(sizes).saturating_mul(3)
            }
        }
    }
    /// The per-sample input shape `(C, H, W)` of a network of layers.
    pub fn input_shape(&self) -> Option<(usize, usize, usize)> {
        match self {
            AnyModel::Mlp(_) => None,
            AnyModel::Network(n) => Some(n.input_shape()),
        }
    }
    /// How the model prints in messages and `repr`.
    pub fn describe(&self) -> String {
        match self {
            AnyModel::Network(n) => {
                format!("Network('{}', input_shape={:?})", n.spec(), n.input_shape())
            }
            AnyModel::Mlp(m) => {
                let p = match m.parameterization() {
                    Parameterization::Standard => String::new(),
                    Parameterization::Ntk { sigma_w, sigma_b } => {
                        format!(", parameterization=('ntk', {sigma_w}, {sigma_b})")
                    }
                };
                format!(
                    "Mlp({:?}, activation='{}'{p})",
                    m.widths(),
                    m.activation().name()
                )
            }
        }
    }
}

/// θ and a batch `X` read and checked against a model: θ is `(P,)`, `X` is `(N, d)` with
/// `N ≥ 1`, both finite and of θ's dtype.
pub struct Batch<'py, T: Scalar> {
    /// θ.
    pub theta: Input<'py, T>,
    /// X.
    pub x: Input<'py, T>,
    /// `N`.
    pub n: usize,
}

impl<'py, T: Scalar> Batch<'py, T> {
    /// Reads and checks θ and `X`.
    pub fn read(m: &AnyModel, theta: &Bound<'py, PyAny>, x: &Bound<'py, PyAny>) -> PyResult<Self> {
        let ctx = format!("theta has dtype {}", T::DTYPE.name());
        let theta = input::<T>(theta, "theta", &ctx)?;
        let p = m.n_params();
        theta.expect(
            &[Some(p)],
            &format!("({p},): the {} parameters of {}", p, m.describe()),
        )?;
        let x = input::<T>(x, "x", &ctx)?;
        let d = m.n_inputs();
        match m.input_shape() {
            Some((c, h, w)) if x.shape().len() == 4 => x.expect(
                &[None, Some(c), Some(h), Some(w)],
                &format!("(N, {c}, {h}, {w}) or (N, {d}) for {}", m.describe()),
            )?,
            Some((c, h, w)) => x.expect(
                &[None, Some(d)],
                &format!("(N, {d}) or (N, {c}, {h}, {w}) for {}", m.describe()),
            )?,
            None => x.expect(&[None, Some(d)], &format!("(N, {d}) for {}", m.describe()))?,
        }
        let n = x.shape()[0];
        if n == 0 {
            return Err(value_error(format!(
                "x has shape {}: no samples",
                crate::arrays::shape_str(x.shape())
            )));
        }
        check_budget::<T>(
            "the layer buffers of one pass",
            1,
            m.activation_entries(n) as usize,
        )?;
        theta.finite()?;
        x.finite()?;
        Ok(Self { theta, x, n })
    }

    /// Reads a further `(N, C)` array of the batch (a cotangent, targets), checked finite.
    pub fn outputs_like(
        &self,
        m: &AnyModel,
        obj: &Bound<'py, PyAny>,
        name: &str,
    ) -> PyResult<Input<'py, T>> {
        let ctx = format!("theta has dtype {}", T::DTYPE.name());
        let a = input::<T>(obj, name, &ctx)?;
        let c = m.n_outputs();
        a.expect(
            &[Some(self.n), Some(c)],
            &format!(
                "(N, C) = ({}, {c}), as x has N = {} rows and the model C = {c} outputs",
                self.n, self.n
            ),
        )?;
        a.finite()?;
        Ok(a)
    }

    /// Reads a further parameter-space vector `(P,)`, checked finite.
    pub fn params_like(
        &self,
        m: &AnyModel,
        obj: &Bound<'py, PyAny>,
        name: &str,
    ) -> PyResult<Input<'py, T>> {
        let ctx = format!("theta has dtype {}", T::DTYPE.name());
        let a = input::<T>(obj, name, &ctx)?;
        let p = m.n_params();
        a.expect(&[Some(p)], &format!("({p},), the shape of theta"))?;
        a.finite()?;
        Ok(a)
    }
}

/// The crate's memory budget; without `ITLIN_MEMORY_BUDGET_MB` (which it reads first) the
/// value derived from the OS's available memory is reused for a second, so that small calls
/// do not read `/proc/meminfo` each time.
fn budget() -> u64 {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    static CACHE: Mutex<Option<(Instant, u64)>> = Mutex::new(None);
    if std::env::var_os("ITLIN_MEMORY_BUDGET_MB").is_some() {
        return itlin::memory::default_budget();
    }
    let mut c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    match *c {
        Some((t, b)) if t.elapsed() < Duration::from_secs(1) => b,
        _ => {
            let b = itlin::memory::default_budget();
            *c = Some((Instant::now(), b));
            b
        }
    }
}

/// Refuses an output of `rows × cols` entries of `T` over the memory budget (checked
/// arithmetic), naming what it is.
pub fn check_budget<T>(what: &str, rows: usize, cols: usize) -> PyResult<()> {
    let needed = (rows as u64)
        .checked_mul(cols as u64)
        .and_then(|e| e.checked_mul(size_of::<T>() as u64));
    let budget = budget();
    match needed {
        Some(b) if b <= budget => Ok(()),
        _ => Err(to_py(itlin::Error::OutOfMemory {
            what: format!("{what} ({rows} × {cols})"),
            needed: needed.unwrap_or(u64::MAX),
            budget,
            hint: "use fewer samples per call (or set ITLIN_MEMORY_BUDGET_MB)".into(),
        })),
    }
}

/// Parses an `Init` scheme: `"standard"` or `("ntk", sigma_w, sigma_b)`.
fn parse_scheme(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Init> {
    if let Ok(s) = obj.extract::<String>() {
        if s.eq_ignore_ascii_case("standard") {
            return Ok(Init::Standard);
        }
    } else if let Ok((name, sigma_w, sigma_b)) = obj.extract::<(String, f64, f64)>()
        && name.eq_ignore_ascii_case("ntk")
    {
        if !(sigma_w.is_finite() && sigma_w > 0.0 && sigma_b.is_finite() && sigma_b >= 0.0) {
            return Err(value_error(format!(
                "{what} ('ntk', σ_w, σ_b) needs σ_w > 0 and σ_b ≥ 0, got σ_w={sigma_w}, σ_b={sigma_b}"
            )));
        }
        return Ok(Init::Ntk { sigma_w, sigma_b });
    }
    Err(value_error(format!(
        "{what} {}: expected 'standard' or ('ntk', sigma_w, sigma_b)",
        obj.repr().map_or("?".into(), |r| r.to_string())
    )))
}

/// Parses a parameterisation: `"standard"` or `("ntk", sigma_w, sigma_b)`.
pub(crate) fn parse_parameterization(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Parameterization> {
    let Some(obj) = obj else {
        return Ok(Parameterization::Standard);
    };
    if obj.is_none() {
        return Ok(Parameterization::Standard);
    }
    match parse_scheme(obj, "parameterization")? {
        Init::Standard => Ok(Parameterization::Standard),
        Init::Ntk { sigma_w, sigma_b } => Ok(Parameterization::Ntk { sigma_w, sigma_b }),
    }
}

/// A parameterisation as Python sees it: `"standard"` or `("ntk", σ_w, σ_b)`.
pub(crate) fn par_obj(py: Python<'_>, p: Parameterization) -> PyResult<Py<PyAny>> {
    Ok(match p {
        Parameterization::Standard => "standard".into_pyobject(py)?.into_any().unbind(),
        Parameterization::Ntk { sigma_w, sigma_b } => ("ntk", sigma_w, sigma_b)
            .into_pyobject(py)?
            .into_any()
            .unbind(),
    })
}

macro_rules! by_dtype {
    ($dt:expr, $f:ident ( $($a:expr),* $(,)? )) => {
        match $dt {
            $crate::arrays::Dtype::F32 => $f::<f32>($($a),*),
            $crate::arrays::Dtype::F64 => $f::<f64>($($a),*),
        }
    };
}
pub(crate) use by_dtype;

fn forward_t<T: Scalar>(
    py: Python<'_>,
    m: &AnyModel,
    theta: &Bound<'_, PyAny>,
    x: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let b = Batch::<T>::read(m, theta, x)?;
    let (th, xs, model) = (b.theta.data(), b.x.mat(b.n, m.n_inputs()), m.model::<T>());
    let f = py.detach(|| no_panic(|| row_major(model.forward(th, xs).as_ref())))?;
    Ok(out2(py, f, b.n, m.n_outputs()).into_any().unbind())
}

fn jvp_t<T: Scalar>(
    py: Python<'_>,
    m: &AnyModel,
    theta: &Bound<'_, PyAny>,
    x: &Bound<'_, PyAny>,
    v: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let b = Batch::<T>::read(m, theta, x)?;
    let v = b.params_like(m, v, "v")?;
    let (th, xs, vs, model) = (
        b.theta.data(),
        b.x.mat(b.n, m.n_inputs()),
        v.data(),
        m.model::<T>(),
    );
    let (f, jv) = py.detach(|| {
        no_panic(|| {
            let (f, jv) = model.jvp(th, xs, vs);
            (row_major(f.as_ref()), row_major(jv.as_ref()))
        })
    })?;
    let c = m.n_outputs();
    let t = PyTuple::new(
        py,
        [
            out2(py, f, b.n, c).into_any(),
            out2(py, jv, b.n, c).into_any(),
        ],
    )?;
    Ok(t.into_any().unbind())
}

fn vjp_t<T: Scalar>(
    py: Python<'_>,
    m: &AnyModel,
    theta: &Bound<'_, PyAny>,
    x: &Bound<'_, PyAny>,
    u: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let b = Batch::<T>::read(m, theta, x)?;
    let u = b.outputs_like(m, u, "u")?;
    let c = m.n_outputs();
    let (th, xs, us, model) = (
        b.theta.data(),
        b.x.mat(b.n, m.n_inputs()),
        u.mat(b.n, c),
        m.model::<T>(),
    );
    let g = py.detach(|| no_panic(|| model.vjp(th, xs, us)))?;
    Ok(out1(py, g).into_any().unbind())
}

fn jacobian_t<T: Scalar>(
    py: Python<'_>,
    m: &AnyModel,
    theta: &Bound<'_, PyAny>,
    x: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let b = Batch::<T>::read(m, theta, x)?;
    let (rows, p) = (b.n * m.n_outputs(), m.n_params());
    check_budget::<T>("the Jacobian", rows, p)?;
    let (th, xs, model) = (b.theta.data(), b.x.mat(b.n, m.n_inputs()), m.model::<T>());
    let j = py.detach(|| no_panic(|| model.jacobian(th, xs).into_vec()))?;
    Ok(out2(py, j, rows, p).into_any().unbind())
}

fn init_t<T: Scalar>(py: Python<'_>, m: &AnyModel, init: Init, seed: u64) -> PyResult<Py<PyAny>> {
    check_budget::<T>("θ", 1, m.n_params())?;
    let theta = py.detach(|| no_panic(|| m.init::<T>(init, seed)))?;
    Ok(out1(py, theta).into_any().unbind())
}

/// A differentiable model `f(x; θ) ∈ R^C` with a flat parameter vector θ ∈ R^P.
///
/// The base class of `Mlp` (and of every other network class): it holds the architecture
/// only, never θ, so one model serves any number of parameter vectors. Every method takes θ
/// (shape `(P,)`) and a batch `x` (shape `(N, d)`) of the same float dtype (float32 or
/// float64) and returns new arrays of that dtype. Rows are sample-major throughout: output
/// `c` of sample `n` is row `n·C + c` of the Jacobian `J = ∂vec(f)/∂θ` (shape `(N·C, P)`).
#[pyclass(subclass, frozen, module = "itlin", name = "Model")]
pub struct PyModel {
    /// The wrapped model.
    pub inner: AnyModel,
}

#[pymethods]
impl PyModel {
    /// Number of parameters `P` (the length of θ).
    #[getter]
    fn n_params(&self) -> usize {
        self.inner.n_params()
    }
    /// Input width `d` (columns of `x`).
    #[getter]
    fn n_inputs(&self) -> usize {
        self.inner.n_inputs()
    }
    /// Number of outputs `C` per sample.
    #[getter]
    fn n_outputs(&self) -> usize {
        self.inner.n_outputs()
    }

    /// init(seed=0, dtype="float64", scheme="standard") -> ndarray of shape (P,)
    ///
    /// Draws θ from the ChaCha8 stream seeded by `seed` (the same numbers as the Rust
    /// `Mlp::init(Init::Standard, seed)`; float32 is the float64 draw rounded).
    /// `scheme="standard"`: LeCun normal (He for ReLU), effective `W ~ N(0, g²/fan_in)` with
    /// `g = √2` for ReLU and 1 otherwise, biases zero. `scheme=("ntk", σ_w, σ_b)`: effective
    /// `W ~ N(0, σ_w²/fan_in)`, `b ~ N(0, σ_b²)`.
    ///
    /// Layout: for each layer in order, `W` row-major (fan_out × fan_in), then `b`.
    #[pyo3(signature = (seed = 0, dtype = None, scheme = None))]
    fn init(
        &self,
        py: Python<'_>,
        seed: u64,
        dtype: Option<&Bound<'_, PyAny>>,
        scheme: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let dt = dtype.map_or(Ok(Dtype::F64), Dtype::parse)?;
        let init = scheme.map_or(Ok(Init::Standard), |s| parse_scheme(s, "scheme"))?;
        by_dtype!(dt, init_t(py, &self.inner, init, seed))
    }

    /// forward(theta, x) -> ndarray of shape (N, C)
    ///
    /// The network's outputs `f(X; θ)`, one row per sample.
    fn forward(
        &self,
        py: Python<'_>,
        theta: &Bound<'_, PyAny>,
        x: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        by_dtype!(
            theta_dtype(theta, "theta")?,
            forward_t(py, &self.inner, theta, x)
        )
    }

    /// jvp(theta, x, v) -> (f, jv), both of shape (N, C)
    ///
    /// Forward mode, as `jax.jvp(lambda t: f(x; t), (theta,), (v,))`: the outputs `f(X; θ)`
    /// and the directional derivative `J v = d/dε f(X; θ + ε v) |_{ε=0}` for a tangent `v`
    /// of shape (P,), reshaped to (N, C).
    fn jvp(
        &self,
        py: Python<'_>,
        theta: &Bound<'_, PyAny>,
        x: &Bound<'_, PyAny>,
        v: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        by_dtype!(
            theta_dtype(theta, "theta")?,
            jvp_t(py, &self.inner, theta, x, v)
        )
    }

    /// vjp(theta, x, u) -> ndarray of shape (P,)
    ///
    /// Reverse mode: `Jᵀ vec(u) = Σ_{n,c} u[n, c] ∂f_c(x_n; θ)/∂θ` for a cotangent `u` of
    /// shape (N, C) (the gradient of `Σ u ⊙ f(X; θ)` with respect to θ, as the function that
    /// `jax.vjp` returns, applied to `u`).
    fn vjp(
        &self,
        py: Python<'_>,
        theta: &Bound<'_, PyAny>,
        x: &Bound<'_, PyAny>,
        u: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        by_dtype!(
            theta_dtype(theta, "theta")?,
            vjp_t(py, &self.inner, theta, x, u)
        )
    }

    /// jacobian(theta, x) -> ndarray of shape (N*C, P)
    ///
    /// The explicit Jacobian `J = ∂vec(f(X; θ))/∂θ`: row `n·C + c` is the gradient of output
    /// `c` of sample `n` (as `jax.jacrev(f)(θ).reshape(N*C, P)`). Refused with MemoryError
    /// when `N·C·P` entries exceed the memory budget.
    fn jacobian(
        &self,
        py: Python<'_>,
        theta: &Bound<'_, PyAny>,
        x: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        by_dtype!(
            theta_dtype(theta, "theta")?,
            jacobian_t(py, &self.inner, theta, x)
        )
    }

    fn __repr__(&self) -> String {
        self.inner.describe()
    }

    /// Two models are equal when they are the same architecture (class, layers, widths,
    /// activations, parameterisation).
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyModel>()
            .is_ok_and(|o| o.get().inner == self.inner)
    }
}

/// Mlp(widths, activation="tanh", parameterization="standard")
///
/// A fully connected network `widths = [d, h₁, …, C]`: layer `l` computes
/// `z_l = W_l a_{l−1} + b_l` and `a_l = φ(z_l)`, the last layer is linear (no φ).
/// Activations: "identity", "relu" (φ'(0) = 0), "tanh", "gelu" (exact, with erf),
/// "softplus". `parameterization=("ntk", σ_w, σ_b)` computes
/// `z = σ_w/√fan_in · W a + σ_b b` instead.
///
/// θ is the concatenation over layers, in order, of `W_l` row-major
/// (`fan_out × fan_in`) then `b_l`; `n_params = Σ_l (fan_in_l + 1) fan_out_l`.
#[pyclass(extends = PyModel, frozen, module = "itlin", name = "Mlp")]
pub struct PyMlp;

impl PyMlp {
    fn mlp<'a>(slf: &'a PyRef<'_, Self>) -> &'a Mlp {
        match &slf.as_super().inner {
            AnyModel::Mlp(m) => m,
            AnyModel::Network(_) => unreachable!("an Mlp wraps an MLP"),
        }
    }
}

#[pymethods]
impl PyMlp {
    #[new]
    #[pyo3(signature = (widths, activation = "tanh", parameterization = None))]
    fn new(
        widths: Vec<usize>,
        activation: &str,
        parameterization: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let act: Activation = activation.parse().map_err(to_py)?;
        let p = parse_parameterization(parameterization)?;
        // P with checked arithmetic before the layer table is built
        let count = widths.windows(2).try_fold(0u64, |acc, w| {
            let (i, o) = (w[0] as u64, w[1] as u64);
            i.checked_mul(o)?.checked_add(o)?.checked_add(acc)
        });
        if count.is_none_or(|p| p > isize::MAX as u64 / 8) {
            return Err(value_error(format!(
                "the MLP {widths:?} has more parameters than memory can hold"
            )));
        }
        let mlp = Mlp::with_parameterization(&widths, act, p).map_err(to_py)?;
        Ok(PyClassInitializer::from(PyModel {
            inner: AnyModel::Mlp(mlp),
        })
        .add_subclass(PyMlp))
    }

    /// Pickling (and `copy.deepcopy`): an Mlp is rebuilt from its widths, activation and
    /// parameterisation.
    fn __reduce__<'py>(slf: PyRef<'py, Self>, py: Python<'py>) -> PyResult<Py<PyAny>> {
        let cls = py.get_type::<PyMlp>();
        let m = Self::mlp(&slf);
        let par = par_obj(py, m.parameterization())?;
        let args = (m.widths().to_vec(), m.activation().name(), par);
        Ok((cls, args).into_pyobject(py)?.into_any().unbind())
    }

    /// The widths `[d, h₁, …, C]`.
    #[getter]
    fn widths(slf: PyRef<'_, Self>) -> Vec<usize> {
        Self::mlp(&slf).widths().to_vec()
    }
    /// The hidden activation's name.
    #[getter]
    fn activation(slf: PyRef<'_, Self>) -> &'static str {
        Self::mlp(&slf).activation().name()
    }
    /// `"standard"` or `("ntk", σ_w, σ_b)`.
    #[getter]
    fn parameterization<'py>(slf: PyRef<'py, Self>, py: Python<'py>) -> PyResult<Py<PyAny>> {
        par_obj(py, Self::mlp(&slf).parameterization())
    }
}
