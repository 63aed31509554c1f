//! Embed damped Gauss-Newton steps in your own training loop.
//!
//! A teacher-student regression: a small MLP is fitted by hand-rolled Levenberg-Marquardt
//! iterations built on `itlin::solve::gauss_newton_step` (one call per iteration: the
//! structured NTK, one Cholesky and one VJP), with the damping raised after a rejected step
//! and lowered after an accepted one.
//!
//! Run: `cargo run --release --example gn_step_loop`

use faer::Mat;
use itlin::solve::{Form, Loss, gauss_newton_step, loss_value};
use itlin::{Activation, Init, Mlp, Model};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn main() -> itlin::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (n, d) = (200, 5);
    let x = Mat::from_fn(n, d, |_, _| rng.random::<f64>() * 2.0 - 1.0);
    let teacher = Mlp::new(&[d, 8, 2], Activation::Tanh)?;
    let theta_t = teacher.init::<f64>(Init::Standard, 99);
    let y = teacher.forward(&theta_t, x.as_ref());

    let student = Mlp::new(&[d, 32, 2], Activation::Tanh)?;
    let mut theta = student.init::<f64>(Init::Standard, 0);
    let mut lambda = 1e-2;
    let loss = |theta: &[f64]| {
        loss_value(
            Loss::Mse,
            student.forward(theta, x.as_ref()).as_ref(),
            y.as_ref(),
        )
    };
    let mut current = loss(&theta);
    println!("{:>4} {:>12} {:>10} {:>8}", "iter", "MSE", "λ", "step");
    println!("{:>4} {current:>12.3e} {lambda:>10.1e} {:>8}", 0, "-");
    for it in 1..=25 {
        // (JᵀJ + NλI) δ = −Jᵀr, in the dual (NTK) form because N·C = 400 < P
        let delta = gauss_newton_step(
            &student,
            &theta,
            x.as_ref(),
            y.as_ref(),
            Loss::Mse,
            lambda,
            Form::Auto,
        );
        let trial: Vec<f64> = theta.iter().zip(&delta).map(|(t, d)| t + d).collect();
        let new = loss(&trial);
        let accepted = new < current;
        if accepted {
            theta = trial;
            current = new;
            lambda = (lambda / 3.0).max(1e-9);
        } else {
            lambda *= 10.0;
        }
        println!(
            "{it:>4} {current:>12.3e} {lambda:>10.1e} {:>8}",
            if accepted { "accepted" } else { "rejected" }
        );
    }
    Ok(())
}
