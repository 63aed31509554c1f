//! The linear algebra of one Levenberg–Marquardt iteration: the QR factors of a Jacobian,
//! the damped step for a given λ, and the geodesic-acceleration correction.

use super::lsq_common::{gradient_and_column_norms, norm2};
use faer::Mat;
use faer::linalg::solvers::SolveLstsq;

/// The geodesic acceleration `a` of a trial step `v` from the residuals already evaluated
/// at `θ + v`: `r_vv = 2 (r(θ + v) − r(θ) − J v)` (the second directional derivative of `r`
/// along `v`, exact when `r` is quadratic along `v`) and
/// `a = argmin ‖J a + r_vv‖² + λ ‖D a‖²`, i.e. `(JᵀJ + λDᵀD) a = −Jᵀ r_vv`, solved by a QR
/// of the stacked `[J; √λ D]`. `None` if `a` is not finite.
pub(super) fn acceleration(
    j: &Mat<f64>,
    r: &[f64],
    r_new: &[f64],
    v: &[f64],
    d: &[f64],
    lambda: f64,
) -> Option<Vec<f64>> {
    let (m, n) = (j.nrows(), j.ncols());
    let sl = lambda.sqrt();
    let mut rvv = vec![0.0; m];
    for i in 0..m {
        let jv: f64 = (0..n).map(|k| j[(i, k)] * v[k]).sum();
        rvv[i] = 2.0 * (r_new[i] - r[i] - jv);
    }
    let a = Mat::from_fn(m + n, n, |i, c| {
        if i < m {
            j[(i, c)]
        } else if i - m == c {
            sl * d[c]
        } else {
            0.0
        }
    });
    let b = Mat::from_fn(m + n, 1, |i, _| if i < m { -rvv[i] } else { 0.0 });
    let x = a.qr().solve_lstsq(&b);
    let out: Vec<f64> = (0..n).map(|i| x[(i, 0)]).collect();
    out.iter().all(|v| v.is_finite()).then_some(out)
}

/// The QR factors of one Jacobian: `[J | r] = Q [R | Qᵀr]`.
pub(super) struct Linearisation {
    /// `R`, `k × n` upper trapezoidal, `k = min(m, n)`.
    pub(super) r: Mat<f64>,
    /// The first `k` entries of `Qᵀ r`.
    pub(super) qtr: Vec<f64>,
    /// `g = Jᵀ r`.
    pub(super) g: Vec<f64>,
    /// Column norms of `J`.
    pub(super) colnorm: Vec<f64>,
}

/// One damped step.
pub(super) struct Step {
    /// `δ`.
    pub(super) p: Vec<f64>,
    /// `D δ`.
    pub(super) dp: Vec<f64>,
    /// Predicted reduction `½‖Rδ‖² + λ‖Dδ‖²`.
    pub(super) predicted: f64,
    /// `‖Jδ‖² = ‖Rδ‖²`.
    pub(super) jp_norm2: f64,
    /// `‖Dδ‖²`.
    pub(super) dp_norm2: f64,
}

impl Linearisation {
    pub(super) fn new(j: &Mat<f64>, r: &[f64]) -> Self {
        let (m, n) = (j.nrows(), j.ncols());
        let k = m.min(n);
        let aug = Mat::from_fn(m, n + 1, |i, c| if c < n { j[(i, c)] } else { r[i] });
        let qr = aug.qr();
        let rr = qr.R();
        let r_fac = Mat::from_fn(k, n, |i, c| if i <= c { rr[(i, c)] } else { 0.0 });
        let qtr = (0..k).map(|i| rr[(i, n)]).collect();
        let (g, colnorm) = gradient_and_column_norms(j, r);
        Linearisation {
            r: r_fac,
            qtr,
            g,
            colnorm,
        }
    }

    /// Solves `min ‖[R; √λ D] δ + [Qᵀr; 0]‖` by a QR of the stacked matrix.
    pub(super) fn solve(&self, d: &[f64], lambda: f64) -> Step {
        let (k, n) = (self.r.nrows(), self.r.ncols());
        let sl = lambda.sqrt();
        let a = Mat::from_fn(k + n, n, |i, c| {
            if i < k {
                self.r[(i, c)]
            } else if i - k == c {
                sl * d[c]
            } else {
                0.0
            }
        });
        let b = Mat::from_fn(k + n, 1, |i, _| if i < k { -self.qtr[i] } else { 0.0 });
        let x = a.qr().solve_lstsq(&b);
        let p: Vec<f64> = (0..n).map(|i| x[(i, 0)]).collect();
        let dp: Vec<f64> = p.iter().zip(d).map(|(a, b)| a * b).collect();
        let rp: Vec<f64> = (0..k)
            .map(|i| (i..n).map(|c| self.r[(i, c)] * p[c]).sum())
            .collect();
        let jp_norm2 = norm2(&rp).powi(2);
        let dp_norm2 = norm2(&dp).powi(2);
        let predicted = 0.5 * jp_norm2 + lambda * dp_norm2;
        Step {
            p,
            dp,
            predicted,
            jp_norm2,
            dp_norm2,
        }
    }
}
