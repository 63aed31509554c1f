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

use faer::Mat;
use itlin::solve::{Form, GaussNewtonStep, Loss, Preconditioner, StepReport};
use itlin::{Activation, Init, Mlp, Model};
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("{k}=")).map(str::to_string))
    };
    let n: usize = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000)
        .min(10_000);
    let rank: usize = get("rank").map_or(1000, |v| v.parse().expect("rank=M"));
    let lambda: f64 = get("lambda").map_or(1e-3, |v| v.parse().expect("lambda=L"));
    let limit: usize = get("limit").map_or(2000, |v| v.parse().expect("limit=K"));
    let loss = match get("loss").as_deref() {
        Some("ce") => Loss::CrossEntropy,
        _ => Loss::Mse,
    };
    let widths: Vec<usize> = get("arch").map_or(vec![784, 256, 10], |v| {
        v.split(',')
            .map(|w| w.parse().expect("arch=a,b,c"))
            .collect()
    });
    let pre = match get("pre").as_deref() {
        Some("pivchol") => Preconditioner::PivotedCholesky { rank },
        _ => Preconditioner::Nystrom { rank },
    };
    let split = itlin::data::mnist_embedded_split::<f64>(8000).expect("embedded MNIST");
    let (tr, te) = (&split.train, &split.test);
    let take = |i: usize, j: usize, y: bool| {
        let (m, i) = if i < tr.x.nrows() {
            (if y { &tr.y } else { &tr.x }, i)
        } else {
            (if y { &te.y } else { &te.x }, i - tr.x.nrows())
        };
        m[(i, j)]
    };
    let x = Mat::from_fn(n, widths[0], |i, j| take(i, j, false));
    let y = Mat::from_fn(n, *widths.last().expect("widths"), |i, j| take(i, j, true));
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
    let dense = args.iter().any(|a| a == "dense").then(|| {
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
    if args.iter().any(|a| a == "plain") {
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
