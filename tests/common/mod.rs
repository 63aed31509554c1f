//! Shared helpers for the integration tests: seeded random data and the one tolerance helper.
#![allow(dead_code)]

#[cfg(feature = "cuda")]
pub mod gpu;
pub mod reference;
pub mod strategies;

use faer::Mat;
use itlin::Real;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded generator.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Uniform entries in [-1, 1).
pub fn rand_vec<T: Real>(rng: &mut ChaCha8Rng, n: usize) -> Vec<T> {
    (0..n)
        .map(|_| T::from_f64(rng.random::<f64>() * 2.0 - 1.0))
        .collect()
}

/// Uniform entries in [-1, 1).
pub fn rand_mat<T: Real>(rng: &mut ChaCha8Rng, r: usize, c: usize) -> Mat<T> {
    Mat::from_fn(r, c, |_, _| T::from_f64(rng.random::<f64>() * 2.0 - 1.0))
}

/// Relative error `‖a − b‖_∞ / max(‖b‖_∞, floor)`; NaN if any entry of `a` or `b` is not
/// finite, so that [`assert_close`] fails on NaN or ∞ (`f64::max` alone would skip NaN).
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(
        a.len(),
        b.len(),
        "rel_err: lengths {} and {}",
        a.len(),
        b.len()
    );
    if !a.iter().chain(b).all(|x| x.is_finite()) {
        return f64::NAN;
    }
    let scale = b.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-300);
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// Asserts `rel_err(a, b) <= tol`, naming what was compared.
#[track_caller]
pub fn assert_close(what: &str, a: &[f64], b: &[f64], tol: f64) {
    let e = rel_err(a, b);
    assert!(e <= tol, "{what}: relative error {e:e} > {tol:e}");
}

/// Column-major entries of a faer matrix, as f64.
pub fn mat_to_vec<T: Real>(m: faer::MatRef<'_, T>) -> Vec<f64> {
    let mut v = Vec::with_capacity(m.nrows() * m.ncols());
    for j in 0..m.ncols() {
        for i in 0..m.nrows() {
            v.push(m[(i, j)].to_f64());
        }
    }
    v
}

/// Row-major entries of a faer matrix, as f64 (the sample-major order of `vec(f)`).
pub fn mat_to_row_major<T: Real>(m: faer::MatRef<'_, T>) -> Vec<f64> {
    let mut v = Vec::with_capacity(m.nrows() * m.ncols());
    for i in 0..m.nrows() {
        for j in 0..m.ncols() {
            v.push(m[(i, j)].to_f64());
        }
    }
    v
}

/// Converts a slice to f64.
pub fn to_f64<T: Real>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}
