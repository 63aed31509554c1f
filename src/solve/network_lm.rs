//! Levenberg-Marquardt for networks: damped Gauss-Newton steps with adaptive damping.
//!
//! Each iteration linearises once at θ and then tries dampings until a step is accepted:
//! `ρ = (L(θ) − L(θ + δ)) / (L(θ) − m(δ))`, with `m` the Gauss-Newton quadratic model of the
//! mean loss. Accept when `ρ > 0` and update `λ ← λ · max(1/3, 1 − (2ρ − 1)³)`, `ν ← 2`
//! (Nielsen); reject otherwise, `λ ← λ ν`, `ν ← 2ν`. Every trial of one linearisation reuses
//! its work: for MSE on up to [`NetworkLm::with_spectral_limit`] outputs one
//! eigendecomposition of Θ serves every λ (a trial costs one VJP and one forward pass);
//! otherwise Θ (structured) is kept and only its damped factorisation is redone.

use super::dense::{damped_cholesky_solve, damped_lu_solve};
use super::gn_step::{h_times_rows, predicted_reduction, sample_major};
use super::spectral::{Filter, SpectralCache};
use crate::linalg::mirror_lower;
use crate::loss::{Loss, loss_value, output_residual, softmax};
use crate::{Model, Real};
use faer::{Mat, MatRef};
use std::time::Instant;

/// Why [`NetworkLm::minimize`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NetworkTermination {
    /// Relative decrease of the loss in an accepted step below `ftol`.
    LossConverged,
    /// Gradient norm `‖∇L‖_∞` below `gtol`.
    GradientConverged,
    /// Iteration limit reached.
    MaxIterations,
    /// No damping up to `max_lambda` gave a decrease.
    Stalled,
    /// The loss or residuals at the start were not finite.
    NonFinite,
}

/// The outcome of [`NetworkLm::minimize`].
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct NetworkLmReport {
    /// Why it stopped.
    pub termination: NetworkTermination,
    /// Accepted steps.
    pub iterations: usize,
    /// Rejected trials.
    pub rejected: usize,
    /// Linearisations (kernels or eigendecompositions built).
    pub linearisations: usize,
    /// Forward passes for trial losses.
    pub evaluations: usize,
    /// Loss after each accepted step (first entry: the initial loss).
    pub loss_history: Vec<f64>,
    /// Damping of each trial.
    pub lambda_history: Vec<f64>,
    /// Final loss.
    pub loss: f64,
    /// Seconds spent in linearisation (kernel / eigendecomposition).
    pub seconds_linearise: f64,
    /// Seconds spent in trials (solves, VJPs, forward passes).
    pub seconds_trials: f64,
}

/// Levenberg-Marquardt on a network's mean loss (builder; see the module docs).
#[derive(Clone, Debug)]
pub struct NetworkLm {
    loss: Loss,
    lambda: f64,
    max_iterations: usize,
    ftol: f64,
    gtol: f64,
    max_lambda: f64,
    spectral_limit: usize,
}

impl NetworkLm {
    /// Defaults: initial `λ = 1e-3`, 50 iterations, `ftol = 1e-10`, `gtol = 1e-12`,
    /// `max_lambda = 1e12`, spectral path up to `N·C = 3000`.
    pub fn new(loss: Loss) -> Self {
        Self {
            loss,
            lambda: 1e-3,
            max_iterations: 50,
            ftol: 1e-10,
            gtol: 1e-12,
            max_lambda: 1e12,
            spectral_limit: 3000,
        }
    }
    /// Initial damping.
    pub fn with_initial_lambda(mut self, lambda: f64) -> Self {
        self.lambda = lambda.max(0.0);
        self
    }
    /// Accepted-step limit.
    pub fn with_max_iterations(mut self, n: usize) -> Self {
        self.max_iterations = n;
        self
    }
    /// Relative loss-decrease tolerance.
    pub fn with_ftol(mut self, ftol: f64) -> Self {
        self.ftol = ftol;
        self
    }
    /// Gradient tolerance (`‖∇L‖_∞`).
    pub fn with_gtol(mut self, gtol: f64) -> Self {
        self.gtol = gtol;
        self
    }
    /// Largest `N·C` for which the spectral cache is used (MSE only).
    pub fn with_spectral_limit(mut self, m: usize) -> Self {
        self.spectral_limit = m;
        self
    }

    /// Minimises the mean loss over θ (updated in place).
    ///
    /// # Panics
    /// If θ, `X`, `Y` do not fit the model.
    #[track_caller]
    pub fn minimize<T: Real, M: Model<T> + ?Sized>(
        &self,
        model: &M,
        theta: &mut [T],
        x: MatRef<'_, T>,
        y: MatRef<'_, T>,
    ) -> NetworkLmReport {
        let (n, c) = (x.nrows(), model.n_outputs());
        assert!(
            y.nrows() == n && y.ncols() == c,
            "NetworkLm::minimize: Y is {}×{}, expected {n}×{c}",
            y.nrows(),
            y.ncols()
        );
        let mut f = model.forward(theta, x);
        let mut loss = loss_value(self.loss, f.as_ref(), y);
        let mut rep = NetworkLmReport {
            termination: NetworkTermination::MaxIterations,
            iterations: 0,
            rejected: 0,
            linearisations: 0,
            evaluations: 1,
            loss_history: vec![loss],
            lambda_history: Vec::new(),
            loss,
            seconds_linearise: 0.0,
            seconds_trials: 0.0,
        };
        if !loss.is_finite() {
            rep.termination = NetworkTermination::NonFinite;
            return rep;
        }
        let (mut lambda, mut nu) = (self.lambda, 2.0);
        let use_spectral = self.loss == Loss::Mse && n * c <= self.spectral_limit;
        'outer: while rep.iterations < self.max_iterations {
            let t = Instant::now();
            let lin = if use_spectral {
                match SpectralCache::new(model, theta, x, y) {
                    Some(s) => Lin::Spectral(s),
                    None => {
                        rep.termination = NetworkTermination::NonFinite;
                        break;
                    }
                }
            } else {
                Lin::Dual(DualCache::new(model, theta, x, f.as_ref(), y, self.loss))
            };
            rep.linearisations += 1;
            rep.seconds_linearise += t.elapsed().as_secs_f64();
            let grad = model.vjp(
                theta,
                x,
                crate::loss::loss_gradient(self.loss, f.as_ref(), y).as_ref(),
            );
            if grad.iter().fold(0f64, |m, g| m.max(g.to_f64().abs())) <= self.gtol {
                rep.termination = NetworkTermination::GradientConverged;
                break;
            }
            let t = Instant::now();
            loop {
                rep.lambda_history.push(lambda);
                let (delta, predicted) = match &lin {
                    Lin::Spectral(s) => {
                        let filter = Filter::Damping { lambda };
                        (
                            s.delta(model, theta, x, filter),
                            loss - s.predicted(filter).0,
                        )
                    }
                    Lin::Dual(d) => d.step(model, theta, x, lambda),
                };
                let trial: Vec<T> = theta.iter().zip(&delta).map(|(a, b)| *a + *b).collect();
                let f_trial = model.forward(&trial, x);
                rep.evaluations += 1;
                let new_loss = loss_value(self.loss, f_trial.as_ref(), y);
                let rho = (loss - new_loss) / predicted;
                if new_loss.is_finite() && predicted > 0.0 && rho > 0.0 {
                    theta.copy_from_slice(&trial);
                    let rel = (loss - new_loss) / loss.abs().max(f64::MIN_POSITIVE);
                    loss = new_loss;
                    f = f_trial;
                    rep.iterations += 1;
                    rep.loss_history.push(loss);
                    lambda *= (1.0 - (2.0 * rho - 1.0).powi(3)).max(1.0 / 3.0);
                    nu = 2.0;
                    rep.seconds_trials += t.elapsed().as_secs_f64();
                    if rel <= self.ftol {
                        rep.termination = NetworkTermination::LossConverged;
                        break 'outer;
                    }
                    break;
                }
                rep.rejected += 1;
                lambda = (lambda * nu).max(1e-12);
                nu *= 2.0;
                if lambda > self.max_lambda {
                    rep.seconds_trials += t.elapsed().as_secs_f64();
                    rep.termination = NetworkTermination::Stalled;
                    break 'outer;
                }
            }
        }
        rep.loss = loss;
        rep
    }
}

enum Lin<T> {
    Spectral(SpectralCache<T>),
    Dual(DualCache<T>),
}

/// Θ (lower), the output gradients and, for cross-entropy, the softmax probabilities at one
/// linearisation point: every damping is one factorisation away.
struct DualCache<T> {
    theta_lower: Mat<T>,
    g: Vec<T>,
    probs: Option<Mat<T>>,
    n: usize,
    c: usize,
}

impl<T: Real> DualCache<T> {
    fn new<M: Model<T> + ?Sized>(
        model: &M,
        theta: &[T],
        x: MatRef<'_, T>,
        f: MatRef<'_, T>,
        y: MatRef<'_, T>,
        loss: Loss,
    ) -> Self {
        let g = sample_major(output_residual(loss, f, y).as_ref());
        let probs = (loss == Loss::CrossEntropy).then(|| softmax(f));
        let theta_lower = model.ntk_lower(theta, x, crate::ntk::Method::Auto);
        Self {
            theta_lower,
            g,
            probs,
            n: x.nrows(),
            c: model.n_outputs(),
        }
    }

    /// `(δ, predicted decrease of the quadratic model)` for damping λ.
    fn step<M: Model<T> + ?Sized>(
        &self,
        model: &M,
        theta: &[T],
        x: MatRef<'_, T>,
        lambda: f64,
    ) -> (Vec<T>, f64) {
        let (n, c) = (self.n, self.c);
        let m = n * c;
        let shift = n as f64 * lambda;
        let rhs = MatRef::from_column_major_slice(&self.g, m, 1);
        let sol = match &self.probs {
            None => damped_cholesky_solve(self.theta_lower.as_ref(), shift, rhs),
            Some(pr) => {
                let mut k = self.theta_lower.clone();
                mirror_lower(k.as_mut());
                let hk = h_times_rows(pr, k.as_ref());
                damped_lu_solve(hk.as_ref(), shift, rhs)
            }
        };
        let Some(sol) = sol else {
            return (vec![T::zero_impl(); model.n_params()], 0.0);
        };
        let alpha: Vec<T> = (0..m).map(|i| -sol.x[(i, 0)]).collect();
        let delta = model.vjp(theta, x, MatRef::from_row_major_slice(&alpha, n, c));
        let predicted = predicted_reduction(model, theta, x, &delta, &self.g, self.probs.as_ref());
        (delta, predicted)
    }
}
