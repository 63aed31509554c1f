//! The iterative-linearisation [`Trainer`].

mod diverge;
mod evaluate;
mod steps;

use super::config::{Inner, Period, Schedule, TrainConfig};
use super::engine::FirstOrderEngine;
use super::eval_buffers::EvalBuffers;
use super::gather::HostBatch;
use super::inner::{gn_inner_step, spectral_inner_step};
use super::inner_sharded::gn_inner_step_sharded;
use super::loss::Loss;
use super::metrics::{Control, Divergence, DivergenceKind, Observer, Report, Termination, Timings};
use super::optim::OptState;
pub use super::state::{DataRef, TrainState};
use super::update::Spare;
use crate::data::Batcher;
use crate::dist::{Comm, Shard};
use crate::linearise::BatchLinearisation;
use crate::solve::{Form, Preconditioner};
use crate::{Error, Model, Real, Result};
use faer::{Mat, MatRef};
use std::time::Instant;

/// The buffers a host first-order step reuses: the gathered batch, the linearisation at θ̃ on
/// it (one forward trace for the JVP and the VJP) and the spare θ / optimiser buffers of the
/// fused update.
#[derive(Debug)]
struct HostStep<T: Real> {
    batch: HostBatch<T>,
    lin: BatchLinearisation<T>,
    spare: Spare<T>,
    /// The zero gradient of a rank that holds none of a batch's rows.
    zero: Vec<T>,
}

impl<T: Real> HostStep<T> {
    fn new() -> Self {
        Self {
            batch: HostBatch::new(),
            lin: BatchLinearisation::new(),
            spare: Spare::default(),
            zero: Vec::new(),
        }
    }
}

/// Trains a [`Model`] by iterative linearisation ([linearised
/// model](crate::maths#linearised-model)): an inner optimiser trains
/// `f_lin(x; θ) = f(x; θ̃) + J(x; θ̃)(θ − θ̃)`, and every `K` inner steps `θ̃ ← θ`.
///
/// A mini-batch step costs one forward pass at `θ̃` on the batch, kept as a trace
/// ([`BatchLinearisation`]) that serves one JVP with tangent `θ − θ̃` (for `f_lin`) and one
/// VJP (for the gradient); `J` is never formed. With `K = 1` this is exactly SGD. On the
/// host, a first-order step allocates nothing after the first.
///
/// ```no_run
/// # use itlin::{Mlp, Activation, Init, Model};
/// # use itlin::train::{Trainer, TrainConfig, Period, Inner, DataRef, Loss};
/// # fn main() -> itlin::Result<()> {
/// # let (x, y) = (faer::Mat::<f64>::zeros(8, 4), faer::Mat::<f64>::zeros(8, 2));
/// let mlp = Mlp::new(&[4, 16, 2], Activation::Tanh)?;
/// let theta0 = mlp.init::<f64>(Init::Standard, 0);
/// let cfg = TrainConfig::new()
///     .with_period(Period::Steps(10))
///     .with_inner(Inner::sgd(0.1))
///     .with_loss(Loss::Mse)
///     .with_steps(100);
/// let mut trainer = Trainer::new(&mlp, theta0, cfg)?;
/// let report = trainer.fit(DataRef::new(x.as_ref(), y.as_ref(), None), None, &mut ())?;
/// println!("{:?} after {} steps", report.termination, report.steps);
/// # Ok(()) }
/// ```
pub struct Trainer<'m, T: Real, M: Model<T>> {
    model: &'m M,
    cfg: TrainConfig,
    state: TrainState<T>,
    ntk0: Option<Mat<T>>,
    ntk_lin: Option<(u64, Mat<T>)>,
    engine: Option<Box<dyn FirstOrderEngine<T> + 'm>>,
    /// The engine holds the authoritative θ, θ̃ and optimiser state (inside `fit`).
    engine_live: bool,
    /// The host copies of θ, θ̃ and the optimiser state are behind the engine's.
    host_stale: bool,
    /// The reused buffers of the host first-order step.
    host: HostStep<T>,
    /// With a live engine: the step and θ of the last host copy known to be finite.
    last_good: Option<(u64, Vec<T>)>,
    /// The reused buffers of the evaluation's `f_lin` predictions.
    eval_buf: EvalBuffers<T>,
    /// The Nyström factor of the Gauss-Newton dual CG steps and the linearisation it was
    /// built at (`relinearisations`).
    nystrom: Option<(u64, crate::solve::NtkNystrom)>,
    /// The communicator and shards of a data-parallel run.
    dist: Option<Dist<'m>>,
}

/// A data-parallel run: this rank's communicator and the shards it holds.
#[derive(Clone, Copy)]
pub(super) struct Dist<'m> {
    pub(super) comm: &'m dyn Comm,
    pub(super) train: Shard,
    pub(super) test: Option<Shard>,
}

impl<'m, T: Real, M: Model<T>> Trainer<'m, T, M> {
    /// A trainer starting at `theta0` (`θ = θ̃ = θ₀`).
    ///
    /// # Errors
    /// [`Error::Config`] if the configuration is invalid or `θ₀` has the wrong length.
    pub fn new(model: &'m M, theta0: Vec<T>, cfg: TrainConfig) -> Result<Self> {
        if theta0.len() != model.n_params() {
            return Err(Error::config(format!(
                "initial θ has {} entries, the model has {} parameters",
                theta0.len(),
                model.n_params()
            )));
        }
        let damping = match cfg.inner {
            Inner::GaussNewton { damping, .. } => damping,
            _ => 0.0,
        };
        let state = TrainState {
            step: 0,
            theta: theta0.clone(),
            theta_tilde: theta0.clone(),
            theta0,
            opt: OptState::default(),
            batcher: None,
            n_train: 0,
            relinearisations: 0,
            since_relin: 0,
            damping,
            rejected: 0,
            seconds: 0.0,
            timings: Timings::default(),
        };
        Self::from_state(model, state, cfg)
    }

    /// A trainer continuing from a saved state (see [`super::checkpoint`]).
    ///
    /// # Errors
    /// [`Error::Config`] if the configuration is invalid or the state does not fit the model.
    pub fn from_state(model: &'m M, state: TrainState<T>, cfg: TrainConfig) -> Result<Self> {
        cfg.validate()?;
        let p = model.n_params();
        if state.theta.len() != p || state.theta_tilde.len() != p || state.theta0.len() != p {
            return Err(Error::config(format!(
                "the checkpoint holds θ of length {}, the model has {p} parameters",
                state.theta.len()
            )));
        }
        Ok(Self {
            model,
            cfg,
            state,
            ntk0: None,
            ntk_lin: None,
            engine: None,
            engine_live: false,
            host_stale: false,
            host: HostStep::new(),
            last_good: None,
            eval_buf: EvalBuffers::default(),
            nystrom: None,
            dist: None,
        })
    }

    /// Makes this trainer one rank of a data-parallel run over `comm` ([`crate::dist`]):
    /// [`fit`](Self::fit) is then given this rank's shard of the training set (`train`) and
    /// of the test set (`test`), and every rank must call it with the same configuration and
    /// initial state.
    ///
    /// All ranks draw the same global mini-batches (rows `0 … N−1` of the whole training
    /// set); each takes the gradient of the batch rows its shard holds, weighted by its share
    /// of the batch, and the gradients are summed (one all-reduce of a `P`-vector per step,
    /// [`crate::dist::sum`], which leaves the same bits on every rank), so every rank takes
    /// the same update, equal to the one-process update up to rounding. Losses and
    /// accuracies are evaluated per shard and summed; the probes (`lin_error`, kernel
    /// distances) and the divergence reference are computed by rank 0 on the first rows of
    /// its shard (the first rows of the data set when they fit in it) and shared. A stop
    /// asked by any rank's observer stops all ranks. Only rank 0 writes checkpoints.
    ///
    /// Supported inner optimisers: SGD and Adam, on the host or on an engine that takes
    /// data-parallel steps ([`FirstOrderEngine::step_sharded`], e.g. a
    /// [`BackendEngine`](super::BackendEngine) with a collective: the gradient is then summed
    /// where the engine computes, and θ stays there); Gauss-Newton (on the host) for
    /// MSE with [`Form::Cg`] (the dual system solved by CG over the shards: kernel products
    /// `J(Σ_r J_rᵀ v_r)`, one `P`-vector sum each, with the landmark preconditioner of
    /// [`Preconditioner::Nystrom`]'s rank; [`crate::solve::dual_cg_step_sharded`]), whose
    /// steps equal the one-process steps up to the CG's accuracy.
    pub fn with_comm(mut self, comm: &'m dyn Comm, train: Shard, test: Option<Shard>) -> Self {
        self.dist = Some(Dist { comm, train, test });
        self
    }

    /// Whether this trainer writes the run's files (rank 0, or not distributed).
    pub fn is_root(&self) -> bool {
        self.dist.is_none_or(|d| d.comm.rank() == 0)
    }

    /// Runs the SGD / Adam inner steps on `engine` (e.g. the GPU-resident
    /// `crate::kernels::cuda::ResidentEngine`) instead of on the host with the model.
    ///
    /// During [`fit`](Self::fit) the engine holds `θ`, `θ̃`, the optimiser state and the
    /// training set; the trainer copies them back ([`FirstOrderEngine::sync`]) before every
    /// evaluation and checkpoint and at the end, so metrics, checkpoints, [`state`](Self::state)
    /// and [`theta`](Self::theta) after `fit` are those of the host path (up to the engine's
    /// rounding). Evaluation, the probe NTKs and the Gauss-Newton / spectral inners keep using
    /// the model. If `fit` returns an error, the host state may be behind the engine's.
    pub fn with_engine(mut self, engine: Box<dyn FirstOrderEngine<T> + 'm>) -> Self {
        self.engine = Some(engine);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }
    /// The training state (θ, θ̃, optimiser, step, …).
    pub fn state(&self) -> &TrainState<T> {
        &self.state
    }
    /// Current parameters `θ`.
    pub fn theta(&self) -> &[T] {
        &self.state.theta
    }
    /// The linearisation point `θ̃`.
    pub fn theta_tilde(&self) -> &[T] {
        &self.state.theta_tilde
    }

    /// Predictions of the trained (linearised) model, `f_lin(X; θ)`, `N × C`.
    ///
    /// # Panics
    /// If `X` does not have the model's input width.
    #[track_caller]
    pub fn predict(&self, x: MatRef<'_, T>) -> Mat<T> {
        let v = self.delta();
        let (f0, jv) = self.model.jvp(&self.state.theta_tilde, x, &v);
        f0 + jv
    }

    /// `θ − θ̃`.
    fn delta(&self) -> Vec<T> {
        self.state
            .theta
            .iter()
            .zip(&self.state.theta_tilde)
            .map(|(&a, &b)| a - b)
            .collect()
    }

    fn lr_at(&self, step: u64) -> f64 {
        let base = self.cfg.inner.lr().unwrap_or(0.0);
        match self.cfg.schedule {
            Schedule::Constant => base,
            Schedule::Cosine => {
                let t = step as f64 / self.cfg.steps.max(1) as f64;
                base * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
            }
        }
    }

    fn relinearise(&mut self, obs: &mut dyn Observer) -> Result<()> {
        if self.engine_live {
            self.engine
                .as_mut()
                .expect("a live engine exists")
                .relinearise()?;
            self.host_stale = true;
        } else {
            self.state.theta_tilde.copy_from_slice(&self.state.theta);
        }
        self.state.relinearisations += 1;
        self.state.since_relin = 0;
        obs.on_relinearise(self.state.step, self.state.relinearisations);
        Ok(())
    }

    /// Brings the host's θ, θ̃ and optimiser state up to date with a live engine's.
    fn sync_engine(&mut self) -> Result<()> {
        if self.engine_live && self.host_stale {
            self.engine
                .as_mut()
                .expect("a live engine exists")
                .sync(&mut self.state)?;
            self.host_stale = false;
        }
        Ok(())
    }

    /// Checks a data-parallel run's set-up: the shards fit the data given and the inner
    /// optimiser runs data-parallel.
    fn check_dist(&self, d: &Dist<'_>, n_train: usize, n_test: Option<usize>) -> Result<()> {
        let fits = |s: Shard, n: usize| s.len == n && s.offset + s.len <= s.total;
        if !fits(d.train, n_train) {
            return Err(Error::data(format!(
                "rank {}: the training shard is rows {:?} of {} but {n_train} rows were given",
                d.comm.rank(),
                d.train.range(),
                d.train.total
            )));
        }
        match (d.test, n_test) {
            (Some(s), Some(n)) if !fits(s, n) => {
                return Err(Error::data(format!(
                    "rank {}: the test shard is rows {:?} of {} but {n} rows were given",
                    d.comm.rank(),
                    s.range(),
                    s.total
                )));
            }
            (None, Some(_)) => {
                return Err(Error::config(
                    "a data-parallel run with a test set needs its test shard (with_comm)",
                ));
            }
            _ => {}
        }
        match self.cfg.inner {
            Inner::Sgd { .. } | Inner::Adam { .. } => {}
            Inner::GaussNewton { .. } => {
                // uniform landmarks only: a Nyström rank, or no preconditioner for the others
                let solver = self.cfg.gn_solver;
                let greedy = matches!(
                    solver.preconditioner,
                    Preconditioner::PivotedCholesky { .. }
                );
                if self.cfg.loss != Loss::Mse || solver.form != Form::Cg || greedy {
                    return Err(Error::config(
                        "a data-parallel Gauss-Newton run solves the MSE dual system by CG over the shards: use --loss mse --gn-form cg with --precond nystrom:M (uniform landmarks) or none",
                    ));
                }
            }
            Inner::Spectral { .. } => {
                return Err(Error::config(
                    "a data-parallel run takes SGD, Adam or Gauss-Newton (MSE, CG) inner steps; --inner spectral runs on one process",
                ));
            }
        }
        Ok(())
    }

    /// Whether `mine` holds on any rank (one reduction in a data-parallel run).
    fn any_rank(&mut self, mine: bool) -> Result<bool> {
        match &self.dist {
            None => Ok(mine),
            Some(d) => {
                let t = Instant::now();
                let n = crate::dist::sum_scalar(d.comm, f64::from(u8::from(mine)))?;
                self.state.timings.comm += t.elapsed().as_secs_f64();
                Ok(n > 0.0)
            }
        }
    }

    fn due(&self) -> bool {
        match self.cfg.period {
            Period::Steps(k) => self.state.since_relin >= k,
            Period::Never => false,
        }
    }

    /// Trains until `cfg.steps` inner steps have been taken in total, evaluating every
    /// `eval_every` steps and at the end, checkpointing when configured.
    ///
    /// Stops early with [`Termination::Diverged`] and [`Report::divergence`] when an update
    /// would make the gradient, the step or θ non-finite (that update is not applied), or
    /// when an evaluation shows a non-finite loss or crosses the
    /// [`DivergenceRule`](super::DivergenceRule). θ stays finite: after a failed update it is
    /// the θ before it, and that state is evaluated (and passed to the observer) when its
    /// metrics are finite. An evaluation with a non-finite loss is not passed to the
    /// observer. No checkpoint is written after a divergence.
    ///
    /// # Errors
    /// [`Error::Data`] if the data do not fit the model (input width, output width, row
    /// counts) or the training set is empty; [`Error::OutOfMemory`] before the first step
    /// when a Gauss-Newton / spectral step would not fit the memory budget
    /// ([`inner_step_plan`](super::inner_step_plan)); checkpoint I/O errors; the errors of an engine
    /// ([`with_engine`](Self::with_engine), e.g. [`Error::Device`]).
    pub fn fit(
        &mut self,
        train: DataRef<'_, T>,
        test: Option<DataRef<'_, T>>,
        obs: &mut dyn Observer,
    ) -> Result<Report> {
        let (d, c) = (self.model.n_inputs(), self.model.n_outputs());
        train.check("training", d, c)?;
        if let Some(t) = &test {
            t.check("test", d, c)?;
        }
        if train.is_empty() {
            return Err(Error::data(match &self.dist {
                Some(d) => format!(
                    "rank {} holds no training rows; run on fewer ranks than the {} rows",
                    d.comm.rank(),
                    d.train.total
                ),
                None => "the training set is empty".into(),
            }));
        }
        let n_train = match &self.dist {
            None => train.len(),
            Some(d) => {
                self.check_dist(d, train.len(), test.map(|t| t.len()))?;
                d.train.total
            }
        };
        if self.cfg.loss == Loss::CrossEntropy && c < 2 {
            return Err(Error::config(
                "cross-entropy needs at least 2 outputs; use --loss mse for a single output",
            ));
        }
        if let Some(plan) =
            super::plan::inner_step_plan::<T>(&self.cfg, n_train, c, self.model.n_params())
        {
            plan.check(crate::memory::default_budget())?;
        }
        match &self.state.batcher {
            None => {
                self.state.batcher = Some(Batcher::new(n_train, self.cfg.batch, self.cfg.seed));
                self.state.n_train = n_train;
            }
            Some(_) if self.state.n_train != n_train => {
                return Err(Error::data(format!(
                    "the checkpoint was made with {} training rows, this data has {n_train}",
                    self.state.n_train,
                )));
            }
            Some(_) => {}
        }
        let first_order = matches!(self.cfg.inner, Inner::Sgd { .. } | Inner::Adam { .. });
        if let Some(engine) = self.engine.as_mut().filter(|_| first_order) {
            engine.begin(&self.cfg, &self.state, train)?;
            self.engine_live = true;
            self.host_stale = false;
            self.last_good = Some((self.state.step, self.state.theta.clone()));
        } else if first_order {
            let batch = self.state.batcher.as_ref().map_or(1, Batcher::batch_size);
            self.host.batch.prepare(train, batch);
        }
        let result = self.fit_loop(train, test, obs);
        let synced = self.sync_engine();
        self.engine_live = false;
        let report = result?;
        synced?;
        Ok(report)
    }

    /// The loop of [`fit`](Self::fit) (data checked, batcher and engine set up).
    fn fit_loop(
        &mut self,
        train: DataRef<'_, T>,
        test: Option<DataRef<'_, T>>,
        obs: &mut dyn Observer,
    ) -> Result<Report> {
        let start = Instant::now();
        let t0 = self.state.seconds;
        let guard = self.guard(train)?;
        let mut history = Vec::new();
        let mut termination = Termination::Completed;
        let mut divergence: Option<Divergence> = None;
        // a resumed state was evaluated when it was saved: do not repeat that evaluation
        let mut last_eval = if self.state.step > 0 {
            self.state.step
        } else {
            u64::MAX
        };
        while self.state.step < self.cfg.steps {
            if self.due() {
                let t = Instant::now();
                self.relinearise(obs)?;
                self.state.timings.update += t.elapsed().as_secs_f64();
            }
            // the quantity that became non-finite and its value (unknown on an engine)
            let failed: Option<(&str, Option<f64>)> = match self.cfg.inner {
                Inner::Sgd { .. } | Inner::Adam { .. } if self.engine_live => {
                    self.engine_step()?.then_some(("batch gradient", None))
                }
                Inner::Sgd { .. } | Inner::Adam { .. } => {
                    self.first_order_step(train)?.map(|(q, v)| (q, Some(v)))
                }
                Inner::GaussNewton { adaptive, .. } => {
                    let t = Instant::now();
                    let bad = match self.dist {
                        Some(d) => gn_inner_step_sharded(
                            d.comm,
                            d.train,
                            self.model,
                            &mut self.state,
                            &self.cfg,
                            train,
                            adaptive,
                        )?,
                        None => gn_inner_step(
                            self.model,
                            &mut self.state,
                            &self.cfg,
                            train,
                            adaptive,
                            &mut self.nystrom,
                        )?,
                    };
                    self.state.timings.solve += t.elapsed().as_secs_f64();
                    if bad.is_none() {
                        self.state.step += 1;
                        self.state.since_relin += 1;
                    }
                    bad.map(|(q, v)| (q, Some(v)))
                }
                Inner::Spectral { lr } => {
                    let t = Instant::now();
                    let bad =
                        spectral_inner_step(self.model, &mut self.state, &self.cfg, train, lr)?;
                    self.state.timings.solve += t.elapsed().as_secs_f64();
                    bad.map(|(q, v)| (q, Some(v)))
                }
            };
            obs.on_step(self.state.step, self.cfg.steps);
            if let Some((quantity, value)) = failed {
                divergence = Some(self.failed_update(quantity, value)?);
                break;
            }
            let at_end = self.state.step >= self.cfg.steps;
            if self.state.step.is_multiple_of(self.cfg.eval_every) || at_end {
                if let Some(d) = self.sync_checked()? {
                    divergence = Some(d);
                    break;
                }
                let m = self.evaluate(train, test, t0 + start.elapsed().as_secs_f64())?;
                last_eval = self.state.step;
                let verdict = guard.check(&m);
                if verdict
                    .as_ref()
                    .is_some_and(|d| d.kind == DivergenceKind::NonFinite)
                {
                    // a non-finite loss is no measurement: not passed on
                    divergence = verdict;
                    break;
                }
                let stop = self.any_rank(obs.on_eval(&m) == Control::Stop)?;
                history.push(m);
                if verdict.is_some() {
                    divergence = verdict;
                    break;
                }
                if stop {
                    termination = Termination::Stopped;
                    break;
                }
            }
            let step = self.state.step;
            let checkpoint_due = self
                .cfg
                .checkpoint
                .as_ref()
                .is_some_and(|ck| step.is_multiple_of(ck.every) || at_end);
            if checkpoint_due {
                let t = Instant::now();
                if let Some(d) = self.sync_checked()? {
                    divergence = Some(d);
                    break;
                }
                self.state.seconds = t0 + start.elapsed().as_secs_f64();
                let ck = self.cfg.checkpoint.as_ref().expect("checked above");
                if self.is_root() {
                    super::checkpoint::save(&ck.path, &self.state)?;
                }
                self.state.timings.checkpoint += t.elapsed().as_secs_f64();
            }
        }
        let kept_here = divergence
            .as_ref()
            .is_none_or(|d| d.kept_step == self.state.step);
        if last_eval != self.state.step && kept_here {
            // the end of the run, or the state kept after a failed update
            self.sync_engine()?;
            let m = self.evaluate(train, test, t0 + start.elapsed().as_secs_f64())?;
            let verdict = guard.check(&m);
            let finite = verdict
                .as_ref()
                .is_none_or(|d| d.kind != DivergenceKind::NonFinite);
            if divergence.is_none() {
                divergence = verdict;
            }
            if finite {
                obs.on_eval(&m);
                history.push(m);
            }
        }
        if divergence.is_some() {
            termination = Termination::Diverged;
        }
        self.state.seconds = t0 + start.elapsed().as_secs_f64();
        Ok(Report {
            termination,
            steps: self.state.step,
            relinearisations: self.state.relinearisations,
            history,
            seconds: self.state.seconds,
            timings: self.state.timings,
            rejected_steps: self.state.rejected,
            divergence,
        })
    }
}
