//! Residuals and Jacobians of the fixed-size Moré–Garbow–Hillstrom problems (MGH 1–19).
//!
//! Each problem is a pair of plain f64 functions: `*_r(x, r)` writes the residuals, `*_j(x, j)`
//! the `m × n` Jacobian (zero-filled on entry). Indices in comments are the paper's (from 1).

// Index loops mirror the paper's formulas term by term.
#![allow(clippy::needless_range_loop)]

use faer::MatMut;
use std::f64::consts::PI;

// ---- MGH 1: Rosenbrock (n = 2, m = 2)
pub(super) fn rosenbrock_r(x: &[f64], r: &mut [f64]) {
    r[0] = 10.0 * (x[1] - x[0] * x[0]);
    r[1] = 1.0 - x[0];
}
pub(super) fn rosenbrock_j(x: &[f64], mut j: MatMut<'_, f64>) {
    j[(0, 0)] = -20.0 * x[0];
    j[(0, 1)] = 10.0;
    j[(1, 0)] = -1.0;
}

// ---- MGH 2: Freudenstein and Roth (n = 2, m = 2)
pub(super) fn freudenstein_roth_r(x: &[f64], r: &mut [f64]) {
    r[0] = -13.0 + x[0] + ((5.0 - x[1]) * x[1] - 2.0) * x[1];
    r[1] = -29.0 + x[0] + ((x[1] + 1.0) * x[1] - 14.0) * x[1];
}
pub(super) fn freudenstein_roth_j(x: &[f64], mut j: MatMut<'_, f64>) {
    j[(0, 0)] = 1.0;
    j[(0, 1)] = x[1] * (10.0 - 3.0 * x[1]) - 2.0;
    j[(1, 0)] = 1.0;
    j[(1, 1)] = x[1] * (2.0 + 3.0 * x[1]) - 14.0;
}

// ---- MGH 3: Powell badly scaled (n = 2, m = 2)
pub(super) fn powell_badly_scaled_r(x: &[f64], r: &mut [f64]) {
    r[0] = 1e4 * x[0] * x[1] - 1.0;
    r[1] = (-x[0]).exp() + (-x[1]).exp() - 1.0001;
}
pub(super) fn powell_badly_scaled_j(x: &[f64], mut j: MatMut<'_, f64>) {
    j[(0, 0)] = 1e4 * x[1];
    j[(0, 1)] = 1e4 * x[0];
    j[(1, 0)] = -(-x[0]).exp();
    j[(1, 1)] = -(-x[1]).exp();
}

// ---- MGH 4: Brown badly scaled (n = 2, m = 3)
pub(super) fn brown_badly_scaled_r(x: &[f64], r: &mut [f64]) {
    r[0] = x[0] - 1e6;
    r[1] = x[1] - 2e-6;
    r[2] = x[0] * x[1] - 2.0;
}
pub(super) fn brown_badly_scaled_j(x: &[f64], mut j: MatMut<'_, f64>) {
    j[(0, 0)] = 1.0;
    j[(1, 1)] = 1.0;
    j[(2, 0)] = x[1];
    j[(2, 1)] = x[0];
}

// ---- MGH 5: Beale (n = 2, m = 3)
const BEALE_Y: [f64; 3] = [1.5, 2.25, 2.625];
pub(super) fn beale_r(x: &[f64], r: &mut [f64]) {
    for (i, ri) in r.iter_mut().enumerate() {
        *ri = BEALE_Y[i] - x[0] * (1.0 - x[1].powi(i as i32 + 1));
    }
}
pub(super) fn beale_j(x: &[f64], mut j: MatMut<'_, f64>) {
    for i in 0..3 {
        let p = i as i32 + 1;
        j[(i, 0)] = -(1.0 - x[1].powi(p));
        j[(i, 1)] = x[0] * p as f64 * x[1].powi(p - 1);
    }
}

// ---- MGH 6: Jennrich and Sampson (n = 2, m = 10)
pub(super) fn jennrich_sampson_r(x: &[f64], r: &mut [f64]) {
    for (i, ri) in r.iter_mut().enumerate() {
        let t = (i + 1) as f64;
        *ri = 2.0 + 2.0 * t - ((t * x[0]).exp() + (t * x[1]).exp());
    }
}
pub(super) fn jennrich_sampson_j(x: &[f64], mut j: MatMut<'_, f64>) {
    for i in 0..j.nrows() {
        let t = (i + 1) as f64;
        j[(i, 0)] = -t * (t * x[0]).exp();
        j[(i, 1)] = -t * (t * x[1]).exp();
    }
}

// ---- MGH 7: Helical valley (n = 3, m = 3)
fn helical_theta(x0: f64, x1: f64) -> f64 {
    // MGH: θ = atan(x₂/x₁)/2π for x₁ > 0, + 0.5 for x₁ < 0; MINPACK takes ±0.25 at x₁ = 0.
    if x0 > 0.0 {
        (x1 / x0).atan() / (2.0 * PI)
    } else if x0 < 0.0 {
        (x1 / x0).atan() / (2.0 * PI) + 0.5
    } else {
        0.25f64.copysign(x1)
    }
}
pub(super) fn helical_valley_r(x: &[f64], r: &mut [f64]) {
    r[0] = 10.0 * (x[2] - 10.0 * helical_theta(x[0], x[1]));
    r[1] = 10.0 * ((x[0] * x[0] + x[1] * x[1]).sqrt() - 1.0);
    r[2] = x[2];
}
pub(super) fn helical_valley_j(x: &[f64], mut j: MatMut<'_, f64>) {
    let s = x[0] * x[0] + x[1] * x[1];
    let tp = 2.0 * PI * s;
    j[(0, 0)] = 100.0 * x[1] / tp;
    j[(0, 1)] = -100.0 * x[0] / tp;
    j[(0, 2)] = 10.0;
    j[(1, 0)] = 10.0 * x[0] / s.sqrt();
    j[(1, 1)] = 10.0 * x[1] / s.sqrt();
    j[(2, 2)] = 1.0;
}

// ---- MGH 8: Bard (n = 3, m = 15)
const BARD_Y: [f64; 15] = [
    0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58, 0.73, 0.96, 1.34, 2.10, 4.39,
];
fn bard_uvw(i: usize) -> (f64, f64, f64) {
    let u = (i + 1) as f64;
    let v = (15 - i) as f64;
    (u, v, u.min(v))
}
pub(super) fn bard_r(x: &[f64], r: &mut [f64]) {
    for (i, ri) in r.iter_mut().enumerate() {
        let (u, v, w) = bard_uvw(i);
        *ri = BARD_Y[i] - (x[0] + u / (v * x[1] + w * x[2]));
    }
}
pub(super) fn bard_j(x: &[f64], mut j: MatMut<'_, f64>) {
    for i in 0..15 {
        let (u, v, w) = bard_uvw(i);
        let d = (v * x[1] + w * x[2]).powi(2);
        j[(i, 0)] = -1.0;
        j[(i, 1)] = u * v / d;
        j[(i, 2)] = u * w / d;
    }
}

// ---- MGH 9: Gaussian (n = 3, m = 15)
const GAUSSIAN_Y: [f64; 15] = [
    0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989, 0.3521, 0.2420, 0.1295, 0.0540,
    0.0175, 0.0044, 0.0009,
];
pub(super) fn gaussian_r(x: &[f64], r: &mut [f64]) {
    for (i, ri) in r.iter_mut().enumerate() {
        let t = (7.0 - i as f64) / 2.0;
        let d = t - x[2];
        *ri = x[0] * (-x[1] * d * d / 2.0).exp() - GAUSSIAN_Y[i];
    }
}
pub(super) fn gaussian_j(x: &[f64], mut j: MatMut<'_, f64>) {
    for i in 0..15 {
        let t = (7.0 - i as f64) / 2.0;
        let d = t - x[2];
        let e = (-x[1] * d * d / 2.0).exp();
        j[(i, 0)] = e;
        j[(i, 1)] = -x[0] * e * d * d / 2.0;
        j[(i, 2)] = x[0] * e * x[1] * d;
    }
}

// ---- MGH 10: Meyer (n = 3, m = 16)
const MEYER_Y: [f64; 16] = [
    34780.0, 28610.0, 23650.0, 19630.0, 16370.0, 13720.0, 11540.0, 9744.0, 8261.0, 7030.0, 6005.0,
    5147.0, 4427.0, 3820.0, 3307.0, 2872.0,
];
pub(super) fn meyer_r(x: &[f64], r: &mut [f64]) {
    for (i, ri) in r.iter_mut().enumerate() {
        let t = 45.0 + 5.0 * (i + 1) as f64;
        *ri = x[0] * (x[1] / (t + x[2])).exp() - MEYER_Y[i];
    }
}
pub(super) fn meyer_j(x: &[f64], mut j: MatMut<'_, f64>) {
    for i in 0..16 {
        let t = 45.0 + 5.0 * (i + 1) as f64;
        let den = t + x[2];
        let e = (x[1] / den).exp();
        j[(i, 0)] = e;
        j[(i, 1)] = x[0] * e / den;
        j[(i, 2)] = -x[0] * e * x[1] / (den * den);
    }
}

// ---- MGH 11: Gulf research and development (n = 3, 3 ≤ m ≤ 100)
fn gulf_ty(i: usize) -> (f64, f64) {
    let t = (i + 1) as f64 / 100.0;
    (t, 25.0 + (-50.0 * t.ln()).powf(2.0 / 3.0))
}
pub(super) fn gulf_r(x: &[f64], r: &mut [f64]) {
    for (i, ri) in r.iter_mut().enumerate() {
        let (t, y) = gulf_ty(i);
        let a = (y - x[1]).abs();
        *ri = (-a.powf(x[2]) / x[0]).exp() - t;
    }
}
pub(super) fn gulf_j(x: &[f64], mut j: MatMut<'_, f64>) {
    for i in 0..j.nrows() {
        let (_, y) = gulf_ty(i);
        let a = (y - x[1]).abs();
        if a == 0.0 {
            continue; // every derivative vanishes (x₃ > 0)
        }
        let ap = a.powf(x[2]);
        let e = (-ap / x[0]).exp();
        j[(i, 0)] = e * ap / (x[0] * x[0]);
        j[(i, 1)] = e * x[2] * a.powf(x[2] - 1.0) * (y - x[1]).signum() / x[0];
        j[(i, 2)] = -e * ap * a.ln() / x[0];
    }
}

// ---- MGH 12: Box three-dimensional (n = 3, m ≥ 3)
pub(super) fn box3d_r(x: &[f64], r: &mut [f64]) {
    for (i, ri) in r.iter_mut().enumerate() {
        let t = 0.1 * (i + 1) as f64;
        *ri = (-t * x[0]).exp() - (-t * x[1]).exp() - x[2] * ((-t).exp() - (-10.0 * t).exp());
    }
}
pub(super) fn box3d_j(x: &[f64], mut j: MatMut<'_, f64>) {
    for i in 0..j.nrows() {
        let t = 0.1 * (i + 1) as f64;
        j[(i, 0)] = -t * (-t * x[0]).exp();
        j[(i, 1)] = t * (-t * x[1]).exp();
        j[(i, 2)] = -((-t).exp() - (-10.0 * t).exp());
    }
}

// ---- MGH 13: Powell singular (n = 4, m = 4); MGH 22 extends it blockwise.
pub(super) fn powell_singular_r(x: &[f64], r: &mut [f64]) {
    for b in 0..x.len() / 4 {
        let (x, r) = (&x[4 * b..4 * b + 4], &mut r[4 * b..4 * b + 4]);
        r[0] = x[0] + 10.0 * x[1];
        r[1] = 5f64.sqrt() * (x[2] - x[3]);
        r[2] = (x[1] - 2.0 * x[2]).powi(2);
        r[3] = 10f64.sqrt() * (x[0] - x[3]).powi(2);
    }
}
pub(super) fn powell_singular_j(x: &[f64], mut j: MatMut<'_, f64>) {
    for b in 0..x.len() / 4 {
        let o = 4 * b;
        let x = &x[o..o + 4];
        j[(o, o)] = 1.0;
        j[(o, o + 1)] = 10.0;
        j[(o + 1, o + 2)] = 5f64.sqrt();
        j[(o + 1, o + 3)] = -(5f64.sqrt());
        j[(o + 2, o + 1)] = 2.0 * (x[1] - 2.0 * x[2]);
        j[(o + 2, o + 2)] = -4.0 * (x[1] - 2.0 * x[2]);
        j[(o + 3, o)] = 2.0 * 10f64.sqrt() * (x[0] - x[3]);
        j[(o + 3, o + 3)] = -2.0 * 10f64.sqrt() * (x[0] - x[3]);
    }
}

// ---- MGH 14: Wood (n = 4, m = 6)
pub(super) fn wood_r(x: &[f64], r: &mut [f64]) {
    r[0] = 10.0 * (x[1] - x[0] * x[0]);
    r[1] = 1.0 - x[0];
    r[2] = 90f64.sqrt() * (x[3] - x[2] * x[2]);
    r[3] = 1.0 - x[2];
    r[4] = 10f64.sqrt() * (x[1] + x[3] - 2.0);
    r[5] = (x[1] - x[3]) / 10f64.sqrt();
}
pub(super) fn wood_j(x: &[f64], mut j: MatMut<'_, f64>) {
    j[(0, 0)] = -20.0 * x[0];
    j[(0, 1)] = 10.0;
    j[(1, 0)] = -1.0;
    j[(2, 2)] = -2.0 * 90f64.sqrt() * x[2];
    j[(2, 3)] = 90f64.sqrt();
    j[(3, 2)] = -1.0;
    j[(4, 1)] = 10f64.sqrt();
    j[(4, 3)] = 10f64.sqrt();
    j[(5, 1)] = 1.0 / 10f64.sqrt();
    j[(5, 3)] = -1.0 / 10f64.sqrt();
}

// ---- MGH 15: Kowalik and Osborne (n = 4, m = 11)
const KOWALIK_Y: [f64; 11] = [
    0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323, 0.0235, 0.0246,
];
const KOWALIK_U: [f64; 11] = [
    4.0, 2.0, 1.0, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625,
];
pub(super) fn kowalik_osborne_r(x: &[f64], r: &mut [f64]) {
    for (i, ri) in r.iter_mut().enumerate() {
        let u = KOWALIK_U[i];
        *ri = KOWALIK_Y[i] - x[0] * (u * u + u * x[1]) / (u * u + u * x[2] + x[3]);
    }
}
pub(super) fn kowalik_osborne_j(x: &[f64], mut j: MatMut<'_, f64>) {
    for i in 0..11 {
        let u = KOWALIK_U[i];
        let num = u * u + u * x[1];
        let den = u * u + u * x[2] + x[3];
        j[(i, 0)] = -num / den;
        j[(i, 1)] = -x[0] * u / den;
        j[(i, 2)] = x[0] * num * u / (den * den);
        j[(i, 3)] = x[0] * num / (den * den);
    }
}

// ---- MGH 16: Brown and Dennis (n = 4, m ≥ 4)
pub(super) fn brown_dennis_r(x: &[f64], r: &mut [f64]) {
    for (i, ri) in r.iter_mut().enumerate() {
        let t = (i + 1) as f64 / 5.0;
        let a = x[0] + t * x[1] - t.exp();
        let b = x[2] + x[3] * t.sin() - t.cos();
        *ri = a * a + b * b;
    }
}
pub(super) fn brown_dennis_j(x: &[f64], mut j: MatMut<'_, f64>) {
    for i in 0..j.nrows() {
        let t = (i + 1) as f64 / 5.0;
        let a = x[0] + t * x[1] - t.exp();
        let b = x[2] + x[3] * t.sin() - t.cos();
        j[(i, 0)] = 2.0 * a;
        j[(i, 1)] = 2.0 * a * t;
        j[(i, 2)] = 2.0 * b;
        j[(i, 3)] = 2.0 * b * t.sin();
    }
}

// ---- MGH 17: Osborne 1 (n = 5, m = 33)
const OSBORNE1_Y: [f64; 33] = [
    0.844, 0.908, 0.932, 0.936, 0.925, 0.908, 0.881, 0.850, 0.818, 0.784, 0.751, 0.718, 0.685,
    0.658, 0.628, 0.603, 0.580, 0.558, 0.538, 0.522, 0.506, 0.490, 0.478, 0.467, 0.457, 0.448,
    0.438, 0.431, 0.424, 0.420, 0.414, 0.411, 0.406,
];
pub(super) fn osborne1_r(x: &[f64], r: &mut [f64]) {
    for (i, ri) in r.iter_mut().enumerate() {
        let t = 10.0 * i as f64;
        *ri = OSBORNE1_Y[i] - (x[0] + x[1] * (-t * x[3]).exp() + x[2] * (-t * x[4]).exp());
    }
}
pub(super) fn osborne1_j(x: &[f64], mut j: MatMut<'_, f64>) {
    for i in 0..33 {
        let t = 10.0 * i as f64;
        let (e1, e2) = ((-t * x[3]).exp(), (-t * x[4]).exp());
        j[(i, 0)] = -1.0;
        j[(i, 1)] = -e1;
        j[(i, 2)] = -e2;
        j[(i, 3)] = t * x[1] * e1;
        j[(i, 4)] = t * x[2] * e2;
    }
}

// ---- MGH 18: Biggs EXP6 (n = 6, m ≥ 6)
pub(super) fn biggs_exp6_r(x: &[f64], r: &mut [f64]) {
    for (i, ri) in r.iter_mut().enumerate() {
        let t = 0.1 * (i + 1) as f64;
        let y = (-t).exp() - 5.0 * (-10.0 * t).exp() + 3.0 * (-4.0 * t).exp();
        *ri = x[2] * (-t * x[0]).exp() - x[3] * (-t * x[1]).exp() + x[5] * (-t * x[4]).exp() - y;
    }
}
pub(super) fn biggs_exp6_j(x: &[f64], mut j: MatMut<'_, f64>) {
    for i in 0..j.nrows() {
        let t = 0.1 * (i + 1) as f64;
        let (e0, e1, e4) = ((-t * x[0]).exp(), (-t * x[1]).exp(), (-t * x[4]).exp());
        j[(i, 0)] = -t * x[2] * e0;
        j[(i, 1)] = t * x[3] * e1;
        j[(i, 2)] = e0;
        j[(i, 3)] = -e1;
        j[(i, 4)] = -t * x[5] * e4;
        j[(i, 5)] = e4;
    }
}

// ---- MGH 19: Osborne 2 (n = 11, m = 65)
const OSBORNE2_Y: [f64; 65] = [
    1.366, 1.191, 1.112, 1.013, 0.991, 0.885, 0.831, 0.847, 0.786, 0.725, 0.746, 0.679, 0.608,
    0.655, 0.616, 0.606, 0.602, 0.626, 0.651, 0.724, 0.649, 0.649, 0.694, 0.644, 0.624, 0.661,
    0.612, 0.558, 0.533, 0.495, 0.500, 0.423, 0.395, 0.375, 0.372, 0.391, 0.396, 0.405, 0.428,
    0.429, 0.523, 0.562, 0.607, 0.653, 0.672, 0.708, 0.633, 0.668, 0.645, 0.632, 0.591, 0.559,
    0.597, 0.625, 0.739, 0.710, 0.729, 0.720, 0.636, 0.581, 0.428, 0.292, 0.162, 0.098, 0.054,
];
pub(super) fn osborne2_r(x: &[f64], r: &mut [f64]) {
    for (i, ri) in r.iter_mut().enumerate() {
        let t = i as f64 / 10.0;
        let g = |a: f64, c: f64| (-a * (t - c) * (t - c)).exp();
        *ri = OSBORNE2_Y[i]
            - (x[0] * (-t * x[4]).exp()
                + x[1] * g(x[5], x[8])
                + x[2] * g(x[6], x[9])
                + x[3] * g(x[7], x[10]));
    }
}
pub(super) fn osborne2_j(x: &[f64], mut j: MatMut<'_, f64>) {
    for i in 0..65 {
        let t = i as f64 / 10.0;
        let e0 = (-t * x[4]).exp();
        j[(i, 0)] = -e0;
        j[(i, 4)] = t * x[0] * e0;
        for k in 0..3 {
            // Gaussian bump k: amplitude x[1+k], width x[5+k], centre x[8+k].
            let d = t - x[8 + k];
            let e = (-x[5 + k] * d * d).exp();
            j[(i, 1 + k)] = -e;
            j[(i, 5 + k)] = x[1 + k] * d * d * e;
            j[(i, 8 + k)] = -2.0 * x[1 + k] * x[5 + k] * d * e;
        }
    }
}
