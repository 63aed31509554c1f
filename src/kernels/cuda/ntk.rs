//! Structured NTK and the dual damped Gauss-Newton step on the device.
//!
//! `Θ = Σ_l (G_l G_lᵀ) ⊙ ((s_w² A_{l−1}A_{l−1}ᵀ + s_b²) ⊗ 1_{C×C})` ([structured
//! NTK](crate::maths#structured-ntk)): per layer one
//! cuBLAS GEMM for the activation Gram (`N × N`), one for the signal Gram (`NC × NC`, skipped
//! for the read-out layer whose signals are `e_c`); the first hidden layer's signal Gram is
//! written by cuBLAS straight into `Θ`, and one fused Hadamard pass per further hidden layer
//! (`ops::ntk_fused`) scales it and adds the next terms, the read-out term joining the last
//! pass (for two hidden layers `Θ` is read once and written once after the GEMMs).
//! The dual GN step (MSE, [damped GN step](crate::maths#damped-gauss-newton-step)) solves `(Θ + NλI) α = r` by cuSOLVER Cholesky and
//! returns `δ = −Jᵀα` from one VJP, so `J` never exists.

use super::blas::CudaReal;
use super::context::CudaBackend;
pub use super::dense::cholesky_solve;
use super::dense::ntk_into;
use super::mlp::{self, DeviceSignals};
use crate::backend::cuda::{DevMat, DevSlice};
use crate::solve::{DualWorkspace, dual_step_on};
use crate::{Mlp, Model, Result};
use cudarc::driver::CudaSlice;

/// Structured NTK from device signals: `Θ` (row-major `NC × NC`, symmetric), the Grams by
/// cuBLAS and their Hadamard products by the fused pass (`ops::ntk_fused`, see the module
/// documentation).
///
/// # Panics
/// If the signals are not those of `mlp`.
///
/// # Errors
/// [`crate::Error::Device`] on a driver, cuBLAS or kernel failure (including out of memory: this
/// needs two `NC × NC` buffers and one `N × N` buffer per layer).
#[track_caller]
pub fn ntk_from_signals<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    s: &DeviceSignals<T>,
) -> Result<CudaSlice<T>> {
    let n = s.trace.n_rows();
    let c = <Mlp as Model<f64>>::n_outputs(mlp);
    let layers = mlp.layers();
    assert_eq!(
        s.grads.len(),
        layers.len(),
        "cuda::ntk: signals of another MLP"
    );
    // Θ is fully written (see `ntk_into`).
    let mut theta = be.alloc_uninit::<T>(n * c * n * c)?;
    let acts: Vec<&CudaSlice<T>> = s.trace.acts.iter().map(|a| a.get()).collect();
    let grads: Vec<&CudaSlice<T>> = s.grads.iter().map(|g| g.get()).collect();
    ntk_into(be, &acts, &grads, layers, n, c, &mut theta)?;
    Ok(theta)
}

/// The structured empirical NTK `Θ = J Jᵀ` (row-major `NC × NC`) without forming `J`.
///
/// # Panics
/// If `θ.len() != P` or `x.len() != N·d`.
///
/// # Errors
/// As [`ntk_from_signals`].
#[track_caller]
pub fn ntk_structured<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    theta: &CudaSlice<T>,
    x: &CudaSlice<T>,
    n: usize,
) -> Result<CudaSlice<T>> {
    let s = mlp::signals(be, mlp, theta, x, n)?;
    ntk_from_signals(be, mlp, &s)
}

/// Result of [`gn_dual_step`].
#[derive(Debug)]
#[must_use]
pub enum DualStep<T> {
    /// The step `δ` (length `P`).
    Solved(CudaSlice<T>),
    /// `Θ + NλI` was not numerically positive definite: cuSOLVER's `potrf` stopped at the
    /// leading minor of this order. Raise the damping `λ` and retry.
    NotPositiveDefinite {
        /// Order of the failing leading minor (1-based, as LAPACK's `info`).
        minor: usize,
    },
}

/// One damped Gauss-Newton step for the mean MSE in dual (kernel) form, all on the device (the
/// crate's one dual step, [`dual_step_on`], on the CUDA backend):
/// `r = vec(f(X; θ) − Y)`, `(Θ + NλI) α = r` by Cholesky on the structured NTK, `δ = −Jᵀ α`
/// (one VJP on the same forward trace). `y` is row-major `N × C`.
///
/// # Panics
/// If `θ.len() != P`, `x.len() != N·d` or `y.len() != N·C`.
///
/// # Errors
/// [`crate::Error::Device`] on a driver, cuBLAS, cuSOLVER or kernel failure. A matrix that is not
/// positive definite is not an error: see [`DualStep::NotPositiveDefinite`].
#[track_caller]
pub fn gn_dual_step<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    theta: &CudaSlice<T>,
    x: &CudaSlice<T>,
    y: &CudaSlice<T>,
    n: usize,
    lambda: T,
) -> Result<DualStep<T>> {
    let (d, c) = (mlp.widths()[0], <Mlp as Model<f64>>::n_outputs(mlp));
    assert_eq!(
        y.len(),
        n * c,
        "cuda::gn_dual_step: Y has {} entries, expected N×C = {n}×{c}",
        y.len()
    );
    assert_eq!(
        x.len(),
        n * d,
        "cuda::gn_dual_step: X has {} entries, expected N×d = {n}×{d}",
        x.len()
    );
    let mut delta = be.alloc_uninit::<T>(theta.len())?;
    let mut ws = DualWorkspace::default();
    let outcome = dual_step_on(
        be,
        mlp,
        &DevSlice(theta.slice(..)),
        &rm_view(x, n, d),
        &rm_view(y, n, c),
        lambda,
        delta.slice_mut(..),
        &mut ws,
    )?;
    Ok(match outcome {
        None => DualStep::Solved(delta),
        Some(minor) => DualStep::NotPositiveDefinite { minor },
    })
}

/// A row-major `rows × cols` device buffer as a backend view.
fn rm_view<T>(v: &CudaSlice<T>, rows: usize, cols: usize) -> DevMat<'_, T> {
    DevMat {
        view: v.slice(..),
        rows,
        cols,
        trans: false,
    }
}
