//! NIST StRD nonlinear regression with certified values: the 18 lower- and average-difficulty
//! problems (vendored in `tests/data/nist-strd/`), each from NIST's two starting points.
//! Success on a run: every parameter within 1e-6 relative of its certified value.
//! `cargo test --release --test lsq_nist -- --ignored --nocapture` prints the table.

mod nist;

use itlin::solve::{GaussNewton, LeastSquares, LevenbergMarquardt, Report, check_jacobian};
use nist::Problem;

/// One run of `LevenbergMarquardt::new()`.
fn run(p: &Problem, start: usize) -> (Report, Vec<f64>) {
    let mut b = p.starts[start].clone();
    let report = nist::tuned(LevenbergMarquardt::new()).minimize(p, &mut b);
    (report, b)
}

fn lre(err: f64) -> f64 {
    if err == 0.0 { 16.0 } else { (-err.log10()).clamp(0.0, 16.0) }
}

#[test]
#[ignore = "prints the NIST table; run with --ignored --nocapture"]
fn print_nist_table() {
    println!("\n| problem | start | nfev | njev | LRE | termination |");
    println!("|---|---|---|---|---|---|");
    let (mut ok, mut total, mut fev) = (0, 0, 0);
    for p in nist::problems() {
        for s in 0..2 {
            let (r, b) = run(&p, s);
            let e = p.max_relative_error(&b);
            total += 1;
            ok += usize::from(e <= 1e-6);
            fev += r.evaluations;
            println!(
                "| {} | {} | {} | {} | {:.2} | {} |",
                p.name,
                s + 1,
                r.evaluations,
                r.jacobian_evaluations,
                lre(e),
                r.termination
            );
        }
    }
    println!("{ok}/{total} certified, {fev} residual evaluations");
}

#[test]
#[ignore = "TEMPORARY trace"]
fn trace() {
    let want = std::env::var("X_PROB").unwrap_or_default();
    let s: usize = std::env::var("X_START").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    if let Some(name) = want.strip_prefix("mgh:") {
        let p = itlin::solve::test_problems::by_name(name).unwrap();
        let mut b = p.scaled_start(s as f64);
        let r = nist::tuned(LevenbergMarquardt::new())
            .with_observer(move |i| {
                println!(
                    "it {:3} fev {:3} acc {} cost {:.17e} trial {:.17e} lam {:.2e} rho {:.3e} step {:.2e}",
                    i.iteration, i.evaluations, i.accepted as u8, i.cost, i.trial_cost, i.lambda, i.rho, i.step_norm
                );
                std::ops::ControlFlow::Continue(())
            })
            .minimize(&p, &mut b);
        println!("{r}");
        return;
    }
    for p in nist::problems() {
        if p.name != want {
            continue;
        }
        let cert = p.certified.clone();
        let mut b = p.starts[s - 1].clone();
        let r = nist::tuned(LevenbergMarquardt::new())
            .with_observer(move |i| {
                let e = i.theta.iter().zip(&cert).map(|(a, c)| ((a - c) / c).abs()).fold(0.0, f64::max);
                println!(
                    "it {:3} fev {:3} acc {} cost {:.17e} trial {:.17e} lam {:.2e} rho {:.3e} step {:.2e} relerr {:.2e}",
                    i.iteration, i.evaluations, i.accepted as u8, i.cost, i.trial_cost, i.lambda, i.rho, i.step_norm, e
                );
                std::ops::ControlFlow::Continue(())
            })
            .minimize(&p, &mut b);
        println!("{r}");
    }
}
