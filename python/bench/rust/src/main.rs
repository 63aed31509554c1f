//! Times the crate's convenience calls that the Python binding wraps (`forward`, `jvp`,
//! `vjp`, `jacobian`, `ntk::empirical(Structured)`, `gauss_newton_step(Auto)`) on an MLP
//! 784-128-128-10 tanh, f32, with the same inputs as `bench_python.py`, and prints one JSON
//! line per op: `{"op", "N", "median_s", "reps"}`.
//!
//! Usage: `itlin-python-bench N REPS`.

use faer::Mat;
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
    f(); // warm-up
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
    // the inputs bench_python.py makes: x[i, j] = ((784 i + j) mod 97) / 97, y one-hot of i mod 10
    let x = Mat::<f32>::from_fn(n, 784, |i, j| ((i * 784 + j) % 97) as f32 / 97.0);
    let y = Mat::<f32>::from_fn(n, 10, |i, c| (i % 10 == c) as u8 as f32);
    let u = Mat::<f32>::from_fn(n, 10, |_, _| 1.0);
    let v = vec![1.0f32; theta.len()];
    time("forward", n, reps, || {
        drop(black_box(mlp.forward(&theta, x.as_ref())))
    });
    time("jvp", n, reps, || {
        drop(black_box(mlp.jvp(&theta, x.as_ref(), &v)))
    });
    time("vjp", n, reps, || {
        drop(black_box(mlp.vjp(&theta, x.as_ref(), u.as_ref())))
    });
    time("jacobian", n, reps.min(5), || {
        drop(black_box(mlp.jacobian(&theta, x.as_ref())))
    });
    time("ntk", n, reps.min(5), || {
        drop(black_box(itlin::ntk::empirical(
            &mlp,
            &theta,
            x.as_ref(),
            Method::Structured,
        )))
    });
    time("gn_step", n, reps.min(5), || {
        drop(black_box(gauss_newton_step(
            &mlp,
            &theta,
            x.as_ref(),
            y.as_ref(),
            Loss::Mse,
            1e-3,
            Form::Auto,
        )))
    });
    Ok(())
}
