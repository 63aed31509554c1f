//! `forward`, `jvp`, `vjp`, `signals`.

use crate::harness::*;
use itlin::kernels::cuda::{CudaReal, mlp as dmlp};

/// `forward`, `jvp`, `vjp` and `signals`; returns the seconds of `signals`.
pub(crate) fn model_rows<T: CudaReal>(b: &mut Bench, ps: &Pass<T>) -> Res<f64> {
    let (mlp, n, dt, gemm) = (&ps.mlp, ps.n, ps.dt, ps.gemm(b));
    let (td, xd) = (&ps.td, &ps.xd);
    let t = b.time(
        0.2,
        || Ok(()),
        || {
            dmlp::forward(&b.be, mlp, td, xd, n)?;
            Ok(())
        },
    )?;
    b.push("forward", n, dt, t, ps.flops_fwd, "GFLOP/s", gemm, "");
    let t = b.time(
        0.2,
        || Ok(()),
        || {
            dmlp::jvp(&b.be, mlp, td, xd, n, &ps.vd)?;
            Ok(())
        },
    )?;
    b.push("jvp", n, dt, t, 3.0 * ps.flops_fwd, "GFLOP/s", gemm, "");
    let t = b.time(
        0.2,
        || Ok(()),
        || {
            dmlp::vjp(&b.be, mlp, td, xd, n, &ps.ud)?;
            Ok(())
        },
    )?;
    b.push(
        "vjp",
        n,
        dt,
        t,
        3.0 * ps.flops_fwd,
        "GFLOP/s",
        gemm,
        "bias gradients by col_sum",
    );
    let t_sig = b.time(
        0.2,
        || Ok(()),
        || {
            dmlp::signals(&b.be, mlp, td, xd, n)?;
            Ok(())
        },
    )?;
    let sig_flops: f64 = 2.0
        * ps.m as f64
        * mlp.layers()[1..]
            .iter()
            .map(|l| (l.fan_in * l.fan_out) as f64)
            .sum::<f64>();
    b.push(
        "signals",
        n,
        dt,
        t_sig,
        sig_flops + ps.flops_fwd,
        "GFLOP/s",
        gemm,
        "batched backprop, cuBLAS",
    );
    Ok(t_sig)
}
