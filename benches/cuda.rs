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
    gemm_gflops: [f64; 2],
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
    b.push("vjp", n, dt, t, 3.0 * flops_fwd, "GFLOP/s", gemm, "");

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
    dmlp::write_jacobian(&b.be, &mlp, &sig, &mut j)?;
    let t = b.time(
        0.3,
        || Ok(()),
        || {
            dmlp::write_jacobian(&b.be, &mlp, &sig, &mut j)?;
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
        || Ok(ops::jt_u(&b.be, &j, m, p, &ud, &mut out_p)?),
    )?;
    b.push("jt_u", n, dt, t, j_bytes, "GB/s", cb, "");
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
            dntk::ntk_structured(&b.be, &mlp, &td, &xd, n)?;
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
    let mut k = dntk::ntk_structured(&b.be, &mlp, &td, &xd, n)?;
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
        || match dntk::gn_dual_step(&b.be, &mlp, &td, &xd, &yd, n, lambda)? {
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
            "vs cuBLAS grams + cuSOLVER + vjp ({:.3} ms): {:.2}x",
            parts * 1e3,
            t_gn / parts
        ),
    );
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
        gemm_gflops: [0.0; 2],
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
