//! Per-feature standardisation.

use crate::Real;
use faer::{MatMut, MatRef};

/// Per-feature standardisation `x'_j = (x_j − μ_j) / σ_j`, with `μ_j` and `σ_j` the mean and
/// (population) standard deviation of feature `j` on the data it was fitted on (the training
/// set), applied unchanged to any other set (the test set).
///
/// A feature whose standard deviation is zero, or negligible next to its mean
/// (`σ_j ≤ 1e-12 · max(1, |μ_j|)`, such as the always-blank border pixels of MNIST), is
/// centred only (`σ_j` is taken as 1). Statistics are accumulated in `f64` with two passes.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Standardizer {
    mean: Vec<f64>,
    std: Vec<f64>,
}

impl Standardizer {
    /// Fits the per-feature mean and standard deviation of `x` (`N × d`).
    ///
    /// With `N = 0` every feature gets mean 0 and scale 1 (the identity).
    pub fn fit<T: Real>(x: MatRef<'_, T>) -> Self {
        let (n, d) = (x.nrows(), x.ncols());
        let mut mean = vec![0.0; d];
        let mut std = vec![1.0; d];
        if n == 0 {
            return Self { mean, std };
        }
        for j in 0..d {
            let mu = (0..n).map(|i| x[(i, j)].to_f64()).sum::<f64>() / n as f64;
            let var = (0..n)
                .map(|i| {
                    let e = x[(i, j)].to_f64() - mu;
                    e * e
                })
                .sum::<f64>()
                / n as f64;
            let sd = var.sqrt();
            mean[j] = mu;
            std[j] = if sd > 1e-12 * mu.abs().max(1.0) {
                sd
            } else {
                1.0
            };
        }
        Self { mean, std }
    }

    /// Number of features it was fitted on.
    pub fn n_features(&self) -> usize {
        self.mean.len()
    }

    /// The per-feature means `μ_j`.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// The per-feature divisors `σ_j` (1 for features that are only centred).
    pub fn scale(&self) -> &[f64] {
        &self.std
    }

    /// Standardises `x` in place: `x[i, j] ← (x[i, j] − μ_j) / σ_j`, computed in `f64` and
    /// rounded to `T`.
    ///
    /// # Panics
    /// If `x` does not have [`n_features`](Self::n_features) columns.
    #[track_caller]
    pub fn apply<T: Real>(&self, mut x: MatMut<'_, T>) {
        assert_eq!(
            x.ncols(),
            self.mean.len(),
            "Standardizer::apply: x is {}×{} but the standardizer was fitted on {} features",
            x.nrows(),
            x.ncols(),
            self.mean.len()
        );
        let n = x.nrows();
        for j in 0..self.mean.len() {
            let (mu, sd) = (self.mean[j], self.std[j]);
            for i in 0..n {
                x[(i, j)] = T::from_f64((x[(i, j)].to_f64() - mu) / sd);
            }
        }
    }
}
