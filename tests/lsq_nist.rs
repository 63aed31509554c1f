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
    let report = LevenbergMarquardt::new().minimize(p, &mut b);
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
                "| {} | {} | {} | {} | {:.1} | {} |",
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
