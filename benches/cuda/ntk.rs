//! Structured NTK against its cuBLAS Grams, Cholesky, and the dual GN step against its parts.

use crate::harness::*;
use itlin::kernels::cuda::{CudaReal, DeviceSignals, DualStep, mlp as dmlp, ntk as dntk, ops};
use std::cell::RefCell;

/// `ntk_structured` against its cuBLAS Grams alone, `cholesky`, and `gn_dual_step` against
/// the sum of its parts (Grams + Cholesky + one VJP). No `J`.
pub(crate) fn ntk_rows<T: CudaReal>(
    b: &mut Bench,
    ps: &Pass<T>,
    sig: &DeviceSignals<T>,
) -> Res<()> {
    let (mlp, n, m, dt, gemm) = (&ps.mlp, ps.n, ps.m, ps.dt, ps.gemm(b));
    let (td, xd, yd) = (&ps.td, &ps.xd, &ps.yd);
    // Synchronise first so that the stream-ordered pool has given J's memory back before we
    // read how much is free.
    b.be.synchronize()?;
    let (free, _) = b.be.mem_info()?;
    let theta_bytes = (m * m * std::mem::size_of::<T>()) as f64;
    if 2.1 * theta_bytes + 2e9 > free as f64 {
        println!(
            "skipping NTK / GN at N={n} {dt}: Θ is {:.1} GB, {:.1} GB free",
            theta_bytes / 1e9,
            free as f64 / 1e9
        );
        return Ok(());
    }
    let layers = mlp.layers();
    let gram_flops: f64 = layers
        .iter()
        .enumerate()
        .map(|(l, layer)| {
            let aa = 2.0 * (n * n * layer.fan_in) as f64;
            let gg = if l + 1 < layers.len() {
                2.0 * (m as f64).powi(2) * layer.fan_out as f64
            } else {
                0.0
            };
            aa + gg
        })
        .sum();
    let t_ntk = b.time(
        0.5,
        || Ok(()),
        || {
            dntk::ntk_structured(&b.be, mlp, td, xd, n)?;
            Ok(())
        },
    )?;
    b.push(
        "ntk_structured",
        n,
        dt,
        t_ntk,
        gram_flops,
        "GFLOP/s",
        gemm,
        "Gram flops; cuBLAS Grams + fused assembly",
    );
    // The cuBLAS part alone: the Gram GEMMs into preallocated buffers.
    let t_grams = {
        let mut aa = b.be.zeros::<T>(n * n)?;
        let mut gg = b.be.zeros::<T>(m * m)?;
        b.time(
            0.5,
            || Ok(()),
            || {
                for (l, layer) in layers.iter().enumerate() {
                    let a = sig.trace.input_buf(l).get();
                    ops::gemm_rm(
                        &b.be,
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
                    if l + 1 < layers.len() {
                        let g = sig.grads[l].get();
                        ops::gemm_rm(
                            &b.be,
                            false,
                            true,
                            m,
                            m,
                            layer.fan_out,
                            T::one_impl(),
                            g,
                            g,
                            T::zero_impl(),
                            &mut gg,
                        )?;
                    }
                }
                Ok(())
            },
        )?
    };
    b.push(
        "ntk_cublas_grams",
        n,
        dt,
        t_grams,
        gram_flops,
        "GFLOP/s",
        gemm,
        format!("ntk_structured / grams = {:.2}", t_ntk / t_grams),
    );

    // Cholesky solve alone on Θ + NλI (copied fresh before each timed call).
    let lambda = T::from_f64(1e-2);
    let t_chol = {
        let mut k = dntk::ntk_structured(&b.be, mlp, td, xd, n)?;
        ops::add_diag(&b.be, &mut k, m, T::from_usize(n) * lambda)?;
        let work = RefCell::new(b.be.zeros::<T>(m * m)?);
        let rhs = RefCell::new(b.be.zeros::<T>(m)?);
        b.time(
            0.5,
            || {
                b.be.stream().memcpy_dtod(&k, &mut *work.borrow_mut())?;
                b.be.stream().memcpy_dtod(yd, &mut *rhs.borrow_mut())?;
                Ok(())
            },
            || {
                let info = dntk::cholesky_solve(
                    &b.be,
                    &mut *work.borrow_mut(),
                    m,
                    &mut *rhs.borrow_mut(),
                    1,
                )?;
                if info != 0 {
                    return Err(format!("Θ + NλI not positive definite (minor {info})").into());
                }
                Ok(())
            },
        )?
    };
    b.push(
        "cholesky",
        n,
        dt,
        t_chol,
        (m as f64).powi(3) / 3.0,
        "GFLOP/s",
        gemm,
        "cuSOLVER potrf+potrs",
    );
    let t_vjp = {
        let tr = dmlp::trace(&b.be, mlp, td, xd, n, true)?;
        b.time(
            0.2,
            || Ok(()),
            || {
                dmlp::vjp_with_trace(&b.be, mlp, td, xd, &tr, &ps.ud)?;
                Ok(())
            },
        )?
    };
    let t_gn = b.time(
        0.5,
        || Ok(()),
        || match dntk::gn_dual_step(&b.be, mlp, td, xd, yd, n, lambda)? {
            DualStep::Solved(_) => Ok(()),
            DualStep::NotPositiveDefinite { minor } => {
                Err(format!("not positive definite at {minor}").into())
            }
        },
    )?;
    let parts = t_grams + t_chol + t_vjp;
    b.push(
        "gn_dual_step",
        n,
        dt,
        t_gn,
        gram_flops + (m as f64).powi(3) / 3.0,
        "GFLOP/s",
        gemm,
        format!(
            "vs cuBLAS grams + cuSOLVER + vjp: {:.2}x (parts {:.3} ms)",
            t_gn / parts,
            parts * 1e3
        ),
    );
    Ok(())
}
