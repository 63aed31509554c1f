//! Losses of the trainer (mean over samples, DESIGN §1).
//!
//! TEMPORARY: `itlin::solve` (lead engineer, on main) will own `Loss`, `loss_value`,
//! `loss_gradient` and `accuracy`; when it lands this file becomes a re-export.

use crate::Real;
use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};

/// Training loss, always the mean over samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Loss {
    /// `L = (1/2N) Σ_n ‖f_n − y_n‖²`.
    Mse,
    /// `L = (1/N) Σ_n CE(softmax(f_n), y_n)` (targets are probability rows, usually one-hot).
    CrossEntropy,
}

impl std::str::FromStr for Loss {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mse" => Ok(Loss::Mse),
            "ce" | "cross-entropy" | "crossentropy" | "xent" => Ok(Loss::CrossEntropy),
            _ => Err(crate::Error::config(format!(
                "unknown loss '{s}'; expected mse or ce"
            ))),
        }
    }
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Loss::Mse => "mse",
            Loss::CrossEntropy => "ce",
        })
    }
}

#[track_caller]
fn check(what: &str, f: MatRef<'_, impl Real>, y: MatRef<'_, impl Real>) {
    assert!(
        f.nrows() == y.nrows() && f.ncols() == y.ncols(),
        "{what}: outputs are {}×{}, targets are {}×{}",
        f.nrows(),
        f.ncols(),
        y.nrows(),
        y.ncols()
    );
}

/// Softmax of one row, in place, and `log Σ exp` of the input row.
fn softmax_row(row: &mut [f64]) -> f64 {
    let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    let mut s = 0.0;
    for v in row.iter_mut() {
        *v = (*v - m).exp();
        s += *v;
    }
    for v in row.iter_mut() {
        *v /= s;
    }
    m + s.ln()
}

/// The mean loss `L(f, y)` (accumulated in `f64`).
///
/// # Panics
/// If `f` and `y` have different shapes.
#[track_caller]
pub fn loss_value<T: Real>(loss: Loss, f: MatRef<'_, T>, y: MatRef<'_, T>) -> f64 {
    check("loss_value", f, y);
    let (n, c) = (f.nrows(), f.ncols());
    if n == 0 {
        return 0.0;
    }
    let mut total = 0.0;
    let mut row = vec![0.0; c];
    for i in 0..n {
        match loss {
            Loss::Mse => {
                for k in 0..c {
                    let d = f[(i, k)].to_f64() - y[(i, k)].to_f64();
                    total += 0.5 * d * d;
                }
            }
            Loss::CrossEntropy => {
                for (k, r) in row.iter_mut().enumerate() {
                    *r = f[(i, k)].to_f64();
                }
                let lse = {
                    let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
                    m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
                };
                for (k, &r) in row.iter().enumerate() {
                    total -= y[(i, k)].to_f64() * (r - lse);
                }
            }
        }
    }
    total / n as f64
}

/// `∂L/∂f` (`N × C`, including the `1/N` of the mean): `(f − y)/N` for MSE,
/// `(softmax(f) − y)/N` for cross-entropy.
///
/// # Panics
/// If `f` and `y` have different shapes.
#[track_caller]
pub fn loss_gradient<T: Real>(loss: Loss, f: MatRef<'_, T>, y: MatRef<'_, T>) -> Mat<T> {
    check("loss_gradient", f, y);
    let (n, c) = (f.nrows(), f.ncols());
    let inv_n = 1.0 / n.max(1) as f64;
    let mut g = Mat::<T>::zeros(n, c);
    let mut row = vec![0.0; c];
    for i in 0..n {
        match loss {
            Loss::Mse => {
                for k in 0..c {
                    g[(i, k)] = T::from_f64((f[(i, k)].to_f64() - y[(i, k)].to_f64()) * inv_n);
                }
            }
            Loss::CrossEntropy => {
                for (k, r) in row.iter_mut().enumerate() {
                    *r = f[(i, k)].to_f64();
                }
                softmax_row(&mut row);
                for (k, &p) in row.iter().enumerate() {
                    g[(i, k)] = T::from_f64((p - y[(i, k)].to_f64()) * inv_n);
                }
            }
        }
    }
    g
}

/// The fraction of rows whose arg-max output is the label.
///
/// # Panics
/// If `labels.len() != f.nrows()`.
#[track_caller]
pub fn accuracy<T: Real>(f: MatRef<'_, T>, labels: &[u32]) -> f64 {
    assert_eq!(
        labels.len(),
        f.nrows(),
        "accuracy: {} labels for {} output rows",
        labels.len(),
        f.nrows()
    );
    if labels.is_empty() {
        return 0.0;
    }
    let hits = (0..f.nrows())
        .filter(|&i| {
            let mut best = 0;
            for k in 1..f.ncols() {
                if f[(i, k)] > f[(i, best)] {
                    best = k;
                }
            }
            best as u32 == labels[i]
        })
        .count();
    hits as f64 / labels.len() as f64
}
