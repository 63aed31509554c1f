//! Losses (always the mean over samples), their output gradients and Gauss-Newton blocks.
//!
//! - MSE: `L = (1/2N) Σ_n ‖f_n − y_n‖²`, `∂L/∂f_n = (f_n − y_n)/N`, GN block `H_n = I`.
//! - Softmax cross-entropy: `L = (1/N) Σ_n CE(softmax(f_n), y_n)` with `y_n` a probability
//!   vector (one-hot for labels), `∂L/∂f_n = (p_n − y_n)/N`, GGN block
//!   `H_n = diag(p_n) − p_n p_nᵀ`.

use crate::Real;
use faer::{Mat, MatRef};
use std::fmt;
use std::str::FromStr;

/// The training loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// Mean squared error `(1/2N) Σ ‖f_n − y_n‖²`.
    Mse,
    /// Mean softmax cross-entropy.
    #[serde(rename = "ce")]
    CrossEntropy,
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Loss::Mse => "mse",
            Loss::CrossEntropy => "ce",
        })
    }
}

impl FromStr for Loss {
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

#[track_caller]
fn check<T>(what: &str, f: MatRef<'_, T>, y: MatRef<'_, T>) {
    assert!(
        f.nrows() == y.nrows() && f.ncols() == y.ncols(),
        "{what}: outputs are {}×{}, targets are {}×{}",
        f.nrows(),
        f.ncols(),
        y.nrows(),
        y.ncols()
    );
}

/// Numerically stable softmax of one row, written to `p` (as f64).
pub(crate) fn softmax_row<T: Real>(f: MatRef<'_, T>, i: usize, p: &mut [f64]) {
    let mut mx = f64::NEG_INFINITY;
    for (k, pk) in p.iter_mut().enumerate() {
        *pk = f[(i, k)].to_f64();
        mx = mx.max(*pk);
    }
    let mut s = 0.0;
    for pk in p.iter_mut() {
        *pk = (*pk - mx).exp();
        s += *pk;
    }
    for pk in p.iter_mut() {
        *pk /= s;
    }
}

/// The mean loss, accumulated in f64.
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
    match loss {
        Loss::Mse => {
            for j in 0..c {
                for i in 0..n {
                    let d = f[(i, j)].to_f64() - y[(i, j)].to_f64();
                    total += d * d;
                }
            }
            total / (2.0 * n as f64)
        }
        Loss::CrossEntropy => {
            for i in 0..n {
                let mut mx = f64::NEG_INFINITY;
                for k in 0..c {
                    mx = mx.max(f[(i, k)].to_f64());
                }
                let lse = mx
                    + (0..c)
                        .map(|k| (f[(i, k)].to_f64() - mx).exp())
                        .sum::<f64>()
                        .ln();
                for k in 0..c {
                    let yk = y[(i, k)].to_f64();
                    if yk != 0.0 {
                        total += yk * (lse - f[(i, k)].to_f64());
                    }
                }
            }
            total / n as f64
        }
    }
}

/// The per-sample output gradient `g_n` *without* the `1/N`: `f_n − y_n` (MSE) or
/// `p_n − y_n` (cross-entropy). The mean-loss gradient is `g / N`.
///
/// # Panics
/// If `f` and `y` have different shapes.
#[track_caller]
pub fn output_residual<T: Real>(loss: Loss, f: MatRef<'_, T>, y: MatRef<'_, T>) -> Mat<T> {
    check("output_residual", f, y);
    let (n, c) = (f.nrows(), f.ncols());
    match loss {
        Loss::Mse => Mat::from_fn(n, c, |i, j| f[(i, j)] - y[(i, j)]),
        Loss::CrossEntropy => {
            let mut g = Mat::zeros(n, c);
            let mut p = vec![0.0; c];
            for i in 0..n {
                softmax_row(f, i, &mut p);
                for k in 0..c {
                    g[(i, k)] = T::from_f64(p[k] - y[(i, k)].to_f64());
                }
            }
            g
        }
    }
}

/// `∂L/∂f` of the mean loss (`N × C`, includes the `1/N`).
///
/// # Panics
/// If `f` and `y` have different shapes.
#[track_caller]
pub fn loss_gradient<T: Real>(loss: Loss, f: MatRef<'_, T>, y: MatRef<'_, T>) -> Mat<T> {
    let mut g = output_residual(loss, f, y);
    let inv_n = T::from_f64(1.0 / f.nrows().max(1) as f64);
    for j in 0..g.ncols() {
        for i in 0..g.nrows() {
            g[(i, j)] *= inv_n;
        }
    }
    g
}

/// Softmax probabilities of each row (`N × C`), the GGN blocks `H_n = diag(p) − p pᵀ`
/// are built from them.
pub fn softmax<T: Real>(f: MatRef<'_, T>) -> Mat<T> {
    let (n, c) = (f.nrows(), f.ncols());
    let mut out = Mat::zeros(n, c);
    let mut p = vec![0.0; c];
    for i in 0..n {
        softmax_row(f, i, &mut p);
        for k in 0..c {
            out[(i, k)] = T::from_f64(p[k]);
        }
    }
    out
}

/// Fraction of rows whose arg-max equals the label.
///
/// # Panics
/// If `labels.len() != f.nrows()`.
#[track_caller]
pub fn accuracy<T: Real>(f: MatRef<'_, T>, labels: &[u32]) -> f64 {
    assert_eq!(
        labels.len(),
        f.nrows(),
        "accuracy: {} labels for {} rows",
        labels.len(),
        f.nrows()
    );
    if labels.is_empty() {
        return 0.0;
    }
    let correct = (0..f.nrows())
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
    correct as f64 / labels.len() as f64
}

/// [`loss_gradient`] written into `out` (`N × C`, any layout): `∂L/∂f = g/N` with `g` the
/// [`output_residual`], rounded exactly as `loss_gradient` rounds it (the residual in `T`,
/// then times `1/N`). `p` is scratch for the softmax of one row (it only grows), so the call
/// allocates nothing once `p` holds `C` entries.
///
/// # Panics
/// If `f`, `y` and `out` do not all have the same shape.
#[track_caller]
pub fn loss_gradient_into<T: Real>(
    loss: Loss,
    f: MatRef<'_, T>,
    y: MatRef<'_, T>,
    mut out: faer::MatMut<'_, T>,
    p: &mut Vec<f64>,
) {
    check("loss_gradient_into", f, y);
    check("loss_gradient_into", f, out.as_ref());
    let (n, c) = (f.nrows(), f.ncols());
    let inv_n = T::from_f64(1.0 / n.max(1) as f64);
    match loss {
        Loss::Mse => {
            for i in 0..n {
                for k in 0..c {
                    out[(i, k)] = (f[(i, k)] - y[(i, k)]) * inv_n;
                }
            }
        }
        Loss::CrossEntropy => {
            p.resize(c, 0.0);
            for i in 0..n {
                softmax_row(f, i, p);
                for k in 0..c {
                    out[(i, k)] = T::from_f64(p[k] - y[(i, k)].to_f64()) * inv_n;
                }
            }
        }
    }
}
