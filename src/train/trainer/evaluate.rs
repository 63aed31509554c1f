//! [`Trainer`]'s evaluation: the metrics of one evaluation point ([`Metrics`]).

use super::{DataRef, Trainer};
use crate::dist::Shard;
use crate::train::config::Inner;
use crate::train::loss::{accuracy, loss_value};
use crate::train::metrics::Metrics;
use crate::train::probe::{kernel_distance, probe_ntk};
use crate::{Model, Real, Result};
use std::time::Instant;

impl<T: Real, M: Model<T>> Trainer<'_, T, M> {
    /// Evaluates the current state (see [`Metrics`]); in a data-parallel run every rank
    /// calls it and gets the same metrics.
    ///
    /// # Errors
    /// [`crate::Error::Comm`] from the reductions of a data-parallel run.
    pub(super) fn evaluate(
        &mut self,
        train: DataRef<'_, T>,
        test: Option<DataRef<'_, T>>,
        seconds: f64,
    ) -> Result<Metrics> {
        let t = Instant::now();
        let cap = |n: usize| self.cfg.eval_max.map_or(n, |m| m.min(n));
        let loss = self.cfg.loss;
        let dist = self.dist;
        // The first `n` rows of a set (of this rank's shard in a data-parallel run): views,
        // no copies. The network's own loss and accuracy are reported for the test set only,
        // so the training set gets f_lin alone. f_lin goes into reused buffers (a fresh N×C
        // and N×width set per evaluation costs page faults comparable to the products).
        // Returns (rows, loss, accuracy, net loss, net accuracy), the means over the rows.
        let mut buf = std::mem::take(&mut self.eval_buf);
        let mut eval_set =
            |this: &Self, d: DataRef<'_, T>, shard: Option<Shard>, with_net: bool| {
                let rows = match shard {
                    Some(s) => s.local_prefix(cap(s.total)),
                    None => 0..cap(d.len()),
                };
                let n = rows.len();
                if n == 0 {
                    return [0.0; 5];
                }
                let (x, y) = (d.x.subrows(0, n), d.y.subrows(0, n));
                let f = buf.f_lin(this.model, &this.state.theta, &this.state.theta_tilde, x);
                let l = loss_value(loss, f, y);
                // without labels the accuracy slots hold 0 (reported as absent below)
                let acc = d.labels.map_or(0.0, |lab| accuracy(f, &lab[..n]));
                let (nl, na) = if !with_net || this.state.since_relin == 0 {
                    (l, acc)
                } else {
                    let fnet = this.model.forward(&this.state.theta, x);
                    (
                        loss_value(loss, fnet.as_ref(), y),
                        d.labels
                            .map_or(0.0, |lab| accuracy(fnet.as_ref(), &lab[..n])),
                    )
                };
                [n as f64, l, acc, nl, na]
            };
        let tr = eval_set(self, train, dist.map(|d| d.train), false);
        let te = test.map(|d| eval_set(self, d, dist.and_then(|d| d.test), true));
        self.eval_buf = buf;
        // Across ranks: Σ rows·mean and Σ rows, then the means over all rows.
        let (tr, te) = match dist {
            None => (tr, te),
            Some(d) => {
                let t0 = Instant::now();
                let scale =
                    |m: [f64; 5]| [m[0], m[0] * m[1], m[0] * m[2], m[0] * m[3], m[0] * m[4]];
                // a non-finite loss on any rank stays non-finite in the sum
                let mut sums: Vec<f64> = scale(tr).into_iter().collect();
                sums.extend(te.map(scale).into_iter().flatten());
                d.comm.sum_f64(&mut sums)?;
                let mean = |s: &[f64]| {
                    let n = s[0].max(1.0);
                    [s[0], s[1] / n, s[2] / n, s[3] / n, s[4] / n]
                };
                self.state.timings.comm += t0.elapsed().as_secs_f64();
                (mean(&sums[..5]), te.map(|_| mean(&sums[5..])))
            }
        };
        let labelled = |d: Option<DataRef<'_, T>>| d.is_some_and(|d| d.labels.is_some());
        let train_loss = tr[1];
        let train_acc = labelled(Some(train)).then_some(tr[2]);
        let test_m = te.map(|m| {
            let acc = labelled(test).then_some(m[2]);
            let net_acc = labelled(test).then_some(m[4]);
            (m[1], acc, (m[3], net_acc))
        });
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
        // In a data-parallel run rank 0 computes the probes on the first rows of its shard
        // and shares them.
        let probe_n = if self.is_root() {
            self.cfg.probe.min(train.len())
        } else {
            0
        };
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
        if let Some(d) = dist {
            let t0 = Instant::now();
            let pack = |v: Option<f64>| match v {
                Some(v) => [1.0, v],
                None => [0.0, 0.0],
            };
            let mut shared: Vec<f64> = [lin_error, kd0, kd_lin, kd_feat]
                .into_iter()
                .flat_map(pack)
                .collect();
            crate::dist::from_root(d.comm, &mut shared)?;
            let unpack = |k: usize| (shared[2 * k] > 0.5).then_some(shared[2 * k + 1]);
            (lin_error, kd0, kd_lin, kd_feat) = (unpack(0), unpack(1), unpack(2), unpack(3));
            self.state.timings.comm += t0.elapsed().as_secs_f64();
        }
        self.state.timings.eval += t.elapsed().as_secs_f64();
        let n_train = dist.map_or(train.len(), |d| d.train.total);
        let epoch = self.state.step as f64 * self.cfg.batch.min(n_train) as f64 / n_train as f64;
        Ok(Metrics {
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
        })
    }
}
