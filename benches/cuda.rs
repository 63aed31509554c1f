//! GPU benchmark (feature `cuda`): the MLP 784-128-128-10 (tanh) at N = 1024 and 8192.
//!
//! Times with CUDA events around each call (median of several after a warm-up; module
//! compilation and handle creation happen before). Measures its own ceilings on the same
//! device: device-to-device copy bandwidth (bytes read + written, on a real Jacobian) and
//! cuBLAS GEMM rate (8192² · 4096 from Jacobian data); and cuBLAS gemv on the same `J` as the
//! baseline of the J-vector kernels, cuBLAS/cuSOLVER parts timed alone for the structured NTK
//! and the dual GN step.
//!
//! `cargo bench --features cuda --bench cuda [-- --quick] [-- --n 1024,8192]`; with
//! `ITLIN_BENCH_JSON=path` also one JSON object per row. Without a GPU it prints why and exits 0.
use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaSlice, CudaView};
use itlin::kernels::cuda::{
    CudaBackend, CudaReal, DualStep, cudarc, mlp as dmlp, ntk as dntk, ops,
};
use itlin::{Activation, Init, Mlp, Model, Real};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::error::Error;
use std::io::Write;

type Res<T> = Result<T, Box<dyn Error>>;

struct Row {
    op: String,
    n: usize,
    dtype: &'static str,
    median_s: f64,
    rate: f64,
    unit: &'static str,
    ceiling: f64,
    note: String,
}

struct Bench {
    be: CudaBackend,
    rows: Vec<Row>,
    quick: bool,
    copy_gbs: f64,
    /// Write-only ceiling: the better of `cuMemsetD8` and the `fill` kernel (GB written / s).
    write_gbs: f64,
    gemm_gflops: [f64; 2],
    /// (N, dtype, seconds of cuBLAS Grams + cuSOLVER + VJP) of each run, for the v2 GN row.
    gn_parts: Vec<(usize, &'static str, f64)>,
}

impl Bench {
    /// Median seconds of `op` over several timed calls (events on the backend's stream),
    /// after one warm-up call; `prep` runs before each call, outside the timed region.
    fn time(
        &self,
        target_s: f64,
        mut prep: impl FnMut() -> Res<()>,
        mut op: impl FnMut() -> Res<()>,
    ) -> Res<f64> {
        let ctx = self.be.context();
        let st = self.be.stream();
        let once =
            |prep: &mut dyn FnMut() -> Res<()>, op: &mut dyn FnMut() -> Res<()>| -> Res<f64> {
                prep()?;
                let a = ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
                let b = ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
                a.record(st)?;
                op()?;
                b.record(st)?;
                Ok(a.elapsed_ms(&b)? as f64 * 1e-3)
            };
        let first = once(&mut prep, &mut op)?;
        let max_reps = if self.quick { 5 } else { 20 };
        // Calls of seconds (Cholesky of order 81920) get one timed repeat after the warm-up.
        let min_reps = if first > 2.0 { 1 } else { 3 };
        let reps = ((target_s / first.max(1e-6)) as usize).clamp(min_reps, max_reps);
        let mut t: Vec<f64> = (0..reps)
            .map(|_| once(&mut prep, &mut op))
            .collect::<Res<_>>()?;
        t.sort_by(|a, b| a.total_cmp(b));
        Ok(t[t.len() / 2])
    }

    /// Median seconds of an earlier row.
    fn prev(&self, op: &str, n: usize, dtype: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.op == op && r.n == n && r.dtype == dtype)
            .map(|r| r.median_s)
    }

    /// Pushes the row of a new kernel variant from its timing result; a failure prints one
    /// line and the benchmark goes on, so that it never hides the rows of the old variants.
    #[allow(clippy::too_many_arguments)]
    fn report(
        &mut self,
        op: &str,
        n: usize,
        dtype: &'static str,
        timed: Res<f64>,
        work: f64,
        unit: &'static str,
        ceiling: f64,
        note: impl Into<String>,
    ) -> Option<f64> {
        match timed {
            Ok(t) => {
                self.push(op, n, dtype, t, work, unit, ceiling, note);
                Some(t)
            }
            Err(e) => {
                println!("{op:<22} N={n:<5} {dtype:<4} FAILED: {e}");
                None
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        op: &str,
        n: usize,
        dtype: &'static str,
        s: f64,
        work: f64,
        unit: &'static str,
        ceiling: f64,
        note: impl Into<String>,
    ) {
        let rate = work / s / 1e9;
        let row = Row {
            op: op.into(),
            n,
            dtype,
            median_s: s,
            rate,
            unit,
            ceiling,
            note: note.into(),
        };
        println!(
            "{:<22} N={:<5} {:<4} {:>10.3} ms {:>9.1} {:<7} ceiling {:>8.1} ratio {:>5.2} {}",
            row.op,
            n,
            dtype,
            s * 1e3,
            rate,
            unit,
            ceiling,
            if ceiling > 0.0 {
                rate / ceiling
            } else {
                f64::NAN
            },
            row.note
        );
        self.rows.push(row);
    }
}

fn rand_host<T: Real>(rng: &mut ChaCha8Rng, n: usize) -> Vec<T> {
    (0..n)
        .map(|_| T::from_f64(rng.random::<f64>() * 2.0 - 1.0))
        .collect()
}

fn dtype_index<T: Real>() -> usize {
    usize::from(T::NAME == "f64")
}

fn run<T: CudaReal>(b: &mut Bench, n: usize) -> Res<()> {
    let mlp = Mlp::new(&[784, 128, 128, 10], Activation::Tanh)?;
    let p = <Mlp as Model<T>>::n_params(&mlp);
    let c = 10;
    let m = n * c;
    let es = std::mem::size_of::<T>() as f64;
    let dt = T::NAME;
    b.be.synchronize()?;
    let (free, _) = b.be.mem_info()?;
    let j_bytes = (m * p) as f64 * es;
    if j_bytes * 1.1 > free as f64 {
        println!(
            "skipping N={n} {dt}: J needs {:.1} GB, {:.1} GB free",
            j_bytes / 1e9,
            free as f64 / 1e9
        );
        return Ok(());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(n as u64);
    let theta: Vec<T> = mlp.init(Init::Standard, 1);
    let be = &b.be;
    let td = be.upload(&theta)?;
    let xd = be.upload(&rand_host::<T>(&mut rng, n * 784))?;
    let vd = be.upload(&rand_host::<T>(&mut rng, p))?;
    let ud = be.upload(&rand_host::<T>(&mut rng, m))?;
    let yd = be.upload(&rand_host::<T>(&mut rng, m))?;
    let flops_fwd: f64 = 2.0
        * n as f64
        * mlp
            .layers()
            .iter()
            .map(|l| (l.fan_in * l.fan_out) as f64)
            .sum::<f64>();
    let gemm = b.gemm_gflops[dtype_index::<T>()];

    let t = b.time(
        0.2,
        || Ok(()),
        || {
            dmlp::forward(&b.be, &mlp, &td, &xd, n)?;
            Ok(())
        },
    )?;
    b.push("forward", n, dt, t, flops_fwd, "GFLOP/s", gemm, "");
    let t = b.time(
        0.2,
        || Ok(()),
        || {
            dmlp::jvp(&b.be, &mlp, &td, &xd, n, &vd)?;
            Ok(())
        },
    )?;
    b.push("jvp", n, dt, t, 3.0 * flops_fwd, "GFLOP/s", gemm, "");
    let t = b.time(
        0.2,
        || Ok(()),
        || {
            dmlp::vjp(&b.be, &mlp, &td, &xd, n, &ud)?;
            Ok(())
        },
    )?;
    b.push(
        "vjp",
        n,
        dt,
        t,
        3.0 * flops_fwd,
        "GFLOP/s",
        gemm,
        "bias gradients by the two-stage col_sum",
    );
    // The bias-gradient column sum of the widest layer (N × 128), both kernels.
    {
        let xs = b.be.upload(&rand_host::<T>(&mut rng, n * 128))?;
        let mut o1 = b.be.zeros::<T>(128)?;
        let cs_bytes = (n * 128) as f64 * es;
        let t = b.time(
            0.1,
            || Ok(()),
            || {
                Ok(ops::col_sum_one_stage(
                    &b.be,
                    &xs,
                    n,
                    128,
                    T::one_impl(),
                    &mut o1,
                )?)
            },
        )?;
        b.push(
            "col_sum_v1",
            n,
            dt,
            t,
            cs_bytes,
            "GB/s",
            b.copy_gbs,
            "N x 128, one stage",
        );
    }

    let sig = dmlp::signals(&b.be, &mlp, &td, &xd, n)?;
    let t_sig = b.time(
        0.2,
        || Ok(()),
        || {
            dmlp::signals(&b.be, &mlp, &td, &xd, n)?;
            Ok(())
        },
    )?;
    let sig_flops: f64 = 2.0
        * m as f64
        * mlp.layers()[1..]
            .iter()
            .map(|l| (l.fan_in * l.fan_out) as f64)
            .sum::<f64>();
    b.push(
        "signals",
        n,
        dt,
        t_sig,
        sig_flops + flops_fwd,
        "GFLOP/s",
        gemm,
        "batched backprop, cuBLAS",
    );

    let mut j = b.be.zeros::<T>(m * p)?;
    dmlp::write_jacobian_v1(&b.be, &mlp, &sig, &mut j)?;
    let t = b.time(
        0.3,
        || Ok(()),
        || {
            dmlp::write_jacobian_v1(&b.be, &mlp, &sig, &mut j)?;
            Ok(())
        },
    )?;
    let cb = b.copy_gbs;
    b.push(
        "jacobian_write",
        n,
        dt,
        t,
        j_bytes,
        "GB/s",
        cb,
        format!("J {m}x{p}"),
    );
    b.push(
        "jacobian",
        n,
        dt,
        t + t_sig,
        j_bytes,
        "GB/s",
        cb,
        "signals + write",
    );

    if n == 1024 {
        ceilings::<T>(b, &j)?;
    }
    let cb = b.copy_gbs;
    let be = &b.be;
    let mut out_m = be.zeros::<T>(m)?;
    let mut out_p = be.zeros::<T>(p)?;
    let t = b.time(
        0.3,
        || Ok(()),
        || Ok(ops::j_v(&b.be, &j, m, p, &vd, &mut out_m)?),
    )?;
    b.push("j_v", n, dt, t, j_bytes, "GB/s", cb, "");
    let t = b.time(
        0.3,
        || Ok(()),
        || Ok(ops::gemv_rm(&b.be, false, &j, m, p, &vd, &mut out_m)?),
    )?;
    b.push("cublas_gemv_j_v", n, dt, t, j_bytes, "GB/s", cb, "baseline");
    let t = b.time(
        0.3,
        || Ok(()),
        || Ok(ops::jt_u_v1(&b.be, &j, m, p, &ud, &mut out_p)?),
    )?;
    b.push("jt_u", n, dt, t, j_bytes, "GB/s", cb, "first version");
    let t = b.time(
        0.3,
        || Ok(()),
        || Ok(ops::gemv_rm(&b.be, true, &j, m, p, &ud, &mut out_p)?),
    )?;
    b.push(
        "cublas_gemv_jt_u",
        n,
        dt,
        t,
        j_bytes,
        "GB/s",
        cb,
        "baseline",
    );
    let t = b.time(
        0.3,
        || Ok(()),
        || Ok(ops::jt_j_v(&b.be, &j, m, p, &vd, &mut out_p)?),
    )?;
    b.push(
        "jt_j_v",
        n,
        dt,
        t,
        2.0 * j_bytes,
        "GB/s",
        cb,
        "2 passes over J",
    );
    let t = b.time(
        0.3,
        || Ok(()),
        || {
            ops::gemv_rm(&b.be, false, &j, m, p, &vd, &mut out_m)?;
            Ok(ops::gemv_rm(&b.be, true, &j, m, p, &out_m, &mut out_p)?)
        },
    )?;
    b.push(
        "cublas_gemv_jt_j_v",
        n,
        dt,
        t,
        2.0 * j_bytes,
        "GB/s",
        cb,
        "baseline, 2 gemv",
    );
    drop(j);

    // Structured NTK and the dual GN step (no J). Synchronise first so that the stream-ordered
    // pool has given J's memory back before we read how much is free.
    b.be.synchronize()?;
    let (free, _) = b.be.mem_info()?;
    let theta_bytes = (m * m) as f64 * es;
    if 2.1 * theta_bytes + 2e9 > free as f64 {
        println!(
            "skipping NTK / GN at N={n} {dt}: Θ is {:.1} GB, {:.1} GB free",
            theta_bytes / 1e9,
            free as f64 / 1e9
        );
        return Ok(());
    }
    let gram_flops: f64 = mlp
        .layers()
        .iter()
        .enumerate()
        .map(|(l, layer)| {
            let aa = 2.0 * (n * n * layer.fan_in) as f64;
            let gg = if l + 1 < mlp.layers().len() {
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
            dntk::ntk_structured_with(&b.be, &mlp, &td, &xd, n, dntk::Assembly::PerLayer)?;
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
        "Gram flops",
    );
    // The cuBLAS part alone: the Gram GEMMs into preallocated buffers.
    let mut aa = b.be.zeros::<T>(n * n)?;
    let mut gg = b.be.zeros::<T>(m * m)?;
    let t_grams = b.time(
        0.5,
        || Ok(()),
        || {
            for (l, layer) in mlp.layers().iter().enumerate() {
                let a = &sig.trace.acts[l];
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
                if l + 1 < mlp.layers().len() {
                    let g = &sig.grads[l];
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
    )?;
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
    drop(gg);
    drop(aa);

    // Cholesky solve alone on Θ + NλI (copied fresh before each timed call).
    let lambda = T::from_f64(1e-2);
    let mut k = dntk::ntk_structured_with(&b.be, &mlp, &td, &xd, n, dntk::Assembly::PerLayer)?;
    ops::add_diag(&b.be, &mut k, m, T::from_usize(n) * lambda)?;
    let work = RefCell::new(b.be.zeros::<T>(m * m)?);
    let rhs = RefCell::new(b.be.zeros::<T>(m)?);
    let t_chol = b.time(
        0.5,
        || {
            b.be.stream().memcpy_dtod(&k, &mut *work.borrow_mut())?;
            b.be.stream().memcpy_dtod(&yd, &mut *rhs.borrow_mut())?;
            Ok(())
        },
        || {
            let info =
                dntk::cholesky_solve(&b.be, &mut work.borrow_mut(), m, &mut rhs.borrow_mut(), 1)?;
            if info != 0 {
                return Err(format!("Θ + NλI not positive definite (minor {info})").into());
            }
            Ok(())
        },
    )?;
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
    drop(work);
    drop(k);
    let tr = dmlp::trace(&b.be, &mlp, &td, &xd, n, true)?;
    let t_vjp = b.time(
        0.2,
        || Ok(()),
        || {
            dmlp::vjp_with_trace(&b.be, &mlp, &td, &tr, &ud)?;
            Ok(())
        },
    )?;
    drop(tr);
    let t_gn = b.time(
        0.5,
        || Ok(()),
        || match dntk::gn_dual_step_with(
            &b.be,
            &mlp,
            &td,
            &xd,
            &yd,
            n,
            lambda,
            dntk::Assembly::PerLayer,
        )? {
            DualStep::Solved(_) => Ok(()),
            DualStep::NotPositiveDefinite { minor } => {
                Err(format!("not positive definite at {minor}").into())
            }
        },
    )?;
    let parts = t_grams + t_chol + t_vjp;
    b.gn_parts.push((n, dt, parts));
    b.push(
        "gn_dual_step",
        n,
        dt,
        t_gn,
        gram_flops + (m as f64).powi(3) / 3.0,
        "GFLOP/s",
        gemm,
        format!(
            "vs cuBLAS grams + cuSOLVER + vjp ({:.3} ms): {:.2}x",
            parts * 1e3,
            t_gn / parts
        ),
    );
    Ok(())
}

/// Largest `|a_i − b_i|` over the largest `|a_i|` (0 when equal).
fn max_rel<T: Real>(a: &[T], b: &[T]) -> f64 {
    let scale = a.iter().map(|x| x.to_f64().abs()).fold(0.0, f64::max);
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x.to_f64() - y.to_f64()).abs())
        // a NaN (an element some kernel never wrote) is an infinite difference, not skipped
        .map(|d| if d.is_nan() { f64::INFINITY } else { d })
        .fold(0.0, f64::max);
    if diff == 0.0 {
        0.0
    } else {
        diff / scale.max(f64::MIN_POSITIVE)
    }
}

/// The rows of the new kernel variants (v2), run after every old row of every size and type
/// so that a failing new kernel (even one that leaves the context unusable) cannot hide the
/// old numbers. Same inputs as [`run`] (same seeds); each v2 result is checked against v1.
fn run_v2<T: CudaReal>(b: &mut Bench, n: usize) -> Res<()> {
    let mlp = Mlp::new(&[784, 128, 128, 10], Activation::Tanh)?;
    let p = <Mlp as Model<T>>::n_params(&mlp);
    let c = 10;
    let m = n * c;
    let es = std::mem::size_of::<T>() as f64;
    let dt = T::NAME;
    b.be.synchronize()?;
    let (free, _) = b.be.mem_info()?;
    let j_bytes = (m * p) as f64 * es;
    if j_bytes * 1.1 > free as f64 {
        println!("skipping v2 at N={n} {dt}: J needs {:.1} GB", j_bytes / 1e9);
        return Ok(());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(n as u64);
    let theta: Vec<T> = mlp.init(Init::Standard, 1);
    let td = b.be.upload(&theta)?;
    let xd = b.be.upload(&rand_host::<T>(&mut rng, n * 784))?;
    let vd = b.be.upload(&rand_host::<T>(&mut rng, p))?;
    let _ud = b.be.upload(&rand_host::<T>(&mut rng, m))?;
    let yd = b.be.upload(&rand_host::<T>(&mut rng, m))?;
    let gemm = b.gemm_gflops[dtype_index::<T>()];
    let cb = b.copy_gbs;

    // Bias-gradient column sum (N × 128), two stages; checked against the one-stage kernel.
    {
        let xs = b.be.upload(&rand_host::<T>(&mut rng, n * 128))?;
        let mut o1 = b.be.zeros::<T>(128)?;
        let mut o2 = b.be.zeros::<T>(128)?;
        let cs_bytes = (n * 128) as f64 * es;
        ops::col_sum_one_stage(&b.be, &xs, n, 128, T::one_impl(), &mut o1)?;
        let timed = b.time(
            0.1,
            || Ok(()),
            || Ok(ops::col_sum(&b.be, &xs, n, 128, T::one_impl(), &mut o2)?),
        );
        let t2 = b.report(
            "col_sum_v2",
            n,
            dt,
            timed,
            cs_bytes,
            "GB/s",
            b.copy_gbs,
            "N x 128, two stages",
        );
        if t2.is_some() {
            let (h1, h2) = (b.be.download(&o1)?, b.be.download(&o2)?);
            println!(
                "col_sum v1 vs v2: max relative difference {:.2e}",
                max_rel(&h1, &h2)
            );
        }
    }

    let sig = dmlp::signals(&b.be, &mlp, &td, &xd, n)?;
    let t_sig = b.prev("signals", n, dt).unwrap_or(0.0);
    let mut j = b.be.zeros::<T>(m * p)?;
    dmlp::write_jacobian_v1(&b.be, &mlp, &sig, &mut j)?;
    if let Some(t) = b.prev("jacobian_write", n, dt) {
        // v2: all layers in one launch over the flat J. Checked against v1 through J v (the two
        // write bit-identical values, so J v must agree exactly); J ends up holding v1's values.
        {
            let mut y1 = b.be.zeros::<T>(m)?;
            let mut y2 = b.be.zeros::<T>(m)?;
            ops::j_v(&b.be, &j, m, p, &vd, &mut y1)?;
            let timed = b.time(
                0.3,
                || Ok(()),
                || Ok(dmlp::write_jacobian_v2(&b.be, &mlp, &sig, &mut j)?),
            );
            let t2 = b.report(
                "jacobian_write_v2",
                n,
                dt,
                timed,
                j_bytes,
                "GB/s",
                cb,
                format!(
                    "one launch, flat 16-byte streaming stores; v1/v2 = {:.2}",
                    0.0
                ),
            );
            if let Some(t2) = t2 {
                if let Some(r) = b.rows.last_mut() {
                    r.note = format!(
                        "one launch, flat 16-byte streaming stores; v1/v2 = {:.2}",
                        t / t2
                    );
                }
                ops::fill(&b.be, &mut j, T::from_f64(f64::NAN))?;
                dmlp::write_jacobian_v2(&b.be, &mlp, &sig, &mut j)?;
                ops::j_v(&b.be, &j, m, p, &vd, &mut y2)?;
                let d = max_rel(&b.be.download(&y1)?, &b.be.download(&y2)?);
                println!(
                    "jacobian v2 vs v1 (J v): max relative difference {d:.2e}{}",
                    if d == 0.0 { "" } else { "  MISMATCH" }
                );
                b.push(
                    "jacobian_v2",
                    n,
                    dt,
                    t2 + t_sig,
                    j_bytes,
                    "GB/s",
                    cb,
                    "signals + write v2",
                );
                // v4: weight stripes (activations in registers, one store per weight row)
                // plus the gaps kernel, in several block shapes; each checked against v2
                // through J v (must be exactly 0). Then each kernel of the default alone.
                let dims: Vec<(usize, usize)> =
                    mlp.layers().iter().map(|l| (l.fan_in, l.fan_out)).collect();
                let own = ops::jacobian_v4_applies::<T>(m, &dims);
                let o4 =
                    |rows: usize, at_once: usize, kernels: ops::V4Kernels| ops::JacobianV4Opts {
                        weight_rows_per_block: rows,
                        min_rows_at_once: at_once,
                        kernels,
                    };
                let both = ops::V4Kernels::Both;
                let v4_rows = [
                    (
                        "jacobian_write_v4",
                        o4(0, 0, both),
                        "default: 4 (f32) / 16 (f64) weight rows per block",
                    ),
                    (
                        "jacobian_write_v4_w2",
                        o4(2, 0, both),
                        "2 weight rows per block",
                    ),
                    (
                        "jacobian_write_v4_w4",
                        o4(4, 0, both),
                        "4 weight rows per block",
                    ),
                    (
                        "jacobian_write_v4_w8",
                        o4(8, 0, both),
                        "8 weight rows per block",
                    ),
                    (
                        "jacobian_write_v4_w16",
                        o4(16, 0, both),
                        "16 weight rows per block",
                    ),
                    (
                        "jacobian_write_v4_w32",
                        o4(32, 0, both),
                        "32 weight rows per block",
                    ),
                    (
                        "jacobian_write_v4_all",
                        o4(1 << 20, 0, both),
                        "all weight rows per block",
                    ),
                    (
                        "jacobian_write_v4_stripes",
                        o4(0, 0, ops::V4Kernels::StripesOnly),
                        "the stripes kernels alone (default shape)",
                    ),
                    (
                        "jacobian_write_v4_gaps",
                        o4(0, 0, ops::V4Kernels::GapsOnly),
                        "the gaps kernel alone",
                    ),
                ];
                let wc = b.write_gbs;
                for (name, opts, what) in v4_rows {
                    let timed = b.time(
                        0.3,
                        || Ok(()),
                        || Ok(dmlp::write_jacobian_v4(&b.be, &mlp, &sig, &mut j, opts)?),
                    );
                    let note = |t4: f64| {
                        format!(
                            "{what}{}; v2/v4 = {:.2}; {:.2} of the write-only ceiling {:.0} GB/s",
                            if own { "" } else { " (fell back to v2)" },
                            t2 / t4,
                            j_bytes / t4 / 1e9 / wc,
                            wc
                        )
                    };
                    let t4 = b.report(name, n, dt, timed, j_bytes, "GB/s", cb, note(f64::NAN));
                    let Some(t4) = t4 else { continue };
                    if let Some(r) = b.rows.last_mut() {
                        r.note = note(t4);
                    }
                    if opts.kernels != both {
                        continue;
                    }
                    // one more call into a NaN-poisoned J, so an element it misses shows
                    ops::fill(&b.be, &mut j, T::from_f64(f64::NAN))?;
                    dmlp::write_jacobian_v4(&b.be, &mlp, &sig, &mut j, opts)?;
                    let mut y4 = b.be.zeros::<T>(m)?;
                    ops::j_v(&b.be, &j, m, p, &vd, &mut y4)?;
                    let d = max_rel(&b.be.download(&y2)?, &b.be.download(&y4)?);
                    println!(
                        "jacobian {name} vs v2 (J v): max relative difference {d:.2e}{}",
                        if d == 0.0 { "" } else { "  MISMATCH" }
                    );
                    if name == "jacobian_write_v4" {
                        b.push(
                            "jacobian_v4",
                            n,
                            dt,
                            t4 + t_sig,
                            j_bytes,
                            "GB/s",
                            cb,
                            "signals + write v4",
                        );
                    }
                }
                dmlp::write_jacobian_v1(&b.be, &mlp, &sig, &mut j)?;
            }
        }
    }
    // Jᵀu with four rows in flight for 8-byte f32 loads; checked against the first version.
    {
        let ud = b.be.upload(&rand_host::<T>(&mut rng, m))?;
        let mut o1 = b.be.zeros::<T>(p)?;
        let mut o2 = b.be.zeros::<T>(p)?;
        ops::jt_u_v1(&b.be, &j, m, p, &ud, &mut o1)?;
        let timed = b.time(
            0.3,
            || Ok(()),
            || Ok(ops::jt_u(&b.be, &j, m, p, &ud, &mut o2)?),
        );
        let t1 = b.prev("jt_u", n, dt);
        if let Some(t2) = b.report("jt_u_v2", n, dt, timed, j_bytes, "GB/s", cb, "") {
            let d = max_rel(&b.be.download(&o1)?, &b.be.download(&o2)?);
            if let Some(r) = b.rows.last_mut() {
                r.note = format!(
                    "4 rows in flight (8-byte f32); v1/v2 = {:.2}",
                    t1.unwrap_or(f64::NAN) / t2
                );
            }
            println!(
                "jt_u v2 vs v1: max relative difference {d:.2e}{}",
                if d < 1e-4 { "" } else { "  MISMATCH" }
            );
        }
    }
    drop(j);

    b.be.synchronize()?;
    let (free, _) = b.be.mem_info()?;
    let theta_bytes = (m * m) as f64 * es;
    if 2.1 * theta_bytes + 2e9 > free as f64 {
        println!("skipping NTK / GN v2 at N={n} {dt}");
        return Ok(());
    }
    let gram_flops: f64 = mlp
        .layers()
        .iter()
        .enumerate()
        .map(|(l, layer)| {
            let aa = 2.0 * (n * n * layer.fan_in) as f64;
            let gg = if l + 1 < mlp.layers().len() {
                2.0 * (m as f64).powi(2) * layer.fan_out as f64
            } else {
                0.0
            };
            aa + gg
        })
        .sum();
    let (Some(t_ntk), Some(t_grams)) = (
        b.prev("ntk_structured", n, dt),
        b.prev("ntk_cublas_grams", n, dt),
    ) else {
        return Ok(());
    };
    // v2: fused assembly (one pass over Θ after the GEMMs). Checked against v1 through Θ w.
    {
        let wd = b.be.upload(&rand_host::<T>(&mut rng, m))?;
        let mut y1 = b.be.zeros::<T>(m)?;
        {
            let k1 = dntk::ntk_structured_with(&b.be, &mlp, &td, &xd, n, dntk::Assembly::PerLayer)?;
            ops::gemv_rm(&b.be, false, &k1, m, m, &wd, &mut y1)?;
        }
        let timed = b.time(
            0.5,
            || Ok(()),
            || {
                dntk::ntk_structured_with(&b.be, &mlp, &td, &xd, n, dntk::Assembly::Fused)?;
                Ok(())
            },
        );
        let t2 = b.report(
            "ntk_structured_v2",
            n,
            dt,
            timed,
            gram_flops,
            "GFLOP/s",
            gemm,
            "fused assembly",
        );
        if let Some(t2) = t2 {
            if let Some(r) = b.rows.last_mut() {
                r.note = format!(
                    "fused assembly; v2 / grams = {:.2}, v1/v2 = {:.2}",
                    t2 / t_grams,
                    t_ntk / t2
                );
            }
            let k2 = dntk::ntk_structured_with(&b.be, &mlp, &td, &xd, n, dntk::Assembly::Fused)?;
            let mut y2 = b.be.zeros::<T>(m)?;
            ops::gemv_rm(&b.be, false, &k2, m, m, &wd, &mut y2)?;
            let d = max_rel(&b.be.download(&y1)?, &b.be.download(&y2)?);
            println!(
                "ntk v2 vs v1 (Θ w): max relative difference {d:.2e}{}",
                if d < 1e-3 { "" } else { "  MISMATCH" }
            );
        }
    }
    let lambda = T::from_f64(1e-2);
    let Some(&(_, _, parts)) = b.gn_parts.iter().find(|g| g.0 == n && g.1 == dt) else {
        return Ok(());
    };
    let timed = b.time(
        0.5,
        || Ok(()),
        || match dntk::gn_dual_step_with(
            &b.be,
            &mlp,
            &td,
            &xd,
            &yd,
            n,
            lambda,
            dntk::Assembly::Fused,
        )? {
            DualStep::Solved(_) => Ok(()),
            DualStep::NotPositiveDefinite { minor } => {
                Err(format!("not positive definite at {minor}").into())
            }
        },
    );
    let t2 = b.report(
        "gn_dual_step_v2",
        n,
        dt,
        timed,
        gram_flops + (m as f64).powi(3) / 3.0,
        "GFLOP/s",
        gemm,
        "",
    );
    if let (Some(t2), Some(r)) = (t2, b.rows.last_mut()) {
        r.note = format!(
            "fused NTK; vs cuBLAS grams + cuSOLVER + vjp: {:.2}x",
            t2 / parts
        );
    }
    Ok(())
}

/// Copy bandwidth (D2D memcpy of a real Jacobian, bytes read + written) and cuBLAS GEMM rate
/// (8192 × 8192 × 4096 with operands taken from the Jacobian).
fn ceilings<T: CudaReal>(b: &mut Bench, j: &CudaSlice<T>) -> Res<()> {
    let dt = T::NAME;
    let len = j.len().min((4usize << 30) / std::mem::size_of::<T>());
    let src: CudaView<'_, T> = j.slice(0..len);
    let mut dst = b.be.zeros::<T>(len)?;
    let bytes = 2.0 * (len * std::mem::size_of::<T>()) as f64;
    let t = b.time(
        0.3,
        || Ok(()),
        || Ok(b.be.stream().memcpy_dtod(&src, &mut dst)?),
    )?;
    if b.copy_gbs == 0.0 {
        b.copy_gbs = bytes / t / 1e9;
    }
    b.push(
        "copy_d2d",
        0,
        dt,
        t,
        bytes,
        "GB/s",
        b.copy_gbs,
        "read + write; the bandwidth ceiling",
    );
    // Write-only ceilings on the same buffer: the driver's memset and our 16-byte streaming
    // store kernel (the store the Jacobian kernels use). A Jacobian assembly writes J and
    // reads almost nothing, so these, not the copy, bound it.
    let wbytes = (len * std::mem::size_of::<T>()) as f64;
    let t = b.time(0.3, || Ok(()), || Ok(b.be.stream().memset_zeros(&mut dst)?))?;
    b.write_gbs = b.write_gbs.max(wbytes / t / 1e9);
    let cb = b.copy_gbs;
    b.push(
        "write_memset",
        0,
        dt,
        t,
        wbytes,
        "GB/s",
        cb,
        "cuMemsetD8, write only",
    );
    let t = b.time(
        0.3,
        || Ok(()),
        || Ok(ops::fill(&b.be, &mut dst, T::one_impl())?),
    )?;
    b.write_gbs = b.write_gbs.max(wbytes / t / 1e9);
    b.push(
        "write_fill",
        0,
        dt,
        t,
        wbytes,
        "GB/s",
        cb,
        "fill kernel, 16-byte st.global.cs, write only",
    );
    drop(dst);
    let (mm, nn, kk) = (8192usize, 8192usize, 4096usize);
    if j.len() >= mm * kk + kk * nn {
        let a = j.slice(0..mm * kk);
        let bb = j.slice(mm * kk..mm * kk + kk * nn);
        let mut cc = b.be.zeros::<T>(mm * nn)?;
        let t = b.time(
            0.3,
            || Ok(()),
            || {
                Ok(ops::gemm_rm(
                    &b.be,
                    false,
                    false,
                    mm,
                    nn,
                    kk,
                    T::one_impl(),
                    &a,
                    &bb,
                    T::zero_impl(),
                    &mut cc,
                )?)
            },
        )?;
        let flops = 2.0 * (mm * nn * kk) as f64;
        b.gemm_gflops[dtype_index::<T>()] = flops / t / 1e9;
        let ceiling = b.gemm_gflops[dtype_index::<T>()];
        b.push(
            "cublas_gemm",
            mm,
            dt,
            t,
            flops,
            "GFLOP/s",
            ceiling,
            "8192x8192x4096; the GEMM ceiling",
        );
    }
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let sizes: Vec<usize> = args
        .iter()
        .position(|a| a == "--n")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1024, 8192]);
    let be = match CudaBackend::new() {
        Ok(be) => be,
        Err(e) => {
            println!("skipping the CUDA benchmark: {e}");
            return Ok(());
        }
    };
    be.warm_up()?;
    println!(
        "device: {} ({}), {} GB",
        be.device_name()?,
        be.arch(),
        be.mem_info()?.1 / 1_000_000_000
    );
    let mut b = Bench {
        be,
        rows: Vec::new(),
        quick,
        copy_gbs: 0.0,
        write_gbs: 0.0,
        gemm_gflops: [0.0; 2],
        gn_parts: Vec::new(),
    };
    for &n in &sizes {
        if let Err(e) = run::<f32>(&mut b, n) {
            println!("N={n} f32 stopped: {e}");
        }
        if n <= 4096 {
            if let Err(e) = run::<f64>(&mut b, n) {
                println!("N={n} f64 stopped: {e}");
            }
        } else {
            println!(
                "skipping f64 at N={n}: J would need {:.0} GB",
                (n * 10 * 118_282 * 8) as f64 / 1e9
            );
        }
    }
    println!("\n== new kernel variants (v2), after every old row");
    for &n in &sizes {
        if let Err(e) = run_v2::<f32>(&mut b, n) {
            println!("N={n} f32 v2 stopped: {e}");
        }
        if n <= 4096
            && let Err(e) = run_v2::<f64>(&mut b, n)
        {
            println!("N={n} f64 v2 stopped: {e}");
        }
    }
    println!(
        "\n{:<20} {:>5} {:<4} {:>11} {:>10} {:<7} {:>9} {:>6}  note",
        "op", "N", "type", "median", "rate", "unit", "ceiling", "ratio"
    );
    for r in &b.rows {
        println!(
            "{:<20} {:>5} {:<4} {:>8.3} ms {:>10.1} {:<7} {:>9.1} {:>6.2}  {}",
            r.op,
            r.n,
            r.dtype,
            r.median_s * 1e3,
            r.rate,
            r.unit,
            r.ceiling,
            if r.ceiling > 0.0 {
                r.rate / r.ceiling
            } else {
                f64::NAN
            },
            r.note
        );
    }
    if let Ok(path) = std::env::var("ITLIN_BENCH_JSON") {
        let mut f = std::fs::File::create(&path)?;
        for r in &b.rows {
            let v = serde_json::json!({
                "op": r.op, "N": r.n, "dtype": r.dtype, "median_s": r.median_s, "rate": r.rate,
                "unit": r.unit, "ceiling": r.ceiling, "ratio": r.rate / r.ceiling, "note": r.note,
                "device": "cuda",
            });
            writeln!(f, "{v}")?;
        }
        println!("wrote {path}");
    }
    Ok(())
}
