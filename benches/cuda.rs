//! GPU benchmark (feature `cuda`): the MLP 784-128-128-10 (tanh) at N = 1024 and 8192, in f32
//! and (up to N = 4096, where `J` fits) f64.
//!
//! One pass per (N, dtype); every row is timed with CUDA events around the call (median of
//! several after a warm-up; module compilation and handle creation happen before). In order:
//! 1. ceilings, measured on the first N of each dtype: `copy_d2d` (device-to-device copy of a
//!    real Jacobian, bytes read + written: the bandwidth ceiling), `write_memset` and
//!    `write_fill` (write only: the driver's memset and the crate's 16-byte streaming-store
//!    fill; the better of the two is the write-only ceiling quoted by the Jacobian rows),
//!    `cublas_gemm` (8192 × 8192 × 4096 from Jacobian data: the GEMM ceiling);
//! 2. `forward`, `jvp`, `vjp`, `signals` (batched backprop);
//! 3. Jacobian assembly: `jacobian_write` (the default, `write_jacobian`), `jacobian`
//!    (signals and write), then the kept alternatives `jacobian_write_v1` (one launch per
//!    layer, the fallback above 8 layers), `jacobian_write_v2` (one flat launch, the fallback
//!    when a `fan_in` is not a multiple of the packet width) and the block-shape sweep of the
//!    default kernels `jacobian_write_v4_{w2,w4,w8,w16,w32,all}`; each is written once more
//!    into a NaN-poisoned `J` and checked against the default through `J v` (all write the
//!    same values bit for bit: `max relative difference` must be 0, else `MISMATCH`).
//!    `jacobian_write_v4_stripes` and `jacobian_write_v4_gaps` time the default's two kernels
//!    alone (each leaves part of `J` unwritten, so neither is checked);
//! 4. `j_v`, `jt_u`, `jt_j_v`, each followed by cuBLAS gemv on the same `J`
//!    (`cublas_gemv_*`) and checked against it (rounding only);
//! 5. `ntk_structured` (cuBLAS Grams + the fused assembly) and the Gram GEMMs alone
//!    (`ntk_cublas_grams`), `cholesky` (cuSOLVER potrf + potrs of `Θ + NλI`), `gn_dual_step`
//!    against the sum of its parts (Grams + Cholesky + one VJP);
//! 6. `col_sum` (the bias gradient's column sum, N × 128) and `col_sum_one_stage` (the kernel
//!    `col_sum` uses for few rows), checked against it.
//!
//! A failing row other than a default's prints `FAILED` and the pass goes on; an error
//! elsewhere prints `... stopped` and the next section runs. The summary table comes last.
//!
//! `cargo bench --features cuda --bench cuda [-- --quick] [-- --n 1024,8192]`; with
//! `ITLIN_BENCH_JSON=path` also one JSON object per row. Without a GPU it prints why and exits 0.
use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaSlice, CudaView};
use itlin::kernels::cuda::{
    CudaBackend, CudaReal, DeviceSignals, DualStep, cudarc, mlp as dmlp, ntk as dntk, ops,
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
    /// Device-to-device copy bandwidth (GB read + written / s), measured once.
    copy_gbs: f64,
    /// Write-only ceiling: the better of `cuMemsetD8` and the `fill` kernel (GB written / s).
    write_gbs: f64,
    /// cuBLAS GEMM rate per dtype (f32, f64), GFLOP/s.
    gemm_gflops: [f64; 2],
    /// Whether the ceilings of each dtype (f32, f64) have been measured.
    ceilings_done: [bool; 2],
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

    /// Pushes the row of a non-default variant from its timing result (its note made from the
    /// median seconds); a failure prints one `FAILED` line and the benchmark goes on.
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
        note: impl FnOnce(f64) -> String,
    ) -> Option<f64> {
        match timed {
            Ok(t) => {
                self.push(op, n, dtype, t, work, unit, ceiling, note(t));
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

/// The inputs of one (N, dtype) pass.
struct Pass<T: CudaReal> {
    mlp: Mlp,
    n: usize,
    /// Rows of `J`: `N · C`.
    m: usize,
    /// Parameters: columns of `J`.
    p: usize,
    dt: &'static str,
    /// Bytes of `J`.
    j_bytes: f64,
    /// Flops of one forward pass.
    flops_fwd: f64,
    td: CudaSlice<T>,
    xd: CudaSlice<T>,
    /// Random vector of length `P`.
    vd: CudaSlice<T>,
    /// Random vector of length `N · C`.
    ud: CudaSlice<T>,
    /// Random targets, `N × C`.
    yd: CudaSlice<T>,
}

impl<T: CudaReal> Pass<T> {
    fn gemm(&self, b: &Bench) -> f64 {
        b.gemm_gflops[dtype_index::<T>()]
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

/// Largest `|a_i − b_i|` over the largest `|a_i|` (0 when equal; a NaN is an infinite
/// difference).
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

/// Prints the check of `what` against its reference: `max relative difference`, and
/// `MISMATCH` when it exceeds `tol` (`0.0`: must be exact); `FAILED` if the check itself
/// could not run.
fn print_check(what: &str, d: Res<f64>, tol: f64) {
    match d {
        Ok(d) => println!(
            "{what}: max relative difference {d:.2e}{}",
            if d <= tol { "" } else { "  MISMATCH" }
        ),
        Err(e) => println!("{what}: check FAILED: {e}"),
    }
}

/// One (N, dtype) pass (see the module documentation for the order of the rows).
fn run<T: CudaReal>(b: &mut Bench, n: usize) -> Res<()> {
    let mlp = Mlp::new(&[784, 128, 128, 10], Activation::Tanh)?;
    let p = <Mlp as Model<T>>::n_params(&mlp);
    let m = n * <Mlp as Model<T>>::n_outputs(&mlp);
    let dt = T::NAME;
    b.be.synchronize()?;
    let (free, _) = b.be.mem_info()?;
    let j_bytes = (m * p * std::mem::size_of::<T>()) as f64;
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
    let flops_fwd = 2.0
        * n as f64
        * mlp
            .layers()
            .iter()
            .map(|l| (l.fan_in * l.fan_out) as f64)
            .sum::<f64>();
    let ps = Pass {
        td: b.be.upload(&theta)?,
        xd: b.be.upload(&rand_host::<T>(&mut rng, n * 784))?,
        vd: b.be.upload(&rand_host::<T>(&mut rng, p))?,
        ud: b.be.upload(&rand_host::<T>(&mut rng, m))?,
        yd: b.be.upload(&rand_host::<T>(&mut rng, m))?,
        mlp,
        n,
        m,
        p,
        dt,
        j_bytes,
        flops_fwd,
    };
    let stopped = |what: &str, e: Box<dyn Error>| println!("N={n} {dt} {what} stopped: {e}");
    let sig = dmlp::signals(&b.be, &ps.mlp, &ps.td, &ps.xd, n)?;
    {
        // J, written by the default kernels (the data of the ceilings and the J-vector rows).
        let mut j = b.be.zeros::<T>(m * p)?;
        dmlp::write_jacobian(&b.be, &ps.mlp, &sig, &mut j)?;
        if !b.ceilings_done[dtype_index::<T>()] {
            b.ceilings_done[dtype_index::<T>()] = true;
            if let Err(e) = ceilings::<T>(b, &j) {
                stopped("ceilings", e);
            }
        }
        let t_sig = model_rows(b, &ps).map_err(|e| stopped("forward/jvp/vjp/signals", e));
        if let Err(e) = jacobian_rows(b, &ps, &sig, t_sig.ok(), &mut j) {
            stopped("Jacobian assembly", e);
        }
        // The variants and the checks overwrote J: the default's values again.
        dmlp::write_jacobian(&b.be, &ps.mlp, &sig, &mut j)?;
        if let Err(e) = jvec_rows(b, &ps, &j) {
            stopped("J-vector products", e);
        }
    }
    if let Err(e) = ntk_rows(b, &ps, &sig) {
        stopped("NTK / GN", e);
    }
    drop(sig);
    if let Err(e) = col_sum_rows(b, &ps) {
        stopped("col_sum", e);
    }
    Ok(())
}

/// `forward`, `jvp`, `vjp` and `signals`; returns the seconds of `signals`.
fn model_rows<T: CudaReal>(b: &mut Bench, ps: &Pass<T>) -> Res<f64> {
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

/// A Jacobian writer other than the default.
enum Writer {
    V1,
    V2,
    V4(ops::JacobianV4Opts),
}

impl Writer {
    fn write<T: CudaReal>(
        &self,
        be: &CudaBackend,
        mlp: &Mlp,
        sig: &DeviceSignals<T>,
        j: &mut CudaSlice<T>,
    ) -> Res<()> {
        match self {
            Writer::V1 => dmlp::write_jacobian_v1(be, mlp, sig, j)?,
            Writer::V2 => dmlp::write_jacobian_v2(be, mlp, sig, j)?,
            Writer::V4(o) => dmlp::write_jacobian_v4(be, mlp, sig, j, *o)?,
        }
        Ok(())
    }
}

/// `J v` of the Jacobian that `write` leaves in `j` after `j` was filled with NaN.
fn poisoned_jv<T: CudaReal>(
    b: &Bench,
    ps: &Pass<T>,
    j: &mut CudaSlice<T>,
    write: impl FnOnce(&mut CudaSlice<T>) -> Res<()>,
) -> Res<Vec<T>> {
    ops::fill(&b.be, j, T::from_f64(f64::NAN))?;
    write(j)?;
    let mut y = b.be.zeros::<T>(ps.m)?;
    ops::j_v(&b.be, j, ps.m, ps.p, &ps.vd, &mut y)?;
    Ok(b.be.download(&y)?)
}

/// `jacobian_write` (the default), `jacobian` (signals + write), the kept alternatives and
/// the v4 block-shape sweep, each checked against the default through `J v`.
fn jacobian_rows<T: CudaReal>(
    b: &mut Bench,
    ps: &Pass<T>,
    sig: &DeviceSignals<T>,
    t_sig: Option<f64>,
    j: &mut CudaSlice<T>,
) -> Res<()> {
    let (mlp, n, m, p, dt, jb) = (&ps.mlp, ps.n, ps.m, ps.p, ps.dt, ps.j_bytes);
    let (cb, wc) = (b.copy_gbs, b.write_gbs);
    let of_write = move |t: f64| {
        if wc > 0.0 {
            format!(
                "{:.2} of the write-only ceiling {wc:.0} GB/s",
                jb / t / 1e9 / wc
            )
        } else {
            "no write-only ceiling measured".to_string()
        }
    };
    let dims: Vec<(usize, usize)> = mlp.layers().iter().map(|l| (l.fan_in, l.fan_out)).collect();
    let v4_applies = ops::jacobian_v4_applies::<T>(m, &dims);
    let t_def = b.time(
        0.3,
        || Ok(()),
        || Ok(dmlp::write_jacobian(&b.be, mlp, sig, &mut *j)?),
    )?;
    b.push(
        "jacobian_write",
        n,
        dt,
        t_def,
        jb,
        "GB/s",
        cb,
        format!(
            "J {m}x{p}, {}; {}",
            if v4_applies {
                "v4 (weight stripes + gaps)"
            } else {
                "v4 does not apply: v2"
            },
            of_write(t_def)
        ),
    );
    if let Some(t_sig) = t_sig {
        b.push(
            "jacobian",
            n,
            dt,
            t_def + t_sig,
            jb,
            "GB/s",
            cb,
            "signals + write",
        );
    }
    // The reference: the default's J v, from a NaN-poisoned J (a missed element shows as NaN).
    let y_ref = poisoned_jv(b, ps, j, |j| Ok(dmlp::write_jacobian(&b.be, mlp, sig, j)?))?;
    if y_ref.iter().any(|y| !y.to_f64().is_finite()) {
        println!("jacobian_write: J v not finite after writing a NaN-poisoned J  MISMATCH");
    }

    let o4 = |rows: usize, kernels: ops::V4Kernels| {
        Writer::V4(ops::JacobianV4Opts {
            weight_rows_per_block: rows,
            min_rows_at_once: 0,
            kernels,
        })
    };
    let both = ops::V4Kernels::Both;
    let variants = [
        (
            "jacobian_write_v1",
            Writer::V1,
            "one launch per layer (the fallback above 8 layers)",
        ),
        (
            "jacobian_write_v2",
            Writer::V2,
            "one flat launch, 16-byte streaming stores (the fallback for other fan_in)",
        ),
        (
            "jacobian_write_v4_w2",
            o4(2, both),
            "2 weight rows per block",
        ),
        (
            "jacobian_write_v4_w4",
            o4(4, both),
            "4 weight rows per block",
        ),
        (
            "jacobian_write_v4_w8",
            o4(8, both),
            "8 weight rows per block",
        ),
        (
            "jacobian_write_v4_w16",
            o4(16, both),
            "16 weight rows per block",
        ),
        (
            "jacobian_write_v4_w32",
            o4(32, both),
            "32 weight rows per block",
        ),
        (
            "jacobian_write_v4_all",
            o4(1 << 20, both),
            "all weight rows per block",
        ),
        (
            "jacobian_write_v4_stripes",
            o4(0, ops::V4Kernels::StripesOnly),
            "the default's stripes kernels alone",
        ),
        (
            "jacobian_write_v4_gaps",
            o4(0, ops::V4Kernels::GapsOnly),
            "the default's gaps kernel alone",
        ),
    ];
    for (name, w, what) in variants {
        let fell_back = matches!(w, Writer::V4(_)) && !v4_applies;
        let timed = b.time(0.3, || Ok(()), || w.write(&b.be, mlp, sig, &mut *j));
        let note = |t: f64| {
            format!(
                "{what}{}; default/this = {:.2}; {}",
                if fell_back { " (fell back to v2)" } else { "" },
                t_def / t,
                of_write(t)
            )
        };
        if b.report(name, n, dt, timed, jb, "GB/s", cb, note).is_none() {
            continue;
        }
        // A kernel timed alone leaves part of J unwritten: nothing to check.
        if matches!(&w, Writer::V4(o) if o.kernels != both) {
            continue;
        }
        let d = poisoned_jv(b, ps, j, |j| w.write(&b.be, mlp, sig, j)).map(|y| max_rel(&y_ref, &y));
        print_check(&format!("jacobian {name} vs jacobian_write (J v)"), d, 0.0);
    }
    Ok(())
}

/// `j_v`, `jt_u` and `jt_j_v` on the default's `J`, each followed by cuBLAS gemv on the same
/// `J` and checked against it.
fn jvec_rows<T: CudaReal>(b: &mut Bench, ps: &Pass<T>, j: &CudaSlice<T>) -> Res<()> {
    let (n, m, p, dt, jb, cb) = (ps.n, ps.m, ps.p, ps.dt, ps.j_bytes, b.copy_gbs);
    let (vd, ud) = (&ps.vd, &ps.ud);
    let be = &b.be;
    let (mut out_m, mut ref_m) = (be.zeros::<T>(m)?, be.zeros::<T>(m)?);
    let (mut out_p, mut ref_p) = (be.zeros::<T>(p)?, be.zeros::<T>(p)?);
    let check = |b: &Bench, what: &str, got: &CudaSlice<T>, want: &CudaSlice<T>| {
        let d = (|| -> Res<f64> { Ok(max_rel(&b.be.download(want)?, &b.be.download(got)?)) })();
        print_check(what, d, T::TOLERANCE);
    };

    let t = b.time(
        0.3,
        || Ok(()),
        || Ok(ops::j_v(&b.be, j, m, p, vd, &mut out_m)?),
    )?;
    b.push("j_v", n, dt, t, jb, "GB/s", cb, "");
    let t = b.time(
        0.3,
        || Ok(()),
        || Ok(ops::gemv_rm(&b.be, false, j, m, p, vd, &mut ref_m)?),
    )?;
    b.push("cublas_gemv_j_v", n, dt, t, jb, "GB/s", cb, "baseline");
    check(b, "j_v vs cuBLAS gemv", &out_m, &ref_m);

    let t = b.time(
        0.3,
        || Ok(()),
        || Ok(ops::jt_u(&b.be, j, m, p, ud, &mut out_p)?),
    )?;
    b.push(
        "jt_u",
        n,
        dt,
        t,
        jb,
        "GB/s",
        cb,
        "deterministic: row chunks summed in a fixed order",
    );
    let t = b.time(
        0.3,
        || Ok(()),
        || Ok(ops::gemv_rm(&b.be, true, j, m, p, ud, &mut ref_p)?),
    )?;
    b.push("cublas_gemv_jt_u", n, dt, t, jb, "GB/s", cb, "baseline");
    check(b, "jt_u vs cuBLAS gemv", &out_p, &ref_p);

    let t = b.time(
        0.3,
        || Ok(()),
        || Ok(ops::jt_j_v(&b.be, j, m, p, vd, &mut out_p)?),
    )?;
    b.push("jt_j_v", n, dt, t, 2.0 * jb, "GB/s", cb, "2 passes over J");
    let t = b.time(
        0.3,
        || Ok(()),
        || {
            ops::gemv_rm(&b.be, false, j, m, p, vd, &mut ref_m)?;
            Ok(ops::gemv_rm(&b.be, true, j, m, p, &ref_m, &mut ref_p)?)
        },
    )?;
    b.push(
        "cublas_gemv_jt_j_v",
        n,
        dt,
        t,
        2.0 * jb,
        "GB/s",
        cb,
        "baseline, 2 gemv",
    );
    check(b, "jt_j_v vs cuBLAS gemv", &out_p, &ref_p);
    Ok(())
}

/// `ntk_structured` against its cuBLAS Grams alone, `cholesky`, and `gn_dual_step` against
/// the sum of its parts (Grams + Cholesky + one VJP). No `J`.
fn ntk_rows<T: CudaReal>(b: &mut Bench, ps: &Pass<T>, sig: &DeviceSignals<T>) -> Res<()> {
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
                    if l + 1 < layers.len() {
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
                    &mut work.borrow_mut(),
                    m,
                    &mut rhs.borrow_mut(),
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
                dmlp::vjp_with_trace(&b.be, mlp, td, &tr, &ps.ud)?;
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

/// The bias gradient's column sum of the widest layer (N × 128): `col_sum` (two stages above
/// `ops::COL_SUM_ONE_STAGE_ROWS` rows) and `col_sum_one_stage`, checked against it.
fn col_sum_rows<T: CudaReal>(b: &mut Bench, ps: &Pass<T>) -> Res<()> {
    let (n, dt, cb) = (ps.n, ps.dt, b.copy_gbs);
    let cols = 128;
    let mut rng = ChaCha8Rng::seed_from_u64(n as u64 + 1);
    let xs = b.be.upload(&rand_host::<T>(&mut rng, n * cols))?;
    let (mut o_def, mut o_one) = (b.be.zeros::<T>(cols)?, b.be.zeros::<T>(cols)?);
    let bytes = (n * cols * std::mem::size_of::<T>()) as f64;
    let t_def = b.time(
        0.1,
        || Ok(()),
        || {
            Ok(ops::col_sum(
                &b.be,
                &xs,
                n,
                cols,
                T::one_impl(),
                &mut o_def,
            )?)
        },
    )?;
    let stages = if n > ops::COL_SUM_ONE_STAGE_ROWS {
        "two stages"
    } else {
        "one stage"
    };
    b.push(
        "col_sum",
        n,
        dt,
        t_def,
        bytes,
        "GB/s",
        cb,
        format!("N x {cols}, {stages}"),
    );
    let timed = b.time(
        0.1,
        || Ok(()),
        || {
            Ok(ops::col_sum_one_stage(
                &b.be,
                &xs,
                n,
                cols,
                T::one_impl(),
                &mut o_one,
            )?)
        },
    );
    let note = |t: f64| {
        format!(
            "N x {cols}, one block per 32 columns; default/this = {:.2}",
            t_def / t
        )
    };
    if b.report("col_sum_one_stage", n, dt, timed, bytes, "GB/s", cb, note)
        .is_some()
    {
        let d =
            (|| -> Res<f64> { Ok(max_rel(&b.be.download(&o_def)?, &b.be.download(&o_one)?)) })();
        print_check("col_sum_one_stage vs col_sum", d, T::TOLERANCE);
    }
    Ok(())
}

/// Copy bandwidth (D2D memcpy of a real Jacobian, bytes read + written), the write-only
/// ceilings (memset, fill kernel) and cuBLAS GEMM rate (8192 × 8192 × 4096 with operands
/// taken from the Jacobian).
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
        ceilings_done: [false; 2],
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
