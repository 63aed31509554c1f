//! Criterion benches of the NTK and the Gauss-Newton solvers on MLP 784-128-128-10 (tanh):
//! structured and explicit NTK, Cholesky of Θ + NλI, the whole dual GN step, a CG GN step and
//! the spectral step, at N = 256 and 1024, f32 and f64. Throughput is reported in flops of
//! the FLOP models of `itlin::bench::suite` (those of the JAX peer), so rates compare directly.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use faer::Mat;
use itlin::linalg::{add_diagonal, cholesky_in_place};
use itlin::ntk::{self, Method};
use itlin::solve::{Form, GaussNewtonStep, Loss};
use itlin::{Activation, Init, Mlp, Model, Real};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

const ARCH: [usize; 4] = [784, 128, 128, 10];

fn data<T: Real>(n: usize) -> (Mlp, Vec<T>, Mat<T>, Mat<T>) {
    let mlp = Mlp::new(&ARCH, Activation::Tanh).unwrap();
    let theta = mlp.init(Init::Standard, 0);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = Mat::from_fn(n, 784, |_, _| T::from_f64(rng.random::<f64>()));
    let y = Mat::from_fn(n, 10, |i, c| T::from_f64(f64::from(u8::from(i % 10 == c))));
    (mlp, theta, x, y)
}

fn structured_flops(n: usize) -> u64 {
    let (n, c) = (n as u64, 10u64);
    let m = n * c;
    2 * n * n * (784 + 128 + 128)
        + 2 * m * m * (128 + 128)
        + 2 * m * m * 3
        + 2 * m * (128 * 128 + 128 * 10)
}

fn bench_dtype<T: Real>(cr: &mut Criterion) {
    let mut g = cr.benchmark_group(format!("solvers_{}", T::NAME));
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for n in [256usize, 1024] {
        let (mlp, theta, x, y) = data::<T>(n);
        let m = n * 10;
        g.throughput(Throughput::Elements(structured_flops(n)));
        g.bench_function(BenchmarkId::new("ntk_structured", n), |b| {
            b.iter(|| mlp.ntk_lower(&theta, x.as_ref(), Method::Structured))
        });
        if n == 256 {
            let p = Model::<T>::n_params(&mlp) as u64;
            g.throughput(Throughput::Elements(2 * (m as u64).pow(2) * p));
            g.bench_function(BenchmarkId::new("ntk_explicit", n), |b| {
                b.iter(|| mlp.ntk_lower(&theta, x.as_ref(), Method::Explicit))
            });
        }
        let k = ntk::empirical(&mlp, &theta, x.as_ref(), Method::Structured);
        let shift = T::from_f64(1e-3 * (0..m).map(|i| k[(i, i)].to_f64()).sum::<f64>() / m as f64);
        g.throughput(Throughput::Elements((m as u64).pow(3) / 3));
        g.bench_function(BenchmarkId::new("cholesky", n), |b| {
            b.iter_batched_ref(
                || {
                    let mut a = k.clone();
                    add_diagonal(a.as_mut(), shift);
                    a
                },
                |a| cholesky_in_place(a.as_mut()).expect("SPD"),
                criterion::BatchSize::LargeInput,
            )
        });
        g.throughput(Throughput::Elements(
            structured_flops(n) + (m as u64).pow(3) / 3,
        ));
        let step = GaussNewtonStep::new(Loss::Mse).with_damping(1e-3);
        g.bench_function(BenchmarkId::new("gn_dual_step", n), |b| {
            let s = step.clone().with_form(Form::Dual);
            b.iter(|| s.solve(&mlp, &theta, x.as_ref(), y.as_ref()))
        });
        g.bench_function(BenchmarkId::new("gn_cg_step_20it", n), |b| {
            let s = step.clone().with_form(Form::Cg).with_cg_max_iterations(20);
            b.iter(|| s.solve(&mlp, &theta, x.as_ref(), y.as_ref()))
        });
        if n == 256 {
            g.bench_function(BenchmarkId::new("gn_spectral_step", n), |b| {
                let s = step.clone().with_form(Form::Spectral);
                b.iter(|| s.solve(&mlp, &theta, x.as_ref(), y.as_ref()))
            });
        }
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_dtype::<f32>(c);
    bench_dtype::<f64>(c);
}

criterion_group!(solvers, benches);
criterion_main!(solvers);
