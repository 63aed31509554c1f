//! How exact the CG form of the damped Gauss-Newton step is, against the direct forms.
//!
//! For the three small systems of the accuracy tests (N = 9, C = 4, λ = 1e-3, f64) and both
//! losses, solves the step with the primal and dual factorisations and with CG on the
//! explicit-`J` and Hessian-free paths, once with the defaults (backward-error stop,
//! `Preconditioner::Auto`) and once with the settings CG had before (relative residual 1e-10,
//! Jacobi always), and prints iterations, the final backward error and the largest relative
//! difference from the direct forms.
//!
//! `cargo run --release --example cg_accuracy`

use faer::Mat;
use itlin::solve::{Form, GaussNewtonStep, Loss, Preconditioner};
use itlin::{Activation, Init, Mlp};
use rand::{Rng, SeedableRng};

fn rel(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn main() {
    let nets: [(&[usize], Activation); 3] = [
        (&[7, 13, 4], Activation::Tanh),
        (&[5, 64, 4], Activation::Relu),
        (&[3, 8, 8, 8, 4], Activation::Tanh),
    ];
    println!("| net | loss | P | CG path | settings | iterations | backward error | vs direct |");
    println!("|---|---|---|---|---|---|---|---|");
    for (widths, act) in nets {
        let mlp = Mlp::new(widths, act).expect("valid widths");
        let theta: Vec<f64> = mlp.init(Init::Standard, 11);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        let n = 9;
        let x = Mat::from_fn(n, widths[0], |_, _| rng.random::<f64>() * 2.0 - 1.0);
        for loss in [Loss::Mse, Loss::CrossEntropy] {
            let c = *widths.last().expect("widths");
            let y = Mat::from_fn(n, c, |i, k| match loss {
                Loss::Mse => ((i * 3 + k) as f64).sin(),
                Loss::CrossEntropy => f64::from(u8::from(i % c == k)),
            });
            let base = GaussNewtonStep::new(loss).with_damping(1e-3);
            let solve = |s: &GaussNewtonStep| s.solve(&mlp, &theta, x.as_ref(), y.as_ref());
            let (primal, _) = solve(&base.clone().with_form(Form::Primal));
            let (dual, _) = solve(&base.clone().with_form(Form::Dual));
            for (path, budget) in [("explicit J", u64::MAX), ("Hessian-free", 0)] {
                let cg = base.clone().with_form(Form::Cg).with_memory_budget(budget);
                let old = cg
                    .clone()
                    .with_cg_tolerance(1e-10)
                    .with_cg_preconditioner(Preconditioner::Jacobi);
                for (name, s) in [("defaults", cg), ("rtol 1e-10, Jacobi", old)] {
                    let (d, rep) = solve(&s);
                    let out = rep.cg.expect("CG report");
                    println!(
                        "| {widths:?} {act:?} | {loss:?} | {} | {path} | {name} | {} | {:.1e} | {:.1e} |",
                        theta.len(),
                        out.iterations,
                        out.backward_error,
                        rel(&d, &dual).max(rel(&d, &primal))
                    );
                }
            }
        }
    }
}
