//! [`Trainer`]'s first-order inner steps on `f_lin`, on the host or on a live engine.

use super::{DataRef, HostStep, Trainer};
use crate::train::update::fused_update;
use crate::{Model, Real, Result};
use std::time::Instant;

impl<T: Real, M: Model<T>> Trainer<'_, T, M> {
    /// Draws the rows of the next mini-batch into the host buffer (the batcher exists once
    /// `fit` has started).
    pub(super) fn next_rows(&mut self) {
        self.state
            .batcher
            .as_mut()
            .expect("batcher created in fit")
            .next_batch_into(&mut self.host.batch.rows);
    }

    /// One mini-batch SGD/Adam step on `f_lin` taken by the live engine (same batches, same
    /// step sizes and counters as [`first_order_step`](Self::first_order_step)). Returns
    /// whether the engine reported a non-finite gradient (then nothing changed).
    pub(super) fn engine_step(&mut self) -> Result<bool> {
        let t = Instant::now();
        self.next_rows();
        self.state.timings.update += t.elapsed().as_secs_f64();
        let lr = self.lr_at(self.state.step);
        let at_tilde = self.state.since_relin == 0;
        let engine = self.engine.as_mut().expect("a live engine exists");
        let finite = match &self.dist {
            None => engine.step(&self.host.batch.rows, lr, at_tilde, &mut self.state.timings)?,
            Some(d) => {
                let global_b = keep_local_rows(&mut self.host.batch.rows, d.train);
                let share = self.host.batch.rows.len() as f64 / global_b as f64;
                engine.step_sharded(
                    &self.host.batch.rows,
                    share,
                    lr,
                    at_tilde,
                    &mut self.state.timings,
                )?
            }
        };
        if finite {
            self.state.step += 1;
            self.state.since_relin += 1;
            self.host_stale = true;
        }
        Ok(!finite)
    }

    /// One mini-batch SGD/Adam step on `f_lin`: one forward trace at θ̃ on the batch serves
    /// the JVP (`f_lin = f(θ̃) + J(θ − θ̃)`) and the VJP (`g = Jᵀ ∂L/∂f_lin`), then the fused
    /// update (finiteness, weight decay, optimiser). Allocates nothing once its buffers have
    /// the batch's size. In a data-parallel run ([`Trainer::with_comm`]) each rank takes its
    /// rows of the global batch and the gradients are summed across ranks before the update.
    /// Returns `None` when it was taken, else the non-finite quantity (the
    /// batch gradient, or θ after the update) and its value; then θ is that before the step
    /// and the step counter is unchanged.
    pub(super) fn first_order_step(
        &mut self,
        train: DataRef<'_, T>,
    ) -> Result<Option<(&'static str, f64)>> {
        let t = Instant::now();
        self.next_rows();
        // In a data-parallel run: this rank's rows of the global batch, as shard rows.
        let global_b = match &self.dist {
            Some(d) => keep_local_rows(&mut self.host.batch.rows, d.train),
            None => self.host.batch.rows.len(),
        };
        let local_b = self.host.batch.rows.len();
        if local_b > 0 {
            self.host.batch.gather(train);
        }
        self.state.timings.update += t.elapsed().as_secs_f64();

        let lr = self.lr_at(self.state.step);
        let t = Instant::now();
        let HostStep {
            batch,
            lin,
            spare,
            zero,
        } = &mut self.host;
        let st = &mut self.state;
        let grad: &mut [T] = if local_b > 0 {
            // f_lin = f(θ̃) + J(θ̃)(θ − θ̃); right after a re-linearisation the tangent is zero.
            let theta = (st.since_relin != 0).then_some(&st.theta[..]);
            lin.linearise(self.model, &st.theta_tilde, theta, batch.xb());
            st.timings.jvp += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let g = lin.gradient(
                self.model,
                &st.theta_tilde,
                batch.xb(),
                self.cfg.loss,
                batch.yb(),
            );
            st.timings.vjp += t.elapsed().as_secs_f64();
            g
        } else {
            zero.clear();
            zero.resize(st.theta.len(), T::zero_impl());
            zero
        };
        if let Some(d) = &self.dist {
            // the mean over this rank's rows → its share of the mean over the global batch
            let t = Instant::now();
            if local_b != global_b && local_b > 0 {
                let s = T::from_f64(local_b as f64 / global_b as f64);
                grad.iter_mut().for_each(|g| *g *= s);
            }
            crate::dist::sum(d.comm, grad)?;
            st.timings.comm += t.elapsed().as_secs_f64();
        }

        let t = Instant::now();
        let failed = fused_update(
            &self.cfg.inner,
            lr,
            self.cfg.weight_decay,
            &mut st.theta,
            grad,
            &mut st.opt,
            spare,
        );
        if failed.is_none() {
            st.step += 1;
            st.since_relin += 1;
        }
        st.timings.update += t.elapsed().as_secs_f64();
        Ok(failed)
    }
}

/// Keeps the rows of a global batch that `shard` holds, as indices into the shard, and
/// returns the size of the global batch.
fn keep_local_rows(rows: &mut Vec<usize>, shard: crate::dist::Shard) -> usize {
    let global_b = rows.len();
    rows.retain_mut(|i| match shard.local(*i) {
        Some(l) => {
            *i = l;
            true
        }
        None => false,
    });
    global_b
}
