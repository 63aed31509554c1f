//! [`CudaMlp`]: an [`Mlp`] whose [`Model`] evaluations run on the GPU, so the generic
//! trainer (`crate::train`) and solvers can use the CUDA backend unchanged.

use super::blas::CudaReal;
use super::context::CudaBackend;
use super::host;
use crate::ntk::Method;
use crate::{Jacobian, Mlp, Model, Result};
use faer::{Mat, MatRef};
use std::sync::{Arc, Mutex};

/// An [`Mlp`] evaluated on a CUDA device: implements [`Model<T>`] for `f32` and `f64` by
/// calling the host-in/host-out wrappers of [`super::host`] (forward, JVP, VJP, explicit
/// Jacobian, and the device structured NTK for [`ntk_lower`](Model::ntk_lower)).
///
/// Honest cost model: every call uploads `θ` and `X` (and the tangent or cotangent), runs the
/// device ops and downloads the result, so for small models the PCIe transfers can dominate;
/// the win is on the large GEMMs (wide layers, large batches, Jacobian and NTK assembly). For
/// SGD / Adam training, [`ResidentEngine`](super::ResidentEngine) keeps the whole inner step
/// on the GPU instead (the trainer then uses this model only for evaluations).
///
/// Calls are serialised by an internal lock: the backend has one stream and one cuBLAS /
/// cuSOLVER handle, so concurrent callers (the trainer may evaluate from several threads)
/// take turns.
///
/// # Panics
/// The [`Model`] methods cannot return errors: a device error inside one (driver, library or
/// kernel failure, device out of memory) panics with the driver's message, prefixed with
/// `CudaMlp::<method>`. Shape mismatches panic as for [`Mlp`]. Construction
/// ([`CudaMlp::new`], [`CudaMlp::with_backend`]) returns a [`Result`] instead, so a missing
/// GPU is a clear error before any work starts.
#[derive(Debug)]
pub struct CudaMlp {
    mlp: Mlp,
    be: Arc<CudaBackend>,
    lock: Mutex<()>,
}

impl CudaMlp {
    /// Opens CUDA device 0 ([`CudaBackend::new`]) and wraps `mlp`.
    ///
    /// # Errors
    /// [`crate::Error::Device`] with a one-line reason when no usable GPU, driver or CUDA
    /// library is found.
    pub fn new(mlp: Mlp) -> Result<Self> {
        Ok(Self::with_backend(mlp, Arc::new(CudaBackend::new()?)))
    }

    /// Wraps `mlp` with an already opened backend (shared, e.g. between several models).
    pub fn with_backend(mlp: Mlp, be: Arc<CudaBackend>) -> Self {
        Self {
            mlp,
            be,
            lock: Mutex::new(()),
        }
    }

    /// The wrapped network.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// The backend the evaluations run on.
    pub fn backend(&self) -> &Arc<CudaBackend> {
        &self.be
    }

    /// Runs `f` with exclusive use of the backend; a device error panics with its message.
    #[track_caller]
    fn call<R>(&self, what: &str, f: impl FnOnce(&CudaBackend, &Mlp) -> Result<R>) -> R {
        // a panic in another caller leaves no partial state behind the lock: keep going
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        match f(&self.be, &self.mlp) {
            Ok(r) => r,
            Err(e) => panic!("CudaMlp::{what}: {e}"),
        }
    }
}

impl<T: CudaReal> Model<T> for CudaMlp {
    fn n_params(&self) -> usize {
        Model::<T>::n_params(&self.mlp)
    }
    fn n_inputs(&self) -> usize {
        Model::<T>::n_inputs(&self.mlp)
    }
    fn n_outputs(&self) -> usize {
        Model::<T>::n_outputs(&self.mlp)
    }

    #[track_caller]
    fn forward(&self, theta: &[T], x: MatRef<'_, T>) -> Mat<T> {
        self.call("forward", |be, m| host::forward(be, m, theta, x))
    }

    #[track_caller]
    fn jvp(&self, theta: &[T], x: MatRef<'_, T>, v: &[T]) -> (Mat<T>, Mat<T>) {
        self.call("jvp", |be, m| host::jvp(be, m, theta, x, v))
    }

    #[track_caller]
    fn vjp(&self, theta: &[T], x: MatRef<'_, T>, u: MatRef<'_, T>) -> Vec<T> {
        self.call("vjp", |be, m| host::vjp(be, m, theta, x, u))
    }

    #[track_caller]
    fn jacobian(&self, theta: &[T], x: MatRef<'_, T>) -> Jacobian<T> {
        self.call("jacobian", |be, m| host::jacobian(be, m, theta, x))
    }

    /// The full `Θ = J Jᵀ` from the device structured NTK (cuBLAS GEMMs of the backprop
    /// signals), whatever `method` asks: its lower triangle is the answer, the upper one is
    /// filled too.
    #[track_caller]
    fn ntk_lower(&self, theta: &[T], x: MatRef<'_, T>, method: Method) -> Mat<T> {
        let _ = method;
        self.call("ntk_lower", |be, m| host::ntk(be, m, theta, x))
    }
}
