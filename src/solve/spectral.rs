//! Spectral solves for MSE: one eigendecomposition `Θ = U S Uᵀ` gives the GN step for every
//! damping and the closed form of `K` gradient-descent steps on the linearised model:
//! `δ = −Jᵀ U diag(φ(s)) Uᵀ r` with
//! - damping `λ`: `φ(s) = 1/(s + Nλ)`;
//! - `K` GD steps of size `η`: `φ_K(s) = (1 − (1 − ηs/N)^K)/s` (limit `ηK/N` at `s = 0`);
//! - gradient flow for time `t`: `φ(s) = (1 − e^{−ηts/N})/s`.

use crate::loss::{Loss, output_residual};
use crate::{Model, Real};
use faer::{Mat, MatRef, Side};

/// A spectral filter `φ(s)` applied to the eigenvalues of Θ.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Filter {
    /// Damped GN: `φ(s) = 1/(s + Nλ)`.
    Damping {
        /// Damping `λ`.
        lambda: f64,
    },
    /// `K` full-batch GD steps of size `lr` on the linearised mean MSE.
    GradientDescent {
        /// Step size `η`.
        lr: f64,
        /// Number of steps `K`.
        steps: u64,
    },
    /// Gradient flow `dθ/dt = −η ∇L` for time `t`.
    GradientFlow {
        /// Rate `η`.
        lr: f64,
        /// Time `t`.
        time: f64,
    },
}

impl Filter {
    /// `φ(s)` for a kernel on `n` samples (`s` clamped at 0 from below: rounding can make
    /// the smallest eigenvalues of a PSD kernel slightly negative).
    pub fn phi(&self, s: f64, n: usize) -> f64 {
        let nf = n as f64;
        let s = s.max(0.0);
        match *self {
            Filter::Damping { lambda } => 1.0 / (s + nf * lambda),
            Filter::GradientDescent { lr, steps } => {
                let a = lr * s / nf;
                if a < 1e-300 {
                    lr * steps as f64 / nf
                } else {
                    // 1 − (1 − a)^K = −expm1(K log1p(−a)); for a ≥ 1 the GD iteration is
                    // unstable or oscillating: evaluate directly and let it show.
                    let num = if a < 1.0 {
                        -f64::exp_m1(steps as f64 * f64::ln_1p(-a))
                    } else {
                        1.0 - (1.0 - a).powf(steps as f64)
                    };
                    num / s
                }
            }
            Filter::GradientFlow { lr, time } => {
                let a = lr * time * s / nf;
                if a < 1e-300 {
                    lr * time / nf
                } else {
                    -f64::exp_m1(-a) / s
                }
            }
        }
    }
}

/// The eigendecomposition of `Θ(X, X; θ)` and the coordinates `w = Uᵀ r` of the MSE
/// residual `r = vec(f − y)`, reusable for any number of filters.
#[derive(Clone, Debug)]
pub struct SpectralCache<T> {
    /// Eigenvectors `U` (columns), `(N·C) × (N·C)`.
    pub u: Mat<T>,
    /// Eigenvalues `s`, ascending.
    pub s: Vec<f64>,
    /// `Uᵀ r`.
    pub w: Vec<f64>,
    /// Number of samples `N`.
    pub n: usize,
    /// Outputs per sample `C`.
    pub c: usize,
}

impl<T: Real> SpectralCache<T> {
    /// Builds the cache at θ (structured NTK where the model has it). `None` if the kernel
    /// or residual is not finite or the eigensolver fails.
    ///
    /// # Panics
    /// If `θ`, `X`, `Y` do not fit the model.
    #[track_caller]
    pub fn new<M: Model<T> + ?Sized>(
        model: &M,
        theta: &[T],
        x: MatRef<'_, T>,
        y: MatRef<'_, T>,
    ) -> Option<Self> {
        let (n, c) = (x.nrows(), model.n_outputs());
        assert!(
            y.nrows() == n && y.ncols() == c,
            "SpectralCache::new: Y is {}×{}, expected {n}×{c}",
            y.nrows(),
            y.ncols()
        );
        let f = model.forward(theta, x);
        let r = sample_major(output_residual(Loss::Mse, f.as_ref(), y).as_ref());
        if r.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let k = model.ntk_lower(theta, x, crate::ntk::Method::Auto);
        let eig = k.self_adjoint_eigen(Side::Lower).ok()?;
        let u = eig.U().to_owned();
        let s: Vec<f64> = (0..u.ncols()).map(|i| eig.S()[i].to_f64()).collect();
        if s.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let m = r.len();
        let w: Vec<f64> = (0..m)
            .map(|j| (0..m).map(|i| u[(i, j)].to_f64() * r[i].to_f64()).sum())
            .collect();
        Some(Self { u, s, w, n, c })
    }

    /// The dual coefficients `α = U diag(φ(s)) Uᵀ r` (so `δ = −Jᵀα`), sample-major.
    pub fn alpha(&self, filter: Filter) -> Vec<T> {
        let m = self.s.len();
        let coef: Vec<f64> = self
            .s
            .iter()
            .zip(&self.w)
            .map(|(&s, &w)| filter.phi(s, self.n) * w)
            .collect();
        (0..m)
            .map(|i| T::from_f64((0..m).map(|j| self.u[(i, j)].to_f64() * coef[j]).sum()))
            .collect()
    }

    /// `δ = −Jᵀ α` for the filter (one VJP).
    ///
    /// # Panics
    /// If `θ`, `X` do not fit the model the cache was built with.
    #[track_caller]
    pub fn delta<M: Model<T> + ?Sized>(
        &self,
        model: &M,
        theta: &[T],
        x: MatRef<'_, T>,
        filter: Filter,
    ) -> Vec<T> {
        let alpha: Vec<T> = self.alpha(filter).into_iter().map(|a| -a).collect();
        model.vjp(
            theta,
            x,
            MatRef::from_row_major_slice(&alpha, self.n, self.c),
        )
    }

    /// Mean MSE of the linearised model after the step, `(1/2N) Σ_i (w_i (1 − s_i φ(s_i)))²`,
    /// and `‖δ‖² = Σ_i s_i φ(s_i)² w_i²`: exact, with no pass over the data.
    pub fn predicted(&self, filter: Filter) -> (f64, f64) {
        let mut loss = 0.0;
        let mut norm2 = 0.0;
        for (&s, &w) in self.s.iter().zip(&self.w) {
            let phi = filter.phi(s, self.n);
            let s = s.max(0.0);
            let e = w * (1.0 - s * phi);
            loss += e * e;
            norm2 += s * phi * phi * w * w;
        }
        (loss / (2.0 * self.n as f64), norm2)
    }
}

/// `k` full-batch gradient-descent steps of size `lr` on the linearised mean MSE at θ, in
/// closed form (`φ_K` above): the parameter change `δ_K`. Zeros if the kernel or residuals
/// are not finite.
///
/// # Panics
/// If `θ`, `X`, `Y` do not fit the model.
#[track_caller]
pub fn gradient_descent_closed_form<T: Real, M: Model<T> + ?Sized>(
    model: &M,
    theta: &[T],
    x: MatRef<'_, T>,
    y: MatRef<'_, T>,
    lr: f64,
    k: u64,
) -> Vec<T> {
    match SpectralCache::new(model, theta, x, y) {
        Some(cache) => cache.delta(model, theta, x, Filter::GradientDescent { lr, steps: k }),
        None => vec![T::zero_impl(); model.n_params()],
    }
}

/// Row-major flattening (`vec` in sample-major order) of an `N × C` matrix.
pub(crate) fn sample_major<T: Real>(m: MatRef<'_, T>) -> Vec<T> {
    let mut v = Vec::with_capacity(m.nrows() * m.ncols());
    for i in 0..m.nrows() {
        for k in 0..m.ncols() {
            v.push(m[(i, k)]);
        }
    }
    v
}
