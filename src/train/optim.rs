//! First-order inner optimisers (SGD with momentum / Nesterov, Adam) and their state.

use super::config::Inner;
use crate::Real;

/// The state of the first-order optimisers: SGD's velocity, Adam's moments and step count.
/// Buffers are empty until first used.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptState<T> {
    /// SGD velocity `v` (or Adam's first moment `m`).
    pub m: Vec<T>,
    /// Adam's second moment `v`.
    pub v: Vec<T>,
    /// Number of updates taken (Adam's bias correction).
    pub t: u64,
}

impl<T: Real> OptState<T> {
    /// Applies one update `θ ← θ − step(g)` with step size `lr` for the given optimiser.
    /// Gauss-Newton and spectral inners do not use this state (nothing happens).
    ///
    /// # Panics
    /// If `grad.len() != theta.len()`.
    #[track_caller]
    pub fn update(&mut self, inner: &Inner, lr: f64, theta: &mut [T], grad: &[T]) {
        assert_eq!(
            grad.len(),
            theta.len(),
            "OptState::update: gradient has length {}, θ has length {}",
            grad.len(),
            theta.len()
        );
        let p = theta.len();
        match *inner {
            Inner::Sgd {
                momentum, nesterov, ..
            } => {
                let eta = T::from_f64(lr);
                if momentum == 0.0 {
                    T::axpy(-eta, grad, theta);
                } else {
                    if self.m.len() != p {
                        self.m = vec![T::zero_impl(); p];
                    }
                    let mu = T::from_f64(momentum);
                    for ((th, vi), &g) in theta.iter_mut().zip(self.m.iter_mut()).zip(grad) {
                        *vi = mu * *vi + g;
                        let d = if nesterov { g + mu * *vi } else { *vi };
                        *th -= eta * d;
                    }
                }
                self.t += 1;
            }
            Inner::Adam {
                beta1, beta2, eps, ..
            } => {
                if self.m.len() != p {
                    self.m = vec![T::zero_impl(); p];
                    self.v = vec![T::zero_impl(); p];
                }
                self.t += 1;
                let t = self.t as i32;
                let bc1 = 1.0 - beta1.powi(t);
                let bc2 = 1.0 - beta2.powi(t);
                let (b1, b2) = (T::from_f64(beta1), T::from_f64(beta2));
                let (one_b1, one_b2) = (T::from_f64(1.0 - beta1), T::from_f64(1.0 - beta2));
                let step = T::from_f64(lr / bc1);
                let inv_bc2 = T::from_f64(1.0 / bc2);
                let e = T::from_f64(eps);
                for i in 0..p {
                    let g = grad[i];
                    self.m[i] = b1 * self.m[i] + one_b1 * g;
                    self.v[i] = b2 * self.v[i] + one_b2 * g * g;
                    let denom = (self.v[i] * inv_bc2).sqrt() + e;
                    theta[i] -= step * self.m[i] / denom;
                }
            }
            Inner::GaussNewton { .. } | Inner::Spectral { .. } => {}
        }
    }
}
