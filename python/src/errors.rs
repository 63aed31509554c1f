//! Rust errors and panics as Python exceptions.
//!
//! Configuration, data and shape problems are `ValueError`, files `OSError`, a plan over the
//! memory budget `MemoryError`, device problems `RuntimeError`. A panic inside the crate (a
//! bug: the binding validates every shape before calling it) is caught and becomes a
//! `RuntimeError` instead of aborting the interpreter.

use pyo3::PyErr;
use pyo3::exceptions::{PyMemoryError, PyOSError, PyRuntimeError, PyValueError};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The Python exception for an [`itlin::Error`].
pub fn to_py(e: itlin::Error) -> PyErr {
    let msg = e.to_string();
    match e {
        itlin::Error::Io { .. } => PyOSError::new_err(msg),
        itlin::Error::OutOfMemory { .. } => PyMemoryError::new_err(msg),
        itlin::Error::Device(_) | itlin::Error::Comm(_) => PyRuntimeError::new_err(msg),
        _ => PyValueError::new_err(msg),
    }
}

/// A `ValueError` with `msg`.
pub fn value_error(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

/// Runs `f`, turning a panic into a `RuntimeError` that carries the panic message.
pub fn no_panic<R>(f: impl FnOnce() -> R) -> Result<R, PyErr> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        PyRuntimeError::new_err(format!("internal error in itlin: {msg}"))
    })
}
