//! Criterion benches of the CPU kernels on MLP 784-128-128-10 tanh (the default
//! configuration of `itlin bench`), N = 256 and 1024, f32 and f64:
//!
//! - `jvec/{j_v,jt_u,jt_j_v}`: products with an explicit Jacobian; throughput = bytes of J
//!   (each op reads J once), compare with the read ceiling;
//! - `jacobian/{write,mlp}`: Jacobian assembly from the backprop signals into an existing
//!   buffer (`Signals::write_jacobian`) and the whole `Mlp::jacobian` (signals, allocation
//!   and page faults included; N = 256 only); throughput = bytes of J written, compare with
//!   the write ceiling;
//! - `model/{forward,jvp,vjp}`: throughput in *elements* = floating-point operations of the
//!   dense layers (`2·N·Σ fan_in·fan_out` for forward, ×2 for JVP and VJP), so criterion's
//!   `elem/s` reads as flop/s; compare with the GEMM ceiling.
//!
//! The machine ceilings (`itlin::bench::ceilings`) are measured at the start and at the end
//! of the same run and printed. Criterion prints GiB/s (2³⁰ bytes); the ceilings are in GB/s
//! (10⁹ bytes). `ITLIN_BENCH_N=256` and `ITLIN_BENCH_DTYPE=f32` restrict the cases (the
//! criterion filter argument only skips the timing, not the set-up).
//! Run: `cargo bench --bench kernels` (a few minutes; 1.25× the size of the
//! f64 N=1024 Jacobian (9.7 GB) plus 1 GiB must be free, or that case is skipped with a
//! message).

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group};
use faer::Mat;
use itlin::bench::{copy_bandwidth, gemm_gflops, read_bandwidth, write_bandwidth};
use itlin::kernels::cpu::{j_v, jt_j_v, jt_u};
use itlin::{Activation, Init, Jacobian, Mlp, Model, Real};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::time::Duration;

const WIDTHS: [usize; 4] = [784, 128, 128, 10];
const NS: [usize; 2] = [256, 1024];

fn rand_vec<T: Real>(rng: &mut ChaCha8Rng, n: usize) -> Vec<T> {
    (0..n)
        .map(|_| T::from_f64(rng.random::<f64>() * 2.0 - 1.0))
        .collect()
}

/// Bytes of memory the OS reports as available (Linux), if known.
fn mem_available() -> Option<usize> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn print_ceilings(when: &str) {
    let gib = 1usize << 30;
    eprintln!(
        "== machine ceilings, {when} ({} rayon threads)",
        rayon::current_num_threads()
    );
    for c in [
        read_bandwidth(gib),
        write_bandwidth(gib),
        copy_bandwidth(gib),
        gemm_gflops::<f32>(2048),
        gemm_gflops::<f64>(2048),
    ] {
        eprintln!("ceiling {c}");
    }
}

fn bench_type<T: Real>(c: &mut Criterion) {
    let mlp = Mlp::new(&WIDTHS, Activation::Tanh).expect("valid MLP");
    let theta: Vec<T> = mlp.init(Init::Standard, 0);
    let p = <Mlp as Model<T>>::n_params(&mlp);
    let layer_flops: usize = WIDTHS.windows(2).map(|w| w[0] * w[1]).sum();
    for n in selected_ns() {
        let mut rng = ChaCha8Rng::seed_from_u64(n as u64);
        let x = Mat::<T>::from_fn(n, WIDTHS[0], |_, _| T::from_f64(rng.random::<f64>()));
        let m = n * WIDTHS[3];
        let tag = format!("{}/N={n}", T::NAME);

        let mut g = c.benchmark_group("model");
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        let v: Vec<T> = rand_vec(&mut rng, p);
        let u = Mat::<T>::from_fn(n, WIDTHS[3], |_, _| T::from_f64(rng.random::<f64>()));
        let fwd = 2 * n * layer_flops;
        g.throughput(Throughput::Elements(fwd as u64));
        g.bench_function(BenchmarkId::new("forward", &tag), |b| {
            b.iter(|| black_box(mlp.forward(&theta, x.as_ref())))
        });
        g.throughput(Throughput::Elements(2 * fwd as u64));
        g.bench_function(BenchmarkId::new("jvp", &tag), |b| {
            b.iter(|| black_box(mlp.jvp(&theta, x.as_ref(), &v)))
        });
        g.bench_function(BenchmarkId::new("vjp", &tag), |b| {
            b.iter(|| black_box(mlp.vjp(&theta, x.as_ref(), u.as_ref())))
        });
        g.finish();

        let bytes = m * p * size_of::<T>();
        if let Some(avail) = mem_available()
            && avail < bytes + bytes / 4 + (1 << 30)
        {
            eprintln!(
                "skipping jvec and jacobian for {tag}: J needs {:.1} GB, {:.1} GB available",
                bytes as f64 * 1e-9,
                avail as f64 * 1e-9
            );
            continue;
        }
        let mut g = c.benchmark_group("jvec");
        g.sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .throughput(Throughput::Bytes(bytes as u64));
        let signals = mlp.signals(&theta, x.as_ref());
        let mut j = Jacobian::<T>::zeros(m, p);
        signals.write_jacobian(j.as_mut_slice());
        let w: Vec<T> = rand_vec(&mut rng, m);
        let mut out_m = vec![T::zero_impl(); m];
        let mut out_p = vec![T::zero_impl(); p];
        g.bench_function(BenchmarkId::new("j_v", &tag), |b| {
            b.iter(|| j_v(j.as_slice(), m, p, &v, &mut out_m))
        });
        g.bench_function(BenchmarkId::new("jt_u", &tag), |b| {
            b.iter(|| jt_u(j.as_slice(), m, p, &w, &mut out_p))
        });
        g.bench_function(BenchmarkId::new("jt_j_v", &tag), |b| {
            b.iter(|| jt_j_v(j.as_slice(), m, p, &v, &mut out_p))
        });
        g.finish();

        let mut g = c.benchmark_group("jacobian");
        g.sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .throughput(Throughput::Bytes(bytes as u64));
        g.bench_function(BenchmarkId::new("write", &tag), |b| {
            b.iter(|| signals.write_jacobian(j.as_mut_slice()))
        });
        drop(j);
        // The whole call, including the fresh (N·C)×P allocation and its first-touch page
        // faults; several seconds per call at N = 1024, so only at N = 256.
        if n <= 256 {
            g.bench_function(BenchmarkId::new("mlp", &tag), |b| {
                b.iter(|| black_box(mlp.jacobian(&theta, x.as_ref())))
            });
        }
        g.finish();
    }
}

/// `N` values to run: `ITLIN_BENCH_N` (comma-separated) or both of [`NS`].
fn selected_ns() -> Vec<usize> {
    std::env::var("ITLIN_BENCH_N")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| NS.to_vec())
}

/// Whether to run `dtype`: `ITLIN_BENCH_DTYPE` (`f32` or `f64`) or both.
fn selected(dtype: &str) -> bool {
    std::env::var("ITLIN_BENCH_DTYPE").map_or(true, |d| d == dtype)
}

fn benches(c: &mut Criterion) {
    print_ceilings("before the benches");
    if selected("f32") {
        bench_type::<f32>(c);
    }
    if selected("f64") {
        bench_type::<f64>(c);
    }
    // Again at the end: on a shared machine the ceilings drift, and the spread says how much.
    print_ceilings("after the benches");
}

criterion_group!(kernels, benches);

fn main() {
    kernels();
    Criterion::default().configure_from_args().final_summary();
}
