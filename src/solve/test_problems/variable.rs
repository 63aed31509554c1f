//! Residuals and Jacobians of the variable-size Moré–Garbow–Hillstrom problems (MGH 20–35).
//!
//! `n = x.len()` and `m = r.len()` (or `j.nrows()`) are read from the arguments.

// Index loops mirror the paper's formulas term by term.
#![allow(clippy::needless_range_loop)]

use faer::MatMut;

// ---- MGH 20: Watson (2 ≤ n ≤ 31, m = 31)
pub(super) fn watson_r(x: &[f64], r: &mut [f64]) {
    let n = x.len();
    for (i, ri) in r.iter_mut().take(29).enumerate() {
        let t = (i + 1) as f64 / 29.0;
        let (mut s1, mut dx) = (0.0, 1.0);
        for (k, xk) in x.iter().enumerate().skip(1) {
            s1 += k as f64 * dx * xk;
            dx *= t;
        }
        let (mut s2, mut dx) = (0.0, 1.0);
        for xk in x.iter().take(n) {
            s2 += dx * xk;
            dx *= t;
        }
        *ri = s1 - s2 * s2 - 1.0;
    }
    r[29] = x[0];
    r[30] = x[1] - x[0] * x[0] - 1.0;
}
pub(super) fn watson_j(x: &[f64], mut j: MatMut<'_, f64>) {
    let n = x.len();
    for i in 0..29 {
        let t = (i + 1) as f64 / 29.0;
        let (mut s2, mut dx) = (0.0, 1.0);
        for xk in x {
            s2 += dx * xk;
            dx *= t;
        }
        // ∂/∂x_k: (k) t^{k−1} − 2 s₂ t^k  (k from 0)
        let mut tk = 1.0; // t^k
        for k in 0..n {
            let d1 = if k == 0 { 0.0 } else { k as f64 * tk / t };
            j[(i, k)] = d1 - 2.0 * s2 * tk;
            tk *= t;
        }
    }
    j[(29, 0)] = 1.0;
    j[(30, 0)] = -2.0 * x[0];
    j[(30, 1)] = 1.0;
}

// ---- MGH 21: Extended Rosenbrock (n even, m = n)
pub(super) fn extended_rosenbrock_r(x: &[f64], r: &mut [f64]) {
    for b in 0..x.len() / 2 {
        r[2 * b] = 10.0 * (x[2 * b + 1] - x[2 * b] * x[2 * b]);
        r[2 * b + 1] = 1.0 - x[2 * b];
    }
}
pub(super) fn extended_rosenbrock_j(x: &[f64], mut j: MatMut<'_, f64>) {
    for b in 0..x.len() / 2 {
        j[(2 * b, 2 * b)] = -20.0 * x[2 * b];
        j[(2 * b, 2 * b + 1)] = 10.0;
        j[(2 * b + 1, 2 * b)] = -1.0;
    }
}

// ---- MGH 23: Penalty I (n, m = n + 1)
const PENALTY_A: f64 = 1e-5;
pub(super) fn penalty1_r(x: &[f64], r: &mut [f64]) {
    let n = x.len();
    let sa = PENALTY_A.sqrt();
    for i in 0..n {
        r[i] = sa * (x[i] - 1.0);
    }
    r[n] = x.iter().map(|v| v * v).sum::<f64>() - 0.25;
}
pub(super) fn penalty1_j(x: &[f64], mut j: MatMut<'_, f64>) {
    let n = x.len();
    for i in 0..n {
        j[(i, i)] = PENALTY_A.sqrt();
        j[(n, i)] = 2.0 * x[i];
    }
}

// ---- MGH 24: Penalty II (n, m = 2n)
pub(super) fn penalty2_r(x: &[f64], r: &mut [f64]) {
    let n = x.len();
    let sa = PENALTY_A.sqrt();
    r[0] = x[0] - 0.2;
    for i in 1..n {
        // paper's i + 1 = 2..n
        let y = ((i + 1) as f64 / 10.0).exp() + (i as f64 / 10.0).exp();
        r[i] = sa * ((x[i] / 10.0).exp() + (x[i - 1] / 10.0).exp() - y);
    }
    for i in n..2 * n - 1 {
        // paper's i + 1 = n+1..2n−1, uses x_{i−n+1} (from 1) = x[i − n + 1] (from 0)
        r[i] = sa * ((x[i - n + 1] / 10.0).exp() - (-0.1f64).exp());
    }
    r[2 * n - 1] = x
        .iter()
        .enumerate()
        .map(|(k, v)| (n - k) as f64 * v * v)
        .sum::<f64>()
        - 1.0;
}
pub(super) fn penalty2_j(x: &[f64], mut j: MatMut<'_, f64>) {
    let n = x.len();
    let sa = PENALTY_A.sqrt();
    j[(0, 0)] = 1.0;
    for i in 1..n {
        j[(i, i)] = sa * (x[i] / 10.0).exp() / 10.0;
        j[(i, i - 1)] = sa * (x[i - 1] / 10.0).exp() / 10.0;
    }
    for i in n..2 * n - 1 {
        j[(i, i - n + 1)] = sa * (x[i - n + 1] / 10.0).exp() / 10.0;
    }
    for k in 0..n {
        j[(2 * n - 1, k)] = 2.0 * (n - k) as f64 * x[k];
    }
}

// ---- MGH 25: Variably dimensioned (n, m = n + 2)
pub(super) fn variably_dimensioned_r(x: &[f64], r: &mut [f64]) {
    let n = x.len();
    let s: f64 = x
        .iter()
        .enumerate()
        .map(|(k, v)| (k + 1) as f64 * (v - 1.0))
        .sum();
    for i in 0..n {
        r[i] = x[i] - 1.0;
    }
    r[n] = s;
    r[n + 1] = s * s;
}
pub(super) fn variably_dimensioned_j(x: &[f64], mut j: MatMut<'_, f64>) {
    let n = x.len();
    let s: f64 = x
        .iter()
        .enumerate()
        .map(|(k, v)| (k + 1) as f64 * (v - 1.0))
        .sum();
    for k in 0..n {
        j[(k, k)] = 1.0;
        j[(n, k)] = (k + 1) as f64;
        j[(n + 1, k)] = 2.0 * s * (k + 1) as f64;
    }
}

// ---- MGH 26: Trigonometric (n, m = n)
pub(super) fn trigonometric_r(x: &[f64], r: &mut [f64]) {
    let n = x.len();
    let sc: f64 = x.iter().map(|v| v.cos()).sum();
    for i in 0..n {
        r[i] = n as f64 - sc + (i + 1) as f64 * (1.0 - x[i].cos()) - x[i].sin();
    }
}
pub(super) fn trigonometric_j(x: &[f64], mut j: MatMut<'_, f64>) {
    let n = x.len();
    for i in 0..n {
        for k in 0..n {
            j[(i, k)] = x[k].sin();
        }
        j[(i, i)] += (i + 1) as f64 * x[i].sin() - x[i].cos();
    }
}

// ---- MGH 27: Brown almost-linear (n, m = n)
pub(super) fn brown_almost_linear_r(x: &[f64], r: &mut [f64]) {
    let n = x.len();
    let s: f64 = x.iter().sum();
    for i in 0..n - 1 {
        r[i] = x[i] + s - (n + 1) as f64;
    }
    r[n - 1] = x.iter().product::<f64>() - 1.0;
}
pub(super) fn brown_almost_linear_j(x: &[f64], mut j: MatMut<'_, f64>) {
    let n = x.len();
    for i in 0..n - 1 {
        for k in 0..n {
            j[(i, k)] = if i == k { 2.0 } else { 1.0 };
        }
    }
    for k in 0..n {
        // Product of the others, without dividing (x_k may be zero).
        j[(n - 1, k)] = x
            .iter()
            .enumerate()
            .filter(|(l, _)| *l != k)
            .map(|(_, v)| v)
            .product();
    }
}

// ---- MGH 28: Discrete boundary value (n, m = n)
pub(super) fn discrete_boundary_r(x: &[f64], r: &mut [f64]) {
    let n = x.len();
    let h = 1.0 / (n + 1) as f64;
    for i in 0..n {
        let t = (i + 1) as f64 * h;
        let xm = if i > 0 { x[i - 1] } else { 0.0 };
        let xp = if i + 1 < n { x[i + 1] } else { 0.0 };
        r[i] = 2.0 * x[i] - xm - xp + h * h * (x[i] + t + 1.0).powi(3) / 2.0;
    }
}
pub(super) fn discrete_boundary_j(x: &[f64], mut j: MatMut<'_, f64>) {
    let n = x.len();
    let h = 1.0 / (n + 1) as f64;
    for i in 0..n {
        let t = (i + 1) as f64 * h;
        j[(i, i)] = 2.0 + 1.5 * h * h * (x[i] + t + 1.0).powi(2);
        if i > 0 {
            j[(i, i - 1)] = -1.0;
        }
        if i + 1 < n {
            j[(i, i + 1)] = -1.0;
        }
    }
}

// ---- MGH 29: Discrete integral equation (n, m = n)
pub(super) fn discrete_integral_r(x: &[f64], r: &mut [f64]) {
    let n = x.len();
    let h = 1.0 / (n + 1) as f64;
    let t = |k: usize| (k + 1) as f64 * h;
    for i in 0..n {
        let mut s1 = 0.0;
        for k in 0..=i {
            s1 += t(k) * (x[k] + t(k) + 1.0).powi(3);
        }
        let mut s2 = 0.0;
        for k in i + 1..n {
            s2 += (1.0 - t(k)) * (x[k] + t(k) + 1.0).powi(3);
        }
        r[i] = x[i] + h * ((1.0 - t(i)) * s1 + t(i) * s2) / 2.0;
    }
}
pub(super) fn discrete_integral_j(x: &[f64], mut j: MatMut<'_, f64>) {
    let n = x.len();
    let h = 1.0 / (n + 1) as f64;
    let t = |k: usize| (k + 1) as f64 * h;
    for i in 0..n {
        for k in 0..n {
            let w = if k <= i {
                (1.0 - t(i)) * t(k)
            } else {
                t(i) * (1.0 - t(k))
            };
            j[(i, k)] = h * w * 3.0 * (x[k] + t(k) + 1.0).powi(2) / 2.0;
        }
        j[(i, i)] += 1.0;
    }
}

// ---- MGH 30: Broyden tridiagonal (n, m = n)
pub(super) fn broyden_tridiagonal_r(x: &[f64], r: &mut [f64]) {
    let n = x.len();
    for i in 0..n {
        let xm = if i > 0 { x[i - 1] } else { 0.0 };
        let xp = if i + 1 < n { x[i + 1] } else { 0.0 };
        r[i] = (3.0 - 2.0 * x[i]) * x[i] - xm - 2.0 * xp + 1.0;
    }
}
pub(super) fn broyden_tridiagonal_j(x: &[f64], mut j: MatMut<'_, f64>) {
    let n = x.len();
    for i in 0..n {
        j[(i, i)] = 3.0 - 4.0 * x[i];
        if i > 0 {
            j[(i, i - 1)] = -1.0;
        }
        if i + 1 < n {
            j[(i, i + 1)] = -2.0;
        }
    }
}

// ---- MGH 31: Broyden banded (n, m = n; lower bandwidth 5, upper 1)
const BANDED_LOWER: usize = 5;
const BANDED_UPPER: usize = 1;
fn banded_range(i: usize, n: usize) -> impl Iterator<Item = usize> {
    (i.saturating_sub(BANDED_LOWER)..(i + BANDED_UPPER + 1).min(n)).filter(move |&k| k != i)
}
pub(super) fn broyden_banded_r(x: &[f64], r: &mut [f64]) {
    let n = x.len();
    for i in 0..n {
        let s: f64 = banded_range(i, n).map(|k| x[k] * (1.0 + x[k])).sum();
        r[i] = x[i] * (2.0 + 5.0 * x[i] * x[i]) + 1.0 - s;
    }
}
pub(super) fn broyden_banded_j(x: &[f64], mut j: MatMut<'_, f64>) {
    let n = x.len();
    for i in 0..n {
        j[(i, i)] = 2.0 + 15.0 * x[i] * x[i];
        for k in banded_range(i, n) {
            j[(i, k)] = -(1.0 + 2.0 * x[k]);
        }
    }
}

// ---- MGH 32: Linear function, full rank (n, m ≥ n)
pub(super) fn linear_full_rank_r(x: &[f64], r: &mut [f64]) {
    let m = r.len();
    let s: f64 = x.iter().sum();
    for (i, ri) in r.iter_mut().enumerate() {
        *ri = -2.0 * s / m as f64 - 1.0 + if i < x.len() { x[i] } else { 0.0 };
    }
}
pub(super) fn linear_full_rank_j(x: &[f64], mut j: MatMut<'_, f64>) {
    let m = j.nrows();
    for i in 0..m {
        for k in 0..x.len() {
            j[(i, k)] = -2.0 / m as f64 + if i == k { 1.0 } else { 0.0 };
        }
    }
}

// ---- MGH 33: Linear function, rank 1 (n, m ≥ n)
pub(super) fn linear_rank1_r(x: &[f64], r: &mut [f64]) {
    let s: f64 = x.iter().enumerate().map(|(k, v)| (k + 1) as f64 * v).sum();
    for (i, ri) in r.iter_mut().enumerate() {
        *ri = (i + 1) as f64 * s - 1.0;
    }
}
pub(super) fn linear_rank1_j(x: &[f64], mut j: MatMut<'_, f64>) {
    for i in 0..j.nrows() {
        for k in 0..x.len() {
            j[(i, k)] = ((i + 1) * (k + 1)) as f64;
        }
    }
}

// ---- MGH 34: Linear function, rank 1 with zero columns and rows (n, m ≥ n)
pub(super) fn linear_rank1_zero_r(x: &[f64], r: &mut [f64]) {
    let (n, m) = (x.len(), r.len());
    let s: f64 = (1..n - 1).map(|k| (k + 1) as f64 * x[k]).sum();
    for (i, ri) in r.iter_mut().enumerate() {
        *ri = i as f64 * s - 1.0;
    }
    r[m - 1] = -1.0;
}
pub(super) fn linear_rank1_zero_j(x: &[f64], mut j: MatMut<'_, f64>) {
    let (n, m) = (x.len(), j.nrows());
    for i in 1..m - 1 {
        for k in 1..n - 1 {
            j[(i, k)] = (i * (k + 1)) as f64;
        }
    }
}

// ---- MGH 35: Chebyquad (n, m ≥ n)
/// Shifted Chebyshev polynomials `T_i(2x − 1)`, `i = 1..=m`, and their x-derivatives.
fn chebyshev(x: f64, m: usize, t: &mut [f64], dt: &mut [f64]) {
    let y = 2.0 * x - 1.0;
    // T₀ = 1, T₁ = y; T_{i+1} = 2y T_i − T_{i−1}; dT/dx = 2 dT/dy.
    let (mut t0, mut t1) = (1.0, y);
    let (mut d0, mut d1) = (0.0, 2.0);
    for i in 0..m {
        t[i] = t1;
        dt[i] = d1;
        let t2 = 2.0 * y * t1 - t0;
        let d2 = 4.0 * t1 + 2.0 * y * d1 - d0;
        (t0, t1, d0, d1) = (t1, t2, d1, d2);
    }
}
pub(super) fn chebyquad_r(x: &[f64], r: &mut [f64]) {
    let (n, m) = (x.len(), r.len());
    let (mut t, mut dt) = (vec![0.0; m], vec![0.0; m]);
    r.fill(0.0);
    for xk in x {
        chebyshev(*xk, m, &mut t, &mut dt);
        for i in 0..m {
            r[i] += t[i] / n as f64;
        }
    }
    for (i, ri) in r.iter_mut().enumerate() {
        let p = i + 1;
        if p % 2 == 0 {
            // minus ∫₀¹ T_p(2x − 1) dx = −(−1 / (p² − 1))
            *ri += 1.0 / ((p * p) as f64 - 1.0);
        }
    }
}
pub(super) fn chebyquad_j(x: &[f64], mut j: MatMut<'_, f64>) {
    let (n, m) = (x.len(), j.nrows());
    let (mut t, mut dt) = (vec![0.0; m], vec![0.0; m]);
    for (k, xk) in x.iter().enumerate() {
        chebyshev(*xk, m, &mut t, &mut dt);
        for i in 0..m {
            j[(i, k)] = dt[i] / n as f64;
        }
    }
}
