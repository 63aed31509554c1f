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
use super::context::{CudaBackend, dev_err};
use super::mlp::{self, DeviceSignals};
use super::ops::{self, ThetaIn, wr};
use crate::{Error, Mlp, Model, Result};
use cudarc::driver::CudaSlice;
use std::ffi::c_int;

/// Structured NTK from device signals: `Θ` (row-major `NC × NC`, symmetric), the Grams by
/// cuBLAS and their Hadamard products by the fused pass (`ops::ntk_fused`, see the module
/// documentation).
///
/// # Panics
/// If the signals are not those of `mlp`.
///
/// # Errors
/// [`Error::Device`] on a driver, cuBLAS or kernel failure (including out of memory: this
/// needs two `NC × NC` buffers and one `N × N` buffer per layer).
#[track_caller]
pub fn ntk_from_signals<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    s: &DeviceSignals<T>,
) -> Result<CudaSlice<T>> {
    let n = s.trace.n_rows();
    let c = <Mlp as Model<f64>>::n_outputs(mlp);
    let m = n * c;
    let layers = mlp.layers();
    assert_eq!(
        s.grads.len(),
        layers.len(),
        "cuda::ntk: signals of another MLP"
    );
    let nl = layers.len();
    // AA_l = A_{l−1} A_{l−1}ᵀ for every layer, fully written (β = 0).
    let mut aas = Vec::with_capacity(nl);
    for (l, layer) in layers.iter().enumerate() {
        let a = s.trace.acts[l].get();
        let mut aa = be.alloc_uninit::<T>(n * n)?;
        ops::gemm_rm(
            be,
            false,
            true,
            n,
            n,
            layer.fan_in,
            T::one_impl(),
            a,
            a,
            T::zero_impl(),
            &mut aa,
        )?;
        aas.push(aa);
    }
    let sq = |l: usize| {
        let layer = &layers[l];
        (
            T::from_f64(layer.w_scale * layer.w_scale),
            T::from_f64(layer.b_scale * layer.b_scale),
        )
    };
    let gram = |l: usize, out: &mut CudaSlice<T>| {
        let g = s.grads[l].get();
        ops::gemm_rm(
            be,
            false,
            true,
            m,
            m,
            layers[l].fan_out,
            T::one_impl(),
            g,
            g,
            T::zero_impl(),
            out,
        )
    };
    let last = nl - 1;
    let (swe, sbe) = sq(last);
    // Θ is fully written: by the read-out pass alone (one layer), else by cuBLAS (GG_0, β = 0)
    // and then every fused pass writes every element.
    let mut theta = be.alloc_uninit::<T>(m * m)?;
    if nl == 1 {
        ops::ntk_fused(
            be,
            &mut theta,
            ThetaIn::Ignore,
            None,
            Some((&aas[0], swe, sbe)),
            m,
            c,
        )?;
        return Ok(theta);
    }
    gram(0, &mut theta)?;
    let (sw0, sb0) = sq(0);
    if nl == 2 {
        ops::ntk_fused(
            be,
            &mut theta,
            ThetaIn::Scale(&aas[0], sw0, sb0),
            None,
            Some((&aas[last], swe, sbe)),
            m,
            c,
        )?;
        return Ok(theta);
    }
    let mut gg = be.alloc_uninit::<T>(m * m)?;
    for l in 1..last {
        gram(l, &mut gg)?;
        let (swl, sbl) = sq(l);
        let theta_in = if l == 1 {
            ThetaIn::Scale(&aas[0], sw0, sb0)
        } else {
            ThetaIn::Add
        };
        let eye = (l + 1 == last).then(|| (&aas[last], swe, sbe));
        ops::ntk_fused(
            be,
            &mut theta,
            theta_in,
            Some((&gg, &aas[l], swl, sbl)),
            eye,
            m,
            c,
        )?;
    }
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

/// Cholesky solve `(A) X = B` in place on the device: `a` (`n × n`, symmetric, overwritten by
/// its factor), `b` (`n × nrhs`, column-major, overwritten by `X`). Returns cuSOLVER's `info`
/// of the factorisation (0 on success).
///
/// # Panics
/// If `a.len() != n²` or `b.len() != n·nrhs`.
///
/// # Errors
/// [`Error::Device`] if a size exceeds cuSOLVER's 32-bit range or cuSOLVER fails.
#[track_caller]
pub fn cholesky_solve<T: CudaReal>(
    be: &CudaBackend,
    a: &mut CudaSlice<T>,
    n: usize,
    b: &mut CudaSlice<T>,
    nrhs: usize,
) -> Result<i32> {
    assert_eq!(
        a.len(),
        n * n,
        "cholesky_solve: A has {} entries for {n}×{n}",
        a.len()
    );
    assert_eq!(
        b.len(),
        n * nrhs,
        "cholesky_solve: B has {} entries for {n}×{nrhs}",
        b.len()
    );
    if n == 0 {
        return Ok(0);
    }
    let ni = c_int::try_from(n).map_err(|_| {
        Error::Device(format!(
            "Cholesky of order {n} exceeds cuSOLVER's 32-bit sizes"
        ))
    })?;
    let nrhs_i = c_int::try_from(nrhs).map_err(|_| {
        Error::Device(format!(
            "{nrhs} right-hand sides exceed cuSOLVER's 32-bit sizes"
        ))
    })?;
    be.context()
        .bind_to_thread()
        .map_err(dev_err("binding the CUDA context"))?;
    let h = be.solver().cu();
    let ap = wr(be, a);
    let mut lwork: c_int = 0;
    // SAFETY: `a` holds n² elements (checked), the handle is bound to the backend's stream,
    // `lwork` is a host out-parameter.
    unsafe { T::potrf_buffer_size_raw(h, ni, ap, ni, &mut lwork) }
        .result()
        .map_err(dev_err("cuSOLVER potrf_bufferSize"))?;
    let mut work = be.alloc_uninit::<T>((lwork.max(1)) as usize)?;
    let mut info = be.zeros::<c_int>(1)?;
    let (wp, ip) = (wr(be, &mut work), wr(be, &mut info));
    // SAFETY: workspace of the size cuSOLVER asked for; `info` is one device int; same stream.
    unsafe { T::potrf_raw(h, ni, ap, ni, wp, lwork, ip) }
        .result()
        .map_err(dev_err("cuSOLVER potrf"))?;
    let status = be.download(&info)?[0];
    if status != 0 {
        return Ok(status);
    }
    let bp = wr(be, b);
    // SAFETY: `a` holds the factor from potrf, `b` has n·nrhs elements (checked); same stream.
    unsafe { T::potrs_raw(h, ni, nrhs_i, ap, ni, bp, ni, ip) }
        .result()
        .map_err(dev_err("cuSOLVER potrs"))?;
    let status = be.download(&info)?[0];
    if status != 0 {
        return Err(Error::Device(format!(
            "cuSOLVER potrs reported invalid argument {}",
            -status
        )));
    }
    Ok(0)
}

/// One damped Gauss-Newton step for the mean MSE in dual (kernel) form, all on the device:
/// `r = vec(f(X; θ) − Y)`, `(Θ + NλI) α = r` by Cholesky on the structured NTK, `δ = −Jᵀ α`
/// (one VJP on the same forward trace). `y` is row-major `N × C`.
///
/// # Panics
/// If `θ.len() != P`, `x.len() != N·d` or `y.len() != N·C`.
///
/// # Errors
/// [`Error::Device`] on a driver, cuBLAS, cuSOLVER or kernel failure. A matrix that is not
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
    let c = <Mlp as Model<f64>>::n_outputs(mlp);
    assert_eq!(
        y.len(),
        n * c,
        "cuda::gn_dual_step: Y has {} entries, expected N×C = {n}×{c}",
        y.len()
    );
    let s = mlp::signals(be, mlp, theta, x, n)?;
    let m = n * c;
    let mut k = ntk_from_signals(be, mlp, &s)?;
    ops::add_diag(be, &mut k, m, T::from_usize(n) * lambda)?;
    // Solve with −r = Y − f, so that the VJP gives δ = Jᵀ(−α) directly.
    let mut rhs = be.alloc_uninit::<T>(m)?;
    ops::axpby(
        be,
        T::one_impl(),
        y,
        -T::one_impl(),
        s.trace.output_buf().get(),
        &mut rhs,
    )?;
    let info = cholesky_solve(be, &mut k, m, &mut rhs, 1)?;
    if info > 0 {
        return Ok(DualStep::NotPositiveDefinite {
            minor: info as usize,
        });
    }
    if info < 0 {
        return Err(Error::Device(format!(
            "cuSOLVER potrf reported invalid argument {}",
            -info
        )));
    }
    drop(k);
    let delta = mlp::vjp_with_trace(be, mlp, theta, x, &s.trace, &rhs)?;
    Ok(DualStep::Solved(delta))
}
