//! [`Trainer`]'s divergence guard: the references of the [`DivergenceRule`] and the checks of
//! an evaluation against it.

use super::{DataRef, Trainer};
use crate::train::config::DivergenceRule;
use crate::train::inner::first_non_finite;
use crate::train::loss::loss_value;
use crate::train::metrics::{Divergence, DivergenceKind, Metrics};
use crate::{Model, Real, Result};
use faer::Mat;

/// Rows of the training set on which the reference loss `L_ref` is measured.
const REF_ROWS: usize = 1024;

/// The limits of one run: `loss_factor · L_ref` on the training loss and
/// `theta_factor · max(‖θ₀‖, 1)` on `‖θ − θ₀‖`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Guard {
    /// Limit on the mean training loss (`∞` when `L_ref` is not positive and finite).
    loss_limit: f64,
    /// Limit on `‖θ − θ₀‖`.
    theta_limit: f64,
}

impl Guard {
    /// Checks one evaluation at `step` (whose θ is the one kept): non-finite training loss or
    /// distance first, then the two limits.
    pub(super) fn check(&self, m: &Metrics) -> Option<Divergence> {
        let make = |kind, quantity: &str, value, limit| Divergence {
            step: m.step,
            kind,
            quantity: quantity.into(),
            value: Some(value),
            limit,
            kept_step: m.step,
        };
        for (q, v) in [("train loss", m.train_loss), ("‖θ − θ₀‖", m.dist_init)] {
            if !v.is_finite() {
                return Some(make(DivergenceKind::NonFinite, q, v, None));
            }
        }
        if m.train_loss > self.loss_limit {
            return Some(make(
                DivergenceKind::Exploded,
                "train loss",
                m.train_loss,
                Some(self.loss_limit),
            ));
        }
        if m.dist_init > self.theta_limit {
            return Some(make(
                DivergenceKind::Exploded,
                "‖θ − θ₀‖",
                m.dist_init,
                Some(self.theta_limit),
            ));
        }
        None
    }
}

impl<T: Real, M: Model<T>> Trainer<'_, T, M> {
    /// The divergence of an update that failed at step `state.step + 1` on `quantity`
    /// (whose value was `value`). On the host θ is already that before the update; a live
    /// engine's θ is synced and, if not finite, replaced by the last finite host copy.
    pub(super) fn failed_update(
        &mut self,
        quantity: &str,
        value: Option<f64>,
    ) -> Result<Divergence> {
        let step = self.state.step + 1;
        let kept_step = match self.sync_checked()? {
            Some(d) => d.kept_step,
            None => self.state.step,
        };
        Ok(Divergence {
            step,
            kind: DivergenceKind::NonFinite,
            quantity: quantity.into(),
            value,
            limit: None,
            kept_step,
        })
    }

    /// [`sync_engine`](Self::sync_engine), then with a live engine checks the synced θ: when
    /// it is finite it becomes the last good copy, else θ is replaced by that copy and the
    /// divergence returned (`kept_step` the copy's step).
    pub(super) fn sync_checked(&mut self) -> Result<Option<Divergence>> {
        self.sync_engine()?;
        if !self.engine_live {
            return Ok(None);
        }
        match first_non_finite(&self.state.theta) {
            None => {
                let step = self.state.step;
                match &mut self.last_good {
                    Some((s, th)) => {
                        *s = step;
                        th.copy_from_slice(&self.state.theta);
                    }
                    None => self.last_good = Some((step, self.state.theta.clone())),
                }
                Ok(None)
            }
            Some(value) => {
                let (kept_step, theta) = self.last_good.as_ref().expect("set at begin");
                self.state.theta.copy_from_slice(theta);
                Ok(Some(Divergence {
                    step: self.state.step,
                    kind: DivergenceKind::NonFinite,
                    quantity: "θ".into(),
                    value: Some(value),
                    limit: None,
                    kept_step: *kept_step,
                }))
            }
        }
    }

    /// The guard of this run: `L_ref = max(L(f(θ₀)), L(0))` on the first ≤ 1024 training
    /// rows (one forward pass), `‖θ₀‖` from the state. The same on every resume.
    ///
    /// In a data-parallel run rank 0 computes the limits on the first rows of its shard and
    /// every rank gets them (so all ranks judge alike).
    ///
    /// # Errors
    /// [`crate::Error::Comm`] from that exchange.
    pub(super) fn guard(&self, train: DataRef<'_, T>) -> Result<Guard> {
        let DivergenceRule {
            loss_factor,
            theta_factor,
        } = self.cfg.divergence;
        let n = train.len().min(REF_ROWS);
        let (x, y) = (train.x.subrows(0, n), train.y.subrows(0, n));
        let f0 = self.model.forward(&self.state.theta0, x);
        let zero = Mat::<T>::zeros(n, y.ncols());
        let at_init = loss_value(self.cfg.loss, f0.as_ref(), y);
        let at_zero = loss_value(self.cfg.loss, zero.as_ref(), y);
        let reference = [at_init, at_zero]
            .into_iter()
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        let loss_limit = if reference > 0.0 {
            loss_factor * reference
        } else {
            f64::INFINITY
        };
        let norm0 = self
            .state
            .theta0
            .iter()
            .map(|v| v.to_f64() * v.to_f64())
            .sum::<f64>()
            .sqrt();
        let mut g = [loss_limit, theta_factor * norm0.max(1.0)];
        if let Some(d) = &self.dist {
            crate::dist::from_root(d.comm, &mut g)?;
        }
        Ok(Guard {
            loss_limit: g[0],
            theta_limit: g[1],
        })
    }
}
