//! The trainer's [`FirstOrderEngine`] seam, on the CPU: a host engine that keeps its own
//! copies of θ, θ̃, the optimiser state and the training set (as the GPU-resident engine does
//! in device memory) and takes the same step as the trainer's host path. With it, training is
//! bit-for-bit the host path's: the same θ, θ̃, optimiser state, counters, metrics at every
//! evaluation, checkpoints, resumption and divergence. This proves that the trainer hands the
//! engine the same batches, step sizes and flags, and syncs the state back before every
//! evaluation, checkpoint and at the end (a missing sync shows up as stale metrics or θ).
//!
//! The crate's own [`BackendEngine`] (the first-order step written once over the backend
//! seam, which is the GPU-resident engine with the `cuda` feature) runs the same tests on the
//! CPU backend: it too trains bit for bit like the host path.

mod common;

use common::{rand_mat, rng};
use faer::Mat;
use itlin::backend::Cpu;
use itlin::train::BackendEngine;
use itlin::train::{
    DataRef, FirstOrderEngine, Inner, Loss, OptState, Period, Report, Termination, Timings,
    TrainConfig, TrainState, Trainer, checkpoint, loss_gradient,
};
use itlin::{Activation, Init, Mlp, Model, Real, Result};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

/// A first-order engine on the host: owns θ, θ̃, the optimiser state and the data, and is
/// read back only through `sync` (as a device would be). Counts its calls.
struct HostEngine<'m, T: Real> {
    mlp: &'m Mlp,
    inner: Option<Inner>,
    loss: Loss,
    wd: f64,
    x: Mat<T>,
    y: Mat<T>,
    theta: Vec<T>,
    theta_tilde: Vec<T>,
    opt: OptState<T>,
    syncs: Rc<Cell<u64>>,
}

impl<'m, T: Real> HostEngine<'m, T> {
    fn new(mlp: &'m Mlp, syncs: Rc<Cell<u64>>) -> Self {
        Self {
            mlp,
            inner: None,
            loss: Loss::Mse,
            wd: 0.0,
            x: Mat::zeros(0, 0),
            y: Mat::zeros(0, 0),
            theta: Vec::new(),
            theta_tilde: Vec::new(),
            opt: OptState::default(),
            syncs,
        }
    }
}

impl<T: Real> FirstOrderEngine<T> for HostEngine<'_, T> {
    fn begin(
        &mut self,
        cfg: &TrainConfig,
        st: &TrainState<T>,
        train: DataRef<'_, T>,
    ) -> Result<()> {
        self.inner = Some(cfg.inner);
        self.loss = cfg.loss;
        self.wd = cfg.weight_decay;
        self.x = train.x.to_owned();
        self.y = train.y.to_owned();
        self.theta = st.theta.clone();
        self.theta_tilde = st.theta_tilde.clone();
        self.opt = st.opt.clone();
        Ok(())
    }

    fn relinearise(&mut self) -> Result<()> {
        self.theta_tilde.copy_from_slice(&self.theta);
        Ok(())
    }

    fn step(&mut self, rows: &[usize], lr: f64, at_tilde: bool, tm: &mut Timings) -> Result<bool> {
        let xb = Mat::from_fn(rows.len(), self.x.ncols(), |i, j| self.x[(rows[i], j)]);
        let yb = Mat::from_fn(rows.len(), self.y.ncols(), |i, j| self.y[(rows[i], j)]);
        let flin = if at_tilde {
            self.mlp.forward(&self.theta_tilde, xb.as_ref())
        } else {
            let v: Vec<T> = self
                .theta
                .iter()
                .zip(&self.theta_tilde)
                .map(|(&a, &b)| a - b)
                .collect();
            let (f0, jv) = self.mlp.jvp(&self.theta_tilde, xb.as_ref(), &v);
            f0 + jv
        };
        let u = loss_gradient(self.loss, flin.as_ref(), yb.as_ref());
        let mut g = self.mlp.vjp(&self.theta_tilde, xb.as_ref(), u.as_ref());
        tm.vjp += 1e-9; // the engine reports time; the value is not compared
        if !g.iter().all(|v| v.is_finite()) {
            return Ok(false);
        }
        if self.wd > 0.0 {
            T::axpy(T::from_f64(self.wd), &self.theta, &mut g);
        }
        let inner = self.inner.expect("begin was called");
        self.opt.update(&inner, lr, &mut self.theta, &g);
        Ok(true)
    }

    fn sync(&mut self, st: &mut TrainState<T>) -> Result<()> {
        self.syncs.set(self.syncs.get() + 1);
        st.theta.copy_from_slice(&self.theta);
        st.theta_tilde.copy_from_slice(&self.theta_tilde);
        st.opt = self.opt.clone();
        Ok(())
    }
}

/// The crate's [`BackendEngine`] on the CPU backend, counting its syncs.
struct SeamEngine<T: Real> {
    engine: BackendEngine<T, Cpu>,
    syncs: Rc<Cell<u64>>,
}

impl<T: Real> FirstOrderEngine<T> for SeamEngine<T> {
    fn begin(
        &mut self,
        cfg: &TrainConfig,
        st: &TrainState<T>,
        train: DataRef<'_, T>,
    ) -> Result<()> {
        self.engine.begin(cfg, st, train)
    }
    fn relinearise(&mut self) -> Result<()> {
        self.engine.relinearise()
    }
    fn step(&mut self, rows: &[usize], lr: f64, at_tilde: bool, tm: &mut Timings) -> Result<bool> {
        self.engine.step(rows, lr, at_tilde, tm)
    }
    fn sync(&mut self, st: &mut TrainState<T>) -> Result<()> {
        self.syncs.set(self.syncs.get() + 1);
        self.engine.sync(st)
    }
}

/// Which engine a run uses.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Engine {
    /// None: the trainer's host path.
    Host,
    /// The reference engine of this file.
    Reference,
    /// The crate's `BackendEngine` on the CPU backend.
    Seam,
}

fn engine<'m>(
    kind: Engine,
    mlp: &'m Mlp,
    syncs: Rc<Cell<u64>>,
) -> Box<dyn FirstOrderEngine<f64> + 'm> {
    match kind {
        Engine::Reference => Box::new(HostEngine::new(mlp, syncs)),
        Engine::Seam => Box::new(SeamEngine {
            engine: BackendEngine::new(mlp.clone(), Arc::new(Cpu)),
            syncs,
        }),
        Engine::Host => unreachable!("the host path has no engine"),
    }
}

type Data = (Mat<f64>, Mat<f64>, Vec<u32>, Mat<f64>, Mat<f64>, Vec<u32>);

/// 37 training and 11 test rows of 5 features, 3 classes (arg-max of the first 3 features).
fn data() -> Data {
    let make = |n: usize, seed: u64| {
        let x = rand_mat::<f64>(&mut rng(seed), n, 5);
        let lab: Vec<u32> = (0..n)
            .map(|i| {
                (0..3)
                    .max_by(|&a, &b| x[(i, a)].total_cmp(&x[(i, b)]))
                    .unwrap() as u32
            })
            .collect();
        let y = Mat::from_fn(n, 3, |i, k| f64::from(lab[i] as usize == k));
        (x, y, lab)
    };
    let (x, y, l) = make(37, 1);
    let (xt, yt, lt) = make(11, 2);
    (x, y, l, xt, yt, lt)
}

fn cfg(inner: Inner, loss: Loss, period: Period, wd: f64) -> TrainConfig {
    TrainConfig::new()
        .with_period(period)
        .with_inner(inner)
        .with_loss(loss)
        .with_weight_decay(wd)
        .with_batch(8)
        .with_steps(30)
        .with_seed(4)
        .with_eval_every(7)
        .with_probe(6)
        .with_kernel_distance(true)
}

/// Fits with or without the host engine; returns the state, the report and the syncs.
fn fit(mlp: &Mlp, cfg: &TrainConfig, d: &Data, kind: Engine) -> (TrainState<f64>, Report, u64) {
    let syncs = Rc::new(Cell::new(0));
    let theta0 = mlp.init::<f64>(Init::Standard, 9);
    let mut tr = Trainer::new(mlp, theta0, cfg.clone()).unwrap();
    if kind != Engine::Host {
        tr = tr.with_engine(engine(kind, mlp, syncs.clone()));
    }
    let (x, y, l, xt, yt, lt) = d;
    let rep = tr
        .fit(
            DataRef::new(x.as_ref(), y.as_ref(), Some(l)),
            Some(DataRef::new(xt.as_ref(), yt.as_ref(), Some(lt))),
            &mut (),
        )
        .unwrap();
    (tr.state().clone(), rep, syncs.get())
}

/// Everything but wall-clock times.
fn assert_same(
    what: &str,
    (s1, r1): (&TrainState<f64>, &Report),
    (s2, r2): (&TrainState<f64>, &Report),
) {
    assert_eq!(s1.theta, s2.theta, "{what}: θ");
    assert_eq!(s1.theta_tilde, s2.theta_tilde, "{what}: θ̃");
    assert_eq!(s1.opt, s2.opt, "{what}: optimiser state");
    assert_eq!(s1.batcher, s2.batcher, "{what}: batcher");
    assert_eq!(
        (s1.step, s1.relinearisations, s1.since_relin),
        (s2.step, s2.relinearisations, s2.since_relin),
        "{what}: counters"
    );
    assert_eq!(r1.termination, r2.termination, "{what}: termination");
    assert_eq!(r1.history.len(), r2.history.len(), "{what}: evaluations");
    for (a, b) in r1.history.iter().zip(&r2.history) {
        let strip = |m: &itlin::train::Metrics| {
            let mut m = m.clone();
            m.seconds = 0.0;
            m.timings = Timings::default();
            m
        };
        assert_eq!(strip(a), strip(b), "{what}: metrics at step {}", a.step);
    }
}

#[test]
fn an_engine_trains_bit_for_bit_like_the_host_path() {
    let mlp = Mlp::new(&[5, 11, 3], Activation::Tanh).unwrap();
    let d = data();
    let inners = [
        Inner::sgd(0.3),
        Inner::Sgd {
            lr: 0.1,
            momentum: 0.9,
            nesterov: false,
        },
        Inner::Sgd {
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
        },
        Inner::adam(1e-2),
    ];
    for inner in inners {
        for loss in [Loss::Mse, Loss::CrossEntropy] {
            for period in [Period::Steps(1), Period::Steps(10), Period::Never] {
                for wd in [0.0, 1e-2] {
                    let c = cfg(inner, loss, period, wd);
                    let what = format!("{inner:?} {loss:?} K={period} wd={wd}");
                    let (s1, r1, _) = fit(&mlp, &c, &d, Engine::Host);
                    assert_eq!(
                        r1.history.len(),
                        5,
                        "{what}: evaluations at 7, 14, 21, 28, 30"
                    );
                    for kind in [Engine::Reference, Engine::Seam] {
                        let (s2, r2, syncs) = fit(&mlp, &c, &d, kind);
                        assert!(
                            syncs >= 5,
                            "{what} {kind:?}: one sync per evaluation at least, got {syncs}"
                        );
                        assert_same(&format!("{what} {kind:?}"), (&s1, &r1), (&s2, &r2));
                    }
                }
            }
        }
    }
}

/// Gauss-Newton ignores the engine (no sync, same results).
#[test]
fn second_order_inners_do_not_use_the_engine() {
    let mlp = Mlp::new(&[5, 11, 3], Activation::Tanh).unwrap();
    let d = data();
    let gn = Inner::GaussNewton {
        damping: 1e-2,
        adaptive: true,
    };
    let c = cfg(gn, Loss::Mse, Period::Steps(3), 0.0)
        .with_steps(6)
        .with_eval_every(3);
    let (s1, r1, _) = fit(&mlp, &c, &d, Engine::Host);
    let (s2, r2, syncs) = fit(&mlp, &c, &d, Engine::Seam);
    assert_eq!(syncs, 0);
    assert_same("gn", (&s1, &r1), (&s2, &r2));
}

/// Checkpoints written with an engine hold the synced state, and a resumed engine run ends
/// where the uninterrupted host run ends.
#[test]
fn engine_checkpoints_resume_bit_for_bit() {
    let mlp = Mlp::new(&[5, 11, 3], Activation::Tanh).unwrap();
    let d = data();
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("checkpoint.bin");
    let base = cfg(
        Inner::adam(1e-2),
        Loss::CrossEntropy,
        Period::Steps(4),
        1e-3,
    );
    let (full, full_rep, _) = fit(&mlp, &base, &d, Engine::Host);
    let (at18, _, _) = fit(
        &mlp,
        &base.clone().with_steps(18).with_checkpoint(&ck, 6),
        &d,
        Engine::Seam,
    );
    let saved = checkpoint::load::<f64>(&ck).unwrap();
    assert_eq!(saved.step, 18);
    assert_eq!(
        (&saved.theta, &saved.theta_tilde, &saved.opt, &saved.batcher),
        (&at18.theta, &at18.theta_tilde, &at18.opt, &at18.batcher),
        "the checkpoint holds the synced state"
    );
    let syncs = Rc::new(Cell::new(0));
    let mut tr = Trainer::from_state(&mlp, saved, base.clone())
        .unwrap()
        .with_engine(engine(Engine::Seam, &mlp, syncs));
    let (x, y, l, xt, yt, lt) = &d;
    let rep = tr
        .fit(
            DataRef::new(x.as_ref(), y.as_ref(), Some(l)),
            Some(DataRef::new(xt.as_ref(), yt.as_ref(), Some(lt))),
            &mut (),
        )
        .unwrap();
    assert_eq!(tr.state().theta, full.theta, "resumed θ");
    assert_eq!(tr.state().opt, full.opt, "resumed optimiser state");
    assert_eq!(
        rep.history.last().map(|m| m.train_loss),
        full_rep.history.last().map(|m| m.train_loss)
    );
}

/// A NaN in the data stops both paths at the same step with the same (finite) θ.
#[test]
fn engine_divergence_matches_the_host_path() {
    let mlp = Mlp::new(&[5, 11, 3], Activation::Tanh).unwrap();
    let mut d = data();
    d.0[(20, 2)] = f64::NAN;
    let momentum = Inner::Sgd {
        lr: 0.1,
        momentum: 0.9,
        nesterov: false,
    };
    for inner in [Inner::sgd(0.3), momentum, Inner::adam(1e-2)] {
        let c = cfg(inner, Loss::Mse, Period::Steps(3), 0.0).with_eval_every(1000);
        let (s1, r1, _) = fit(&mlp, &c, &d, Engine::Host);
        let (s2, r2, _) = fit(&mlp, &c, &d, Engine::Seam);
        assert_eq!(r1.termination, Termination::Diverged, "{inner:?}");
        assert!(s2.theta.iter().all(|v| v.is_finite()));
        assert_same(&format!("NaN row {inner:?}"), (&s1, &r1), (&s2, &r2));
    }
}
