//! Times the crate's convenience calls that the Python binding wraps (`forward`, `jvp`,
//! `vjp`, `jacobian`, `ntk::empirical(Structured)`, `gauss_newton_step(Auto)`) on an MLP
//! 784-128-128-10 tanh, f32, with the same inputs as `bench_python.py`, and prints one JSON
//! line per op: `{"op", "N", "median_s", "reps"}`.
//!
//! Usage: `itlin-python-bench N REPS`.

use faer::MatRef;
use itlin::ntk::Method;
use itlin::solve::{Form, Loss, gauss_newton_step};
use itlin::{Activation, Init, Mlp, Model};
use std::hint::black_box;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time(op: &str, n: usize, reps: usize, mut f: impl FnMut()) {
    // warm-up: at least 2 calls and 0.2 s (thread pools up, buffers faulted in)
    let t0 = Instant::now();
    let mut k = 0;
    while k < 2 || t0.elapsed().as_secs_f64() < 0.2 {
        f();
        k += 1;
    }
    let s: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    println!(
        "{{\"op\": \"{op}\", \"N\": {n}, \"median_s\": {:e}, \"reps\": {reps}}}",
        median(s)
    );
}

fn main() -> itlin::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (n, reps) = (
        args.first().copied().unwrap_or(256),
        args.get(1).copied().unwrap_or(7),
    );
    let mlp = Mlp::new(&[784, 128, 128, 10], Activation::Tanh)?;
    let theta: Vec<f32> = mlp.init(Init::Standard, 0);
    // the inputs bench_python.py makes, row-major as NumPy's (the binding views them in
    // place): x[i, j] = ((784 i + j) mod 97) / 97, y one-hot of i mod 10, u all ones
    let xs: Vec<f32> = (0..n * 784).map(|k| (k % 97) as f32 / 97.0).collect();
    let ys: Vec<f32> = (0..n * 10)
        .map(|k| ((k / 10) % 10 == k % 10) as u8 as f32)
        .collect();
    let us = vec![1.0f32; n * 10];
    let x = MatRef::from_row_major_slice(&xs, n, 784);
    let y = MatRef::from_row_major_slice(&ys, n, 10);
    let u = MatRef::from_row_major_slice(&us, n, 10);
    let v = vec![1.0f32; theta.len()];
    time("forward", n, reps, || {
        drop(black_box(mlp.forward(&theta, x)))
    });
    time("jvp", n, reps, || drop(black_box(mlp.jvp(&theta, x, &v))));
    time("vjp", n, reps, || drop(black_box(mlp.vjp(&theta, x, u))));
    time("jacobian", n, reps.min(5), || {
        drop(black_box(mlp.jacobian(&theta, x)))
    });
    time("ntk", n, reps.min(5), || {
        drop(black_box(itlin::ntk::empirical(
            &mlp,
            &theta,
            x,
            Method::Structured,
        )))
    });
    time("gn_step", n, reps.min(5), || {
        drop(black_box(gauss_newton_step(
            &mlp,
            &theta,
            x,
            y,
            Loss::Mse,
            1e-3,
            Form::Auto,
        )))
    });
    Ok(())
}
