//! The damped Gauss-Newton step at large `N·C`: the matrix-free dual CG step with a Nyström
//! (or pivoted-Cholesky) preconditioner against the dense dual step, on the embedded MNIST
//! digits with an MLP at its initialisation.
//!
//! ```text
//! cargo run --release --example gn_large_n -- [N] [options]
//!   N            training rows (default 1000; at most 10000, train and test sets together)
//!   rank=M       preconditioner rank (default 1000)
//!   pre=KIND     nystrom (default) or pivchol
//!   lambda=L     damping λ (default 1e-3)
//!   loss=mse|ce  loss (default mse, one-hot targets)
//!   arch=a,b,c   widths (default 784,256,10)
//!   dense        also solve the dense dual step and compare δ
//!   plain        also solve the dual by unpreconditioned CG (iterations)
//!   limit=K      CG iteration limit (default 2000)
//! ```
//!
//! Prints one markdown row per solve: time (the preconditioner's columns and factor; CG;
//! the whole step), CG iterations, final relative residual and backward error, and with
//! `dense` the relative difference `‖δ − δ_dense‖ / ‖δ_dense‖`.

#[path = "common/mnist_gn.rs"]
mod mnist_gn;

use itlin::solve::{Form, GaussNewtonStep, Loss, Preconditioner, StepReport};
use itlin::{Activation, Init, Mlp, Model};
use mnist_gn::{Args, digits};
use std::time::Instant;

fn rel2(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let n: f64 = b.iter().map(|y| y * y).sum();
    (d / n).sqrt()
}

fn row(what: &str, secs: f64, rep: &StepReport, vs: Option<f64>) {
    let cg = rep.cg;
    println!(
        "| {what} | {:.2} | {:.2} | {secs:.2} | {} | {} | {} | {} | {:?} |",
        rep.seconds_assemble,
        rep.seconds_solve,
        cg.map_or("-".into(), |c| c.iterations.to_string()),
        cg.map_or("-".into(), |c| format!("{:.1e}", c.relative_residual)),
        cg.map_or("-".into(), |c| format!("{:.1e}", c.backward_error)),
        vs.map_or("-".into(), |e| format!("{e:.1e}")),
        rep.status,
    );
}

fn main() {
    let args = Args::from_env();
    let n = args.n();
    let rank: usize = args.parse_or("rank", 1000);
    let lambda: f64 = args.parse_or("lambda", 1e-3);
    let limit: usize = args.parse_or("limit", 2000);
    let loss = match args.get("loss").as_deref() {
        Some("ce") => Loss::CrossEntropy,
        _ => Loss::Mse,
    };
    let widths = args.widths();
    let pre = match args.get("pre").as_deref() {
        Some("pivchol") => Preconditioner::PivotedCholesky { rank },
        _ => Preconditioner::Nystrom { rank },
    };
    let (x, y) = digits(n, widths[0], *widths.last().expect("widths"));
    let mlp = Mlp::new(&widths, Activation::Relu).expect("widths");
    let theta: Vec<f64> = mlp.init(Init::Standard, 0);
    let (c, p) = (Model::<f64>::n_outputs(&mlp), Model::<f64>::n_params(&mlp));
    println!(
        "N = {n}, N·C = {}, P = {p}, λ = {lambda:e}, {loss:?}, f64, {} threads",
        n * c,
        rayon::current_num_threads()
    );
    println!(
        "\n| solve | precond / assemble s | solve s | step s | CG iterations | rel. residual | backward error | ‖δ − δ_dense‖/‖δ_dense‖ | status |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let base = GaussNewtonStep::new(loss)
        .with_damping(lambda)
        .with_cg_max_iterations(limit)
        .with_memory_budget(u64::MAX);
    let dense = args.has("dense").then(|| {
        let t = Instant::now();
        let (d, rep) =
            base.clone()
                .with_form(Form::Dual)
                .solve(&mlp, &theta, x.as_ref(), y.as_ref());
        row(
            "dense dual (Cholesky/LU)",
            t.elapsed().as_secs_f64(),
            &rep,
            None,
        );
        d
    });
    let t = Instant::now();
    let (d, rep) = base
        .clone()
        .with_form(Form::Cg)
        .with_cg_preconditioner(pre)
        .solve(&mlp, &theta, x.as_ref(), y.as_ref());
    let vs = dense.as_ref().map(|dd| rel2(&d, dd));
    row(
        &format!("dual PCG, {pre}"),
        t.elapsed().as_secs_f64(),
        &rep,
        vs,
    );
    if args.has("plain") {
        let t = Instant::now();
        let (d, rep) = base
            .clone()
            .with_form(Form::Cg)
            .with_cg_preconditioner(Preconditioner::Nystrom { rank: 0 })
            .solve(&mlp, &theta, x.as_ref(), y.as_ref());
        let vs = dense.as_ref().map(|dd| rel2(&d, dd));
        row("dual CG, none", t.elapsed().as_secs_f64(), &rep, vs);
    }
}
