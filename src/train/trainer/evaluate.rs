//! [`Trainer`]'s evaluation: the metrics of one evaluation point ([`Metrics`]).

use super::{DataRef, Trainer};
use crate::train::config::Inner;
use crate::train::loss::{accuracy, loss_value};
use crate::train::metrics::Metrics;
use crate::train::probe::{kernel_distance, probe_ntk};
use crate::{Model, Real};
use std::time::Instant;

impl<T: Real, M: Model<T>> Trainer<'_, T, M> {
    /// Evaluates the current state (see [`Metrics`]).
    pub(super) fn evaluate(
        &mut self,
        train: DataRef<'_, T>,
        test: Option<DataRef<'_, T>>,
        seconds: f64,
    ) -> Metrics {
        let t = Instant::now();
        let cap = |d: DataRef<'_, T>| self.cfg.eval_max.map_or(d.len(), |m| m.min(d.len()));
        let loss = self.cfg.loss;
        // The first `n` rows of a set: views, no copies.
        // The network's own loss and accuracy are reported for the test set only, so the
        // training set gets f_lin alone. f_lin goes into reused buffers (a fresh N×C and
        // N×width set per evaluation costs page faults comparable to the products).
        let mut buf = std::mem::take(&mut self.eval_buf);
        let mut eval_set = |this: &Self, d: DataRef<'_, T>, with_net: bool| {
            let n = cap(d);
            let (x, y) = (d.x.subrows(0, n), d.y.subrows(0, n));
            let f = buf.f_lin(this.model, &this.state.theta, &this.state.theta_tilde, x);
            let l = loss_value(loss, f, y);
            let acc = d.labels.map(|lab| accuracy(f, &lab[..n]));
            let net = if !with_net || this.state.since_relin == 0 {
                (l, acc)
            } else {
                let fnet = this.model.forward(&this.state.theta, x);
                (
                    loss_value(loss, fnet.as_ref(), y),
                    d.labels.map(|lab| accuracy(fnet.as_ref(), &lab[..n])),
                )
            };
            (l, acc, net)
        };
        let (train_loss, train_acc, _) = eval_set(self, train, false);
        let test_m = test.map(|d| eval_set(self, d, true));
        self.eval_buf = buf;
        let norm = |a: &[T], b: &[T]| {
            a.iter()
                .zip(b)
                .map(|(&x, &y)| {
                    let d = (x - y).to_f64();
                    d * d
                })
                .sum::<f64>()
                .sqrt()
        };
        let dist_init = norm(&self.state.theta, &self.state.theta0);
        let dist_lin = norm(&self.state.theta, &self.state.theta_tilde);
        let probe_n = self.cfg.probe.min(train.len());
        let (mut lin_error, mut kd0, mut kd_lin, mut kd_feat) = (None, None, None, None);
        if probe_n > 0 {
            let xp = train.x.subrows(0, probe_n);
            let fnet = self.model.forward(&self.state.theta, xp);
            let flin = self.predict(xp);
            let diff = fnet - flin;
            lin_error = Some(diff.norm_l2().to_f64() / (probe_n as f64).sqrt());
            if self.cfg.kernel_distance {
                let k_now = probe_ntk(self.model, &self.state.theta, xp);
                if self.ntk0.is_none() {
                    self.ntk0 = Some(probe_ntk(self.model, &self.state.theta0, xp));
                }
                let fresh = self
                    .ntk_lin
                    .as_ref()
                    .is_some_and(|(r, _)| *r == self.state.relinearisations);
                if !fresh {
                    let k = probe_ntk(self.model, &self.state.theta_tilde, xp);
                    self.ntk_lin = Some((self.state.relinearisations, k));
                }
                let k0 = self.ntk0.as_ref().expect("set above");
                let kl = &self.ntk_lin.as_ref().expect("set above").1;
                kd0 = Some(kernel_distance(k0.as_ref(), k_now.as_ref()));
                kd_lin = Some(kernel_distance(kl.as_ref(), k_now.as_ref()));
                kd_feat = Some(kernel_distance(k0.as_ref(), kl.as_ref()));
            }
        }
        self.state.timings.eval += t.elapsed().as_secs_f64();
        let epoch =
            self.state.step as f64 * self.cfg.batch.min(train.len()) as f64 / train.len() as f64;
        Metrics {
            step: self.state.step,
            epoch,
            relinearisations: self.state.relinearisations,
            train_loss,
            train_acc,
            test_loss: test_m.map(|m| m.0),
            test_acc: test_m.and_then(|m| m.1),
            net_test_loss: test_m.map(|m| m.2.0),
            net_test_acc: test_m.and_then(|m| m.2.1),
            dist_init,
            dist_lin,
            lin_error,
            kernel_distance: kd0,
            kernel_distance_lin: kd_lin,
            kernel_distance_features: kd_feat,
            lr: self.cfg.inner.lr().map(|_| self.lr_at(self.state.step)),
            damping: matches!(self.cfg.inner, Inner::GaussNewton { .. })
                .then_some(self.state.damping),
            seconds,
            timings: self.state.timings,
        }
    }
}
