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
//!    (signals and write), then the kept alternatives `jacobian_write_per_layer` (one launch per
//!    layer, the fallback above 8 layers), `jacobian_write_flat` (one flat launch, the fallback
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

mod ceilings;
mod col_sum;
mod harness;
mod jacobian;
mod jvec;
mod model;
mod ntk;

use ceilings::ceilings;
use col_sum::col_sum_rows;
use harness::*;
use itlin::kernels::cuda::{CudaBackend, CudaReal, mlp as dmlp};
use itlin::{Activation, Init, Mlp, Model};
use jacobian::jacobian_rows;
use jvec::jvec_rows;
use model::model_rows;
use ntk::ntk_rows;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::error::Error;
use std::io::Write;

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
