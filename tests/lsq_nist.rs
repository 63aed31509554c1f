//! NIST StRD nonlinear regression problems with certified values: Misra1a (lower difficulty)
//! and BoxBOD (higher difficulty), model `y = b1 (1 − exp(−b2 x))`.
//! Data and certified values: <https://www.itl.nist.gov/div898/strd/nls/>.

use faer::MatMut;
use itlin::solve::{GaussNewton, LeastSquares, LevenbergMarquardt, Report};

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

const MISRA1A: Exponential = Exponential {
    x: &[
        77.6, 114.9, 141.1, 190.8, 239.9, 289.0, 332.8, 378.4, 434.8, 477.3, 536.8, 593.1, 689.1,
        760.0,
    ],
    y: &[
        10.07, 14.73, 17.94, 23.93, 29.61, 35.18, 40.02, 44.82, 50.76, 55.05, 61.01, 66.40, 75.47,
        81.78,
    ],
};
const MISRA1A_B: [f64; 2] = [2.3894212918e2, 5.5015643181e-4];
const MISRA1A_RSS: f64 = 1.2455138894e-1;

const BOXBOD: Exponential = Exponential {
    x: &[1.0, 2.0, 3.0, 5.0, 7.0, 10.0],
    y: &[109.0, 149.0, 149.0, 191.0, 213.0, 224.0],
};
const BOXBOD_B: [f64; 2] = [2.1380940889e2, 5.4723748542e-1];
const BOXBOD_RSS: f64 = 1.1680088766e3;

#[track_caller]
fn assert_certified(what: &str, r: &Report, b: &[f64], cert: [f64; 2], rss: f64) {
    assert!(r.termination.is_converged(), "{what}: {r}");
    let rss_err = (2.0 * r.cost - rss).abs() / rss;
    assert!(rss_err < 1e-9, "{what}: RSS off by {rss_err:e}\n{r}");
    for k in 0..2 {
        let e = (b[k] - cert[k]).abs() / cert[k];
        assert!(
            e < 1e-6,
            "{what}: b{} = {} vs certified {}",
            k + 1,
            b[k],
            cert[k]
        );
    }
}

fn lm() -> LevenbergMarquardt {
    LevenbergMarquardt::new().with_ftol(1e-12).with_xtol(1e-12)
}

#[test]
fn misra1a_from_both_starts() {
    for start in [[500.0, 1e-4], [250.0, 5e-4]] {
        let mut b = start.to_vec();
        let r = lm().minimize(&MISRA1A, &mut b);
        assert_certified("Misra1a LM", &r, &b, MISRA1A_B, MISRA1A_RSS);
        let mut b = start.to_vec();
        let r = GaussNewton::new()
            .with_ftol(1e-12)
            .with_xtol(1e-12)
            .minimize(&MISRA1A, &mut b);
        assert_certified("Misra1a GN", &r, &b, MISRA1A_B, MISRA1A_RSS);
    }
}

#[test]
fn boxbod() {
    // Start 2 with the defaults.
    let mut b = vec![100.0, 0.75];
    let r = lm().minimize(&BOXBOD, &mut b);
    assert_certified("BoxBOD start 2", &r, &b, BOXBOD_B, BOXBOD_RSS);
    // Start 1 throws the default (nearly undamped) first step onto the b2 → ∞ plateau, a
    // stationary asymptote with RSS = Σ(y − ȳ)² = 9771.5; a cautious first step or plain
    // Levenberg damping (D = I) reaches the certified minimum.
    let mut b = vec![1.0, 1.0];
    let r = lm().minimize(&BOXBOD, &mut b);
    assert!(
        (2.0 * r.cost - 9771.5).abs() < 1e-6 && b[1] > 50.0,
        "{r}\n{b:?}"
    );
    let mut b = vec![1.0, 1.0];
    let r = lm().with_initial_lambda(100.0).minimize(&BOXBOD, &mut b);
    assert_certified("BoxBOD start 1, τ = 100", &r, &b, BOXBOD_B, BOXBOD_RSS);
    let mut b = vec![1.0, 1.0];
    let r = lm().with_scaling(false).minimize(&BOXBOD, &mut b);
    assert_certified("BoxBOD start 1, D = I", &r, &b, BOXBOD_B, BOXBOD_RSS);
}
