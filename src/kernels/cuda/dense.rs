//! Dense device linear algebra of the dual Gauss-Newton step: the structured NTK assembled
//! from layer inputs and backprop signals (cuBLAS Grams and the fused Hadamard pass
//! `ops::ntk_fused`), and a Cholesky solve by cuSOLVER. What the CUDA backend's `ntk` and
//! `cholesky_solve` verbs run.

use super::blas::CudaReal;
use super::context::{CudaBackend, dev_err};
use super::ops::{self, ThetaIn, wr};
use crate::backend::Layer;
use crate::{Error, Result};
use cudarc::driver::{CudaSlice, DevicePtrMut};
use std::ffi::c_int;

/// The structured NTK `Θ` (row-major `M × M`, `M = N·C`, symmetric, every entry written)
/// into `theta` from the layer inputs `acts[l]` (`A_{l−1}`, row-major `N × fan_in`, `acts[0]`
/// is `X`) and the backprop signals `grads[l]` (row-major `M × fan_out`); see the module
/// docs for the passes.
///
/// # Panics
/// If the buffers do not fit the layers.
///
/// # Errors
/// [`Error::Device`] on a driver, cuBLAS or kernel failure (including out of memory: this
/// needs one more `M × M` buffer for three or more layers and one `N × N` buffer per layer).
#[track_caller]
pub(crate) fn ntk_into<T: CudaReal>(
    be: &CudaBackend,
    acts: &[&CudaSlice<T>],
    grads: &[&CudaSlice<T>],
    layers: &[Layer],
    n: usize,
    c: usize,
    theta: &mut impl DevicePtrMut<T>,
) -> Result<()> {
    let m = n * c;
    let nl = layers.len();
    assert!(
        acts.len() == nl && grads.len() == nl,
        "cuda::ntk: {} inputs and {} signals for {nl} layers",
        acts.len(),
        grads.len()
    );
    // AA_l = A_{l−1} A_{l−1}ᵀ for every layer, fully written (β = 0).
    let mut aas = Vec::with_capacity(nl);
    for (l, layer) in layers.iter().enumerate() {
        let a = acts[l];
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
    let last = nl - 1;
    let (swe, sbe) = sq(last);
    // Θ is fully written: by the read-out pass alone (one layer), else by cuBLAS (GG_0, β = 0)
    // and then every fused pass writes every element.
    if nl == 1 {
        ops::ntk_fused(
            be,
            theta,
            ThetaIn::Ignore,
            None,
            Some((&aas[0], swe, sbe)),
            m,
            c,
        )?;
        return Ok(());
    }
    let g0 = grads[0];
    ops::gemm_rm(
        be,
        false,
        true,
        m,
        m,
        layers[0].fan_out,
        T::one_impl(),
        g0,
        g0,
        T::zero_impl(),
        theta,
    )?;
    let (sw0, sb0) = sq(0);
    if nl == 2 {
        ops::ntk_fused(
            be,
            theta,
            ThetaIn::Scale(&aas[0], sw0, sb0),
            None,
            Some((&aas[last], swe, sbe)),
            m,
            c,
        )?;
        return Ok(());
    }
    let mut gg = be.alloc_uninit::<T>(m * m)?;
    for l in 1..last {
        let g = grads[l];
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
            &mut gg,
        )?;
        let (swl, sbl) = sq(l);
        let theta_in = if l == 1 {
            ThetaIn::Scale(&aas[0], sw0, sb0)
        } else {
            ThetaIn::Add
        };
        let eye = (l + 1 == last).then(|| (&aas[last], swe, sbe));
        ops::ntk_fused(
            be,
            theta,
            theta_in,
            Some((&gg, &aas[l], swl, sbl)),
            eye,
            m,
            c,
        )?;
    }
    Ok(())
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
    a: &mut impl DevicePtrMut<T>,
    n: usize,
    b: &mut impl DevicePtrMut<T>,
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
