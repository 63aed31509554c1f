//! Fits NIST StRD nonlinear regression problems with Levenberg–Marquardt and prints what a
//! solver user expects: the iteration log, the report (termination, cost, iterations,
//! evaluations, time split) and the parameters with standard errors next to NIST's certified
//! values.
//!
//! Both problems use the model `y = b1 (1 − exp(−b2 x))`: Misra1a (lower difficulty, 14
//! observations) and BoxBOD (higher difficulty, 6 observations), each from NIST's two
//! starting points. Data and certified values: <https://www.itl.nist.gov/div898/strd/nls/>.
//!
//! ```text
//! cargo run --release --example lm_fit
//! ```

use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, MatMut, Side};
use itlin::solve::{IterationInfo, LeastSquares, LevenbergMarquardt, Report};
use std::ops::ControlFlow;

/// `r_i = b1 (1 − exp(−b2 x_i)) − y_i`.
struct Exponential {
    x: &'static [f64],
    y: &'static [f64],
}

impl LeastSquares<f64> for Exponential {
    fn n_params(&self) -> usize {
        2
    }
    fn n_residuals(&self) -> usize {
        self.x.len()
    }
    fn residuals(&self, b: &[f64], r: &mut [f64]) {
        for ((ri, x), y) in r.iter_mut().zip(self.x).zip(self.y) {
            *ri = b[0] * (1.0 - (-b[1] * x).exp()) - y;
        }
    }
    fn jacobian(&self, b: &[f64], mut j: MatMut<'_, f64>) {
        for (i, x) in self.x.iter().enumerate() {
            let e = (-b[1] * x).exp();
            j[(i, 0)] = 1.0 - e;
            j[(i, 1)] = b[0] * x * e;
        }
    }
}

/// One NIST problem: data, starts, certified values.
struct Nist {
    name: &'static str,
    problem: Exponential,
    starts: [[f64; 2]; 2],
    certified: [f64; 2],
    certified_sd: [f64; 2],
    certified_rss: f64,
}

const MISRA1A_X: [f64; 14] = [
    77.6, 114.9, 141.1, 190.8, 239.9, 289.0, 332.8, 378.4, 434.8, 477.3, 536.8, 593.1, 689.1, 760.0,
];
const MISRA1A_Y: [f64; 14] = [
    10.07, 14.73, 17.94, 23.93, 29.61, 35.18, 40.02, 44.82, 50.76, 55.05, 61.01, 66.40, 75.47,
    81.78,
];
const BOXBOD_X: [f64; 6] = [1.0, 2.0, 3.0, 5.0, 7.0, 10.0];
const BOXBOD_Y: [f64; 6] = [109.0, 149.0, 149.0, 191.0, 213.0, 224.0];

/// Standard errors `sqrt(diag((JᵀJ)⁻¹) · RSS / (m − n))` at `b`.
fn standard_errors(p: &Exponential, b: &[f64], rss: f64) -> Vec<f64> {
    let (m, n) = (p.n_residuals(), p.n_params());
    let mut j = Mat::<f64>::zeros(m, n);
    p.jacobian(b, j.as_mut());
    let jtj = j.transpose() * &j;
    let Ok(llt) = jtj.llt(Side::Lower) else {
        return vec![f64::NAN; n];
    };
    let inv = llt.inverse();
    let s2 = rss / (m - n) as f64;
    (0..n).map(|k| (inv[(k, k)] * s2).sqrt()).collect()
}

fn fit(nist: &Nist, start: [f64; 2], tau: Option<f64>, verbose: bool) -> Report {
    let mut theta = start.to_vec();
    let mut lm = LevenbergMarquardt::new();
    if let Some(tau) = tau {
        lm = lm.with_initial_lambda(tau);
    }
    if verbose {
        println!("  iter       cost         trial cost       λ          ρ        ‖δ‖     accepted");
        lm = lm.with_observer(|i: &IterationInfo<'_, f64>| {
            println!(
                "  {:4}  {:.6e}  {:.6e}  {:.2e}  {:8.4}  {:.2e}  {}",
                i.iteration,
                i.cost,
                i.trial_cost,
                i.lambda,
                i.rho,
                i.step_norm,
                if i.accepted { "yes" } else { "no" }
            );
            ControlFlow::Continue(())
        });
    }
    let report = lm.minimize(&nist.problem, &mut theta);
    println!("{report}");
    let rss = 2.0 * report.cost;
    let se = standard_errors(&nist.problem, &theta, rss);
    println!(
        "  residual sum of squares  {rss:.10e}   certified {:.10e}   rel. diff {:.1e}",
        nist.certified_rss,
        (rss - nist.certified_rss).abs() / nist.certified_rss
    );
    println!(
        "  param        estimate          certified    rel. diff     std. error     certified"
    );
    for k in 0..2 {
        println!(
            "  b{}     {:16.10e}  {:16.10e}  {:8.1e}  {:14.8e}  {:14.8e}",
            k + 1,
            theta[k],
            nist.certified[k],
            (theta[k] - nist.certified[k]).abs() / nist.certified[k].abs(),
            se[k],
            nist.certified_sd[k]
        );
    }
    report
}

fn main() {
    let problems = [
        Nist {
            name: "Misra1a (NIST StRD, lower difficulty)",
            problem: Exponential {
                x: &MISRA1A_X,
                y: &MISRA1A_Y,
            },
            starts: [[500.0, 1e-4], [250.0, 5e-4]],
            certified: [2.3894212918e2, 5.5015643181e-4],
            certified_sd: [2.7070075241e0, 7.2668688436e-6],
            certified_rss: 1.2455138894e-1,
        },
        Nist {
            name: "BoxBOD (NIST StRD, higher difficulty)",
            problem: Exponential {
                x: &BOXBOD_X,
                y: &BOXBOD_Y,
            },
            starts: [[1.0, 1.0], [100.0, 0.75]],
            certified: [2.1380940889e2, 5.4723748542e-1],
            certified_sd: [1.2354515176e1, 1.0455993237e-1],
            certified_rss: 1.1680088766e3,
        },
    ];
    println!("Levenberg–Marquardt on NIST StRD problems, model y = b1 (1 − exp(−b2 x))");
    println!("(default settings unless said)\n");
    let mut worst = 0.0f64;
    for nist in &problems {
        for (s, start) in nist.starts.iter().enumerate() {
            println!(
                "=== {} from start {} (b1 = {}, b2 = {})",
                nist.name,
                s + 1,
                start[0],
                start[1]
            );
            let mut report = fit(nist, *start, None, s == 0);
            let rss = 2.0 * report.cost;
            if (rss - nist.certified_rss).abs() > 1e-8 * nist.certified_rss {
                // The trap of BoxBOD from (1, 1): a nearly undamped first step can throw b2
                // onto the plateau b2 → ∞, where exp(−b2 x) ≈ 0 and the fit is the
                // stationary "b1 = mean, b2 = ∞" asymptote (plain ν-doubling after the
                // overflowing first trials lands there). The defaults cut the step after a
                // non-finite trial and avoid it; should a fit still end there, a cautious
                // first step is the remedy.
                println!(
                    "\n  → not the certified minimum (RSS {rss:.6e}): b2 = ∞ asymptote. \
                     Retrying with with_initial_lambda(100.0), a cautious first step:"
                );
                report = fit(nist, *start, Some(100.0), false);
            }
            let rss = 2.0 * report.cost;
            worst = worst.max((rss - nist.certified_rss).abs() / nist.certified_rss);
            println!();
        }
    }
    println!(
        "largest relative difference of the final residual sum of squares from NIST: {worst:.1e}"
    );
    assert!(worst < 1e-8, "a fit missed the certified minimum");
}
