//! First-order inner optimisers (SGD with momentum / Nesterov, Adam) and their state.

use super::config::Inner;
use crate::Real;
use crate::backend::optim::{AdamStep, SgdMode, adam_host, sgd_host};

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
                    sgd_host(theta, grad, None, SgdMode::Plain, eta, T::zero_impl());
                } else {
                    if self.m.len() != p {
                        self.m = vec![T::zero_impl(); p];
                    }
                    let mode = if nesterov {
                        SgdMode::Nesterov
                    } else {
                        SgdMode::Momentum
                    };
                    let mu = T::from_f64(momentum);
                    sgd_host(theta, grad, Some(&mut self.m), mode, eta, mu);
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
                let s = AdamStep::new(beta1, beta2, eps, lr, self.t);
                adam_host(theta, grad, &mut self.m, &mut self.v, s);
            }
            Inner::GaussNewton { .. } | Inner::Spectral { .. } => {}
        }
    }
}
