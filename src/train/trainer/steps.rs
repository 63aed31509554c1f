//! [`Trainer`]'s first-order inner steps on `f_lin`, on the host or on a live engine.

use super::{DataRef, Trainer};
use crate::train::inner::{first_non_finite, gather};
use crate::train::loss::loss_gradient;
use crate::{Model, Real, Result};
use std::time::Instant;

impl<T: Real, M: Model<T>> Trainer<'_, T, M> {
    /// The rows of the next mini-batch (the batcher exists once `fit` has started).
    pub(super) fn next_rows(&mut self) -> Vec<usize> {
        self.state
            .batcher
            .as_mut()
            .expect("batcher created in fit")
            .next_batch()
    }

    /// One mini-batch SGD/Adam step on `f_lin` taken by the live engine (same batches, same
    /// step sizes and counters as [`first_order_step`](Self::first_order_step)). Returns
    /// whether the engine reported a non-finite gradient (then nothing changed).
    pub(super) fn engine_step(&mut self) -> Result<bool> {
        let t = Instant::now();
        let rows = self.next_rows();
        self.state.timings.update += t.elapsed().as_secs_f64();
        let lr = self.lr_at(self.state.step);
        let at_tilde = self.state.since_relin == 0;
        let finite = self.engine.as_mut().expect("a live engine exists").step(
            &rows,
            lr,
            at_tilde,
            &mut self.state.timings,
        )?;
        if finite {
            self.state.step += 1;
            self.state.since_relin += 1;
            self.host_stale = true;
        }
        Ok(!finite)
    }

    /// One mini-batch SGD/Adam step on `f_lin`. Returns `None` when it was taken, else the
    /// non-finite quantity (the batch gradient, or θ after the update) and its value; then θ
    /// is that before the step and the step counter is unchanged.
    pub(super) fn first_order_step(
        &mut self,
        train: DataRef<'_, T>,
    ) -> Option<(&'static str, f64)> {
        let t = Instant::now();
        let rows = self.next_rows();
        let (xb, yb) = (gather(train.x, &rows), gather(train.y, &rows));
        self.state.timings.update += t.elapsed().as_secs_f64();

        let t = Instant::now();
        // f_lin = f(θ̃) + J(θ̃)(θ − θ̃); right after a re-linearisation the tangent is zero.
        let flin = if self.state.since_relin == 0 {
            self.model.forward(&self.state.theta_tilde, xb.as_ref())
        } else {
            let v = self.delta();
            let (f0, jv) = self.model.jvp(&self.state.theta_tilde, xb.as_ref(), &v);
            f0 + jv
        };
        self.state.timings.jvp += t.elapsed().as_secs_f64();

        let t = Instant::now();
        let g_out = loss_gradient(self.cfg.loss, flin.as_ref(), yb.as_ref());
        let mut grad = self
            .model
            .vjp(&self.state.theta_tilde, xb.as_ref(), g_out.as_ref());
        self.state.timings.vjp += t.elapsed().as_secs_f64();

        let t = Instant::now();
        let mut failed = first_non_finite(&grad).map(|v| ("batch gradient", v));
        if failed.is_none() {
            if self.cfg.weight_decay > 0.0 {
                T::axpy(
                    T::from_f64(self.cfg.weight_decay),
                    &self.state.theta,
                    &mut grad,
                );
            }
            let lr = self.lr_at(self.state.step);
            self.backup.clear();
            self.backup.extend_from_slice(&self.state.theta);
            self.state
                .opt
                .update(&self.cfg.inner, lr, &mut self.state.theta, &grad);
            if let Some(v) = first_non_finite(&self.state.theta) {
                self.state.theta.copy_from_slice(&self.backup);
                failed = Some(("θ after the update", v));
            } else {
                self.state.step += 1;
                self.state.since_relin += 1;
            }
        }
        self.state.timings.update += t.elapsed().as_secs_f64();
        failed
    }
}
