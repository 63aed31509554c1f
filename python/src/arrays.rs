//! Arrays in and out: NumPy arrays (and anything with `__dlpack__` or convertible by
//! `numpy.asarray`) into borrowed slices, results into new NumPy arrays.
//!
//! A C-contiguous input of the right dtype is read in place (no copy); any other layout is
//! copied once into row-major order. An object with `__dlpack__` (a JAX or PyTorch CPU array)
//! goes through `numpy.from_dlpack`, which shares its memory. Outputs are fresh arrays that
//! take over the Rust buffers (no copy) wherever the result is already row-major.

use crate::errors::value_error;
use faer::MatRef;
use numpy::ndarray::{Array1, Array2};
use numpy::{
    Element, IntoPyArray, PyArray1, PyArray2, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods,
    PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::PyAnyMethods;

/// The two float types of the crate, as the binding dispatches on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// `float32`.
    F32,
    /// `float64`.
    F64,
}

impl Dtype {
    /// NumPy's name.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
        }
    }

    /// Parses `"float32"`/`"f32"`/`"float64"`/`"f64"`/`"double"`/`"single"`, or a NumPy dtype.
    pub fn parse(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let np = obj.py().import("numpy")?;
        let dt = np.call_method1("dtype", (obj,)).map_err(|_| {
            value_error(format!(
                "dtype {}: expected 'float32' or 'float64'",
                obj.repr().map_or("?".into(), |r| r.to_string())
            ))
        })?;
        let name: String = dt.getattr("name")?.extract()?;
        match name.as_str() {
            "float32" => Ok(Dtype::F32),
            "float64" => Ok(Dtype::F64),
            _ => Err(value_error(format!(
                "dtype {name}: expected 'float32' or 'float64'"
            ))),
        }
    }
}

/// The scalar types the binding computes in: the crate's [`itlin::Real`] that NumPy also knows.
pub trait Scalar: itlin::Real + Element {
    /// This type's [`Dtype`].
    const DTYPE: Dtype;
    /// Whether every entry is finite (neither NaN nor ±∞).
    fn all_finite(xs: &[Self]) -> bool;
}

macro_rules! scalar {
    ($t:ty, $d:expr) => {
        impl Scalar for $t {
            const DTYPE: Dtype = $d;
            fn all_finite(xs: &[Self]) -> bool {
                /// x − x is 0 for finite x and NaN for NaN and ±∞; 64 independent lanes so
                /// that the loop vectorises with several vector accumulators (one would
                /// make it wait on the latency of each add instead of on memory).
                #[inline(always)]
                fn body(xs: &[$t]) -> bool {
                    let mut acc = [0.0 as $t; 64];
                    let mut chunks = xs.chunks_exact(64);
                    for c in &mut chunks {
                        for i in 0..64 {
                            acc[i] += c[i] - c[i];
                        }
                    }
                    let tail: $t = chunks.remainder().iter().map(|&v| v - v).sum();
                    (acc.iter().sum::<$t>() + tail) == 0.0
                }
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f")]
                    fn avx512(xs: &[$t]) -> bool {
                        body(xs)
                    }
                    #[target_feature(enable = "avx2")]
                    fn avx2(xs: &[$t]) -> bool {
                        body(xs)
                    }
                    if std::arch::is_x86_feature_detected!("avx512f") {
                        // SAFETY: the CPU has AVX-512F (detected at run time).
                        return unsafe { avx512(xs) };
                    }
                    if std::arch::is_x86_feature_detected!("avx2") {
                        // SAFETY: the CPU has AVX2 (detected at run time).
                        return unsafe { avx2(xs) };
                    }
                }
                body(xs)
            }
        }
    };
}
scalar!(f32, Dtype::F32);
scalar!(f64, Dtype::F64);

/// `(3, 5)`: a shape as Python prints it.
pub fn shape_str(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `obj` as a NumPy array: arrays as they are, `__dlpack__` producers through
/// `numpy.from_dlpack` (shared memory), anything else through `numpy.asarray`.
pub fn as_ndarray<'py>(
    obj: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    if let Ok(a) = obj.cast::<PyUntypedArray>() {
        return Ok(a.clone());
    }
    let np = obj.py().import("numpy")?;
    let arr = if obj.hasattr("__dlpack__")? {
        np.call_method1("from_dlpack", (obj,))?
    } else {
        np.call_method1("asarray", (obj,))
            .map_err(|e| value_error(format!("{name} is not an array ({e})")))?
    };
    Ok(arr.cast_into::<PyUntypedArray>()?)
}

/// The float dtype of `arr`, if it has one the crate computes in.
fn float_dtype(arr: &Bound<'_, PyUntypedArray>) -> Option<Dtype> {
    let dt = arr.dtype();
    let py = arr.py();
    if dt.is_equiv_to(&numpy::dtype::<f32>(py)) {
        Some(Dtype::F32)
    } else if dt.is_equiv_to(&numpy::dtype::<f64>(py)) {
        Some(Dtype::F64)
    } else {
        None
    }
}

fn dtype_name(arr: &Bound<'_, PyUntypedArray>) -> String {
    arr.dtype()
        .getattr("name")
        .and_then(|n| n.extract::<String>())
        .unwrap_or_else(|_| "?".into())
}

/// The dtype of the parameter vector `obj` (named `name`): float32 or float64, which then
/// decides the dtype of every other array of the call.
pub fn theta_dtype(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Dtype> {
    let arr = as_ndarray(obj, name)?;
    float_dtype(&arr).ok_or_else(|| {
        value_error(format!(
            "{name} has dtype {}; expected float32 or float64",
            dtype_name(&arr)
        ))
    })
}

/// An input array read as row-major `T`: borrowed from NumPy when it was C-contiguous,
/// else a copy.
pub struct Input<'py, T: Scalar> {
    name: String,
    shape: Vec<usize>,
    borrowed: Option<PyReadonlyArrayDyn<'py, T>>,
    owned: Vec<T>,
}

impl<'py, T: Scalar> Input<'py, T> {
    /// The entries in row-major order.
    pub fn data(&self) -> &[T] {
        match &self.borrowed {
            Some(b) => b.as_slice().expect("checked contiguous"),
            None => &self.owned,
        }
    }
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Whether the data were read without a copy.
    pub fn is_borrowed(&self) -> bool {
        self.borrowed.is_some()
    }

    /// `ValueError` unless the array has exactly `want` (`None` = any size) as its shape;
    /// `what` describes the expected shape, e.g. `(N, 784)`.
    pub fn expect(&self, want: &[Option<usize>], what: &str) -> PyResult<()> {
        let ok = self.shape.len() == want.len()
            && self
                .shape
                .iter()
                .zip(want)
                .all(|(&s, w)| w.is_none_or(|w| w == s));
        if ok {
            Ok(())
        } else {
            Err(value_error(format!(
                "{} has shape {}, expected {what}",
                self.name,
                shape_str(&self.shape)
            )))
        }
    }

    /// `ValueError` naming the argument if an entry is NaN or ±∞.
    pub fn finite(&self) -> PyResult<()> {
        if T::all_finite(self.data()) {
            Ok(())
        } else {
            Err(value_error(format!(
                "{} contains NaN or infinite values",
                self.name
            )))
        }
    }

    /// A `rows × cols` row-major view (the shape must have been checked).
    pub fn mat(&self, rows: usize, cols: usize) -> MatRef<'_, T> {
        MatRef::from_row_major_slice(self.data(), rows, cols)
    }
}

/// Reads `obj` (named `name`) as an array of `T`. Float arrays of the other float type are
/// refused with a message naming both dtypes (`ctx` names where `T` came from, e.g.
/// "theta has dtype float32"); integer and boolean arrays are converted to `T`.
pub fn input<'py, T: Scalar>(
    obj: &Bound<'py, PyAny>,
    name: &str,
    ctx: &str,
) -> PyResult<Input<'py, T>> {
    let mut arr = as_ndarray(obj, name)?;
    match float_dtype(&arr) {
        Some(d) if d == T::DTYPE => {}
        Some(d) => {
            return Err(value_error(format!(
                "{name} has dtype {} but {ctx}; pass both with the same float dtype",
                d.name()
            )));
        }
        None => {
            let kind: String = arr.dtype().getattr("kind")?.extract()?;
            if !matches!(kind.as_str(), "i" | "u" | "b") {
                return Err(value_error(format!(
                    "{name} has dtype {}; expected {}",
                    dtype_name(&arr),
                    T::DTYPE.name()
                )));
            }
            arr = arr
                .call_method1("astype", (numpy::dtype::<T>(arr.py()),))?
                .cast_into::<PyUntypedArray>()?;
        }
    }
    let typed = arr.cast_into::<PyArrayDyn<T>>()?;
    let ro = typed
        .try_readonly()
        .map_err(|e| value_error(format!("{name} cannot be read: {e}")))?;
    let shape = ro.shape().to_vec();
    // `as_slice` also accepts Fortran order; only C order is row-major
    if typed.is_c_contiguous() && ro.as_slice().is_ok() {
        Ok(Input {
            name: name.to_string(),
            shape,
            borrowed: Some(ro),
            owned: Vec::new(),
        })
    } else {
        let owned: Vec<T> = ro.as_array().iter().copied().collect();
        Ok(Input {
            name: name.to_string(),
            shape,
            borrowed: None,
            owned,
        })
    }
}

/// A new 1-D array owning `v` (no copy).
pub fn out1<T: Scalar>(py: Python<'_>, v: Vec<T>) -> Bound<'_, PyArray1<T>> {
    Array1::from_vec(v).into_pyarray(py)
}

/// A new `rows × cols` array owning the row-major `v` (no copy).
pub fn out2<T: Scalar>(
    py: Python<'_>,
    v: Vec<T>,
    rows: usize,
    cols: usize,
) -> Bound<'_, PyArray2<T>> {
    Array2::from_shape_vec((rows, cols), v)
        .expect("row-major buffer of the announced shape")
        .into_pyarray(py)
}

/// Row-major entries of a faer matrix.
pub fn row_major<T: Scalar>(m: MatRef<'_, T>) -> Vec<T> {
    let (r, c) = (m.nrows(), m.ncols());
    let mut v = Vec::with_capacity(r * c);
    for i in 0..r {
        for j in 0..c {
            v.push(m[(i, j)]);
        }
    }
    v
}

/// Keeps a faer matrix alive behind a NumPy array that views its buffer.
#[pyclass(frozen, module = "itlin")]
pub struct MatOwner {
    _mat: Box<dyn std::any::Any + Send + Sync>,
}

/// A symmetric faer matrix as a NumPy array without a copy: the array views the matrix's
/// column-major buffer as row-major (the transpose, which is the matrix itself) and keeps
/// the matrix alive.
pub fn out_symmetric<T: Scalar>(
    py: Python<'_>,
    m: faer::Mat<T>,
) -> PyResult<Bound<'_, PyArray2<T>>> {
    use numpy::ndarray::{ArrayView2, ShapeBuilder};
    let (r, c) = (m.nrows(), m.ncols());
    assert_eq!(r, c, "a symmetric matrix is square");
    let cs = m.col_stride();
    // a padded column stride would give a non-contiguous array: copy then
    if r == 0 || cs != r as isize || m.row_stride() != 1 {
        let v: Vec<T> = row_major(m.as_ref());
        return Ok(out2(py, v, r, c));
    }
    let ptr = m.as_ptr();
    // moving the matrix into the box does not move its heap buffer, so `ptr` stays valid
    let owner = Bound::new(py, MatOwner { _mat: Box::new(m) })?;
    // SAFETY: `ptr` points at an r × r column-major buffer with column stride `cs`
    // (checked above: `cs = r`), owned by the matrix inside `owner`; the NumPy array holds a reference
    // to `owner`, so the buffer outlives the array. Read with strides (cs, 1) it is the
    // transpose, which equals the matrix because it is symmetric.
    let view = unsafe { ArrayView2::from_shape_ptr((r, c).strides((cs as usize, 1)), ptr) };
    // SAFETY: the view's memory is kept alive by `owner` (see above) and nothing else
    // writes to it.
    Ok(unsafe { PyArray2::borrow_from_array(&view, owner.into_any()) })
}

/// Reads what a user's callable returned (named `name`) as an array of `T`, converting any
/// numeric dtype (`numpy.asarray(obj, dtype=T)`, no copy when it already is one).
pub fn output_of<'py, T: Scalar>(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<Input<'py, T>> {
    let py = obj.py();
    let arr = if obj.hasattr("__dlpack__")? && obj.cast::<PyUntypedArray>().is_err() {
        as_ndarray(obj, name)?.into_any()
    } else {
        obj.clone()
    };
    let np = py.import("numpy")?;
    let kw = pyo3::types::PyDict::new(py);
    kw.set_item("dtype", numpy::dtype::<T>(py))?;
    let conv = np
        .getattr("asarray")?
        .call((arr,), Some(&kw))
        .map_err(|e| value_error(format!("{name} is not a numeric array ({e})")))?;
    input::<T>(&conv, name, "")
}

/// _reads_in_place(a) -> bool: whether the binding reads the array `a` (float32/float64,
/// or a `__dlpack__` producer) without copying it (a test hook).
#[pyfunction]
pub fn _reads_in_place(a: &Bound<'_, PyAny>) -> PyResult<bool> {
    match theta_dtype(a, "a")? {
        Dtype::F32 => Ok(input::<f32>(a, "a", "")?.is_borrowed()),
        Dtype::F64 => Ok(input::<f64>(a, "a", "")?.is_borrowed()),
    }
}
