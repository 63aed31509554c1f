//! Times the network ops of a small CNN (forward, JVP, VJP, explicit Jacobian, structured
//! NTK, the dual Gauss-Newton step) on random 1×28×28 inputs, in f32.
//!
//! ```text
//! cargo run --release --example cnn_ops -- [N] [SPEC]
//! ```

use faer::Mat;
use itlin::ntk::Method;
use itlin::{Init, LayerNtk, Model, Network};
use std::time::Instant;

fn time<R>(reps: usize, mut f: impl FnMut() -> R) -> f64 {
    let _ = f();
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        std::hint::black_box(f());
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn main() -> itlin::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(128, |a| a.parse().expect("N"));
    let spec = args.next().unwrap_or_else(|| {
        "conv(16,3,pad=1),relu,avgpool(2),conv(32,3,pad=1),relu,avgpool(2),dense(10)".into()
    });
    let only = args.next();
    let want = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let net = Network::from_spec((1, 28, 28), &spec)?;
    let theta: Vec<f32> = net.init(Init::Standard, 0);
    let p = theta.len();
    let c = Model::<f32>::n_outputs(&net);
    let x = Mat::<f32>::from_fn(n, 784, |i, j| (((i * 784 + j) as f32) * 0.137).sin());
    let v: Vec<f32> = (0..p).map(|i| ((i as f32) * 0.71).cos()).collect();
    let u = Mat::<f32>::from_fn(n, c, |i, k| ((i + 3 * k) as f32 * 0.3).sin());
    println!(
        "{spec} on 1×28×28, N = {n}, P = {p}, f32, {} threads",
        rayon::current_num_threads()
    );
    println!("plan: {:?}", net.ntk_plan(n, LayerNtk::Auto));
    let reps = 5;
    let ms = |s: f64| s * 1e3;
    if want("forward") {
        println!(
            "forward      {:8.2} ms",
            ms(time(reps, || net.forward(&theta, x.as_ref())))
        );
    }
    if want("jvp") {
        println!(
            "jvp          {:8.2} ms",
            ms(time(reps, || net.jvp(&theta, x.as_ref(), &v)))
        );
    }
    if want("vjp") {
        println!(
            "vjp          {:8.2} ms",
            ms(time(reps, || net.vjp(&theta, x.as_ref(), u.as_ref())))
        );
    }
    if want("jacobian") {
        println!(
            "jacobian     {:8.2} ms",
            ms(time(reps, || net.jacobian(&theta, x.as_ref())))
        );
    }
    if want("jacobian_into") {
        let mut j = itlin::Jacobian::zeros(0, 0);
        println!(
            "jacobian_into (reused buffer) {:8.2} ms",
            ms(time(reps, || net.jacobian_into(&theta, x.as_ref(), &mut j)))
        );
    }
    if want("ntk") {
        println!(
            "ntk struct.  {:8.2} ms",
            ms(time(reps, || net.ntk_lower(
                &theta,
                x.as_ref(),
                Method::Structured
            )))
        );
    }
    if want("explicit") {
        println!(
            "ntk explicit {:8.2} ms",
            ms(time(2, || net.ntk_lower(
                &theta,
                x.as_ref(),
                Method::Explicit
            )))
        );
    }
    if want("gn") {
        // the whole dual damped Gauss-Newton step for MSE: structured Θ, Cholesky of
        // Θ + NλI, one VJP (the JAX peer's `gn_dual_step_total`)
        let y = Mat::<f32>::from_fn(n, c, |i, k| ((i * 7 + k) as f32 * 0.19).cos());
        let gn = itlin::solve::GaussNewtonStep::new(itlin::solve::Loss::Mse)
            .with_damping(1e-3)
            .with_form(itlin::solve::Form::Dual);
        println!(
            "gn step      {:8.2} ms",
            ms(time(reps, || gn.solve(
                &net,
                &theta,
                x.as_ref(),
                y.as_ref()
            )))
        );
    }
    Ok(())
}
