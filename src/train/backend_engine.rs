//! [`BackendEngine`]: the trainer's first-order inner step of an [`Mlp`], written once over
//! the [`Backend`] seam and resident on the backend's device.
//!
//! See [`BackendEngine`].

use super::config::{Inner, TrainConfig};
use super::engine::FirstOrderEngine;
use super::metrics::Timings;
use super::state::{DataRef, TrainState};
use crate::backend::{self, AdamStep, Backend, Collective, SgdMode, Update};
use crate::loss::Loss;
use crate::model::{Trace, Workspace};
use crate::{Error, Mlp, Model, Real, Result};
use std::sync::Arc;
use std::time::Instant;

/// Everything the engine holds during one `fit`.
struct Run<T: Real, B: Backend<T>> {
    inner: Inner,
    loss: Loss,
    weight_decay: f64,
    n: usize,
    d: usize,
    c: usize,
    x: B::Buf,
    y: B::Buf,
    theta: B::Buf,
    theta_tilde: B::Buf,
    /// SGD velocity or Adam's first moment (when the optimiser has one).
    m: Option<B::Buf>,
    /// Adam's second moment.
    v: Option<B::Buf>,
    /// Updates taken (`OptState::t`).
    t: u64,
    /// Whether the host state's moments exist (they did at `begin`, or an update was applied).
    moments_live: bool,
    tangent: B::Buf,
    rows: B::Rows,
    xb: B::Buf,
    yb: B::Buf,
    trace: Trace<T, B>,
    ws: Workspace<T, B>,
    /// `J v`, then `∂L/∂f_lin` (`B × C`).
    u: B::Buf,
    /// `f_lin` (`B × C`) away from θ̃ (at θ̃ it is the trace's output).
    flin: B::Buf,
    grad: B::Buf,
    /// The weighted gradient summed across ranks (data-parallel steps only).
    gsum: B::Buf,
    flag: B::Flag,
    scratch: Vec<f64>,
    /// Zeros for the gradient of a rank without rows in a batch (data-parallel steps only).
    zeros: Vec<T>,
}

/// A [`FirstOrderEngine`] for an [`Mlp`] on any [`Backend`]: the whole first-order inner
/// step runs where the backend computes; per step only the `B` row indices go in and a
/// finiteness flag comes out.
///
/// `θ`, `θ̃`, the optimiser moments and the whole training set `(X, Y)` live in the
/// backend's memory for the duration of [`Trainer::fit`](super::Trainer::fit). One inner step
/// on the linearised model `f_lin(θ) = f(θ̃) + J(θ̃)(θ − θ̃)`:
///
/// 1. store the `B` row indices, gather `X_b`, `Y_b` ([`Backend::gather_rows`]);
/// 2. one forward trace at θ̃ on `X_b` ([`Mlp::trace_on`]) keeping `φ'`, then
///    `f_lin = f(X_b; θ̃) + J(X_b; θ̃)(θ − θ̃)` (tangent `θ − θ̃` by [`Backend::axpby`], one JVP
///    on the trace, [`Mlp::jvp_on`]); right after a re-linearisation `f_lin = f(X_b; θ̃)`;
/// 3. `u = ∂L/∂f_lin` of the mean loss over the batch ([`Backend::loss_grad`]);
/// 4. `g = J(X_b; θ̃)ᵀ u`, one VJP on the same trace ([`Mlp::vjp_on`]);
/// 5. when `g` is finite, weight decay and the SGD / momentum / Nesterov / Adam update
///    ([`Backend::update`]); the finiteness flag is the only value that comes back (4 bytes
///    from a GPU).
///
/// On the CPU ([`crate::backend::Cpu`]) the engine takes the trainer's host step bit for bit;
/// with the `cuda` feature, `kernels::cuda::ResidentEngine` is this engine on the GPU. Buffers
/// are sized on the first step of a batch size and reused after it.
pub struct BackendEngine<T: Real, B: Backend<T>> {
    be: Arc<B>,
    mlp: Mlp,
    sync_phases: bool,
    run: Option<Run<T, B>>,
    collective: Option<Arc<dyn Collective<T, B>>>,
}

impl<T: Real, B: Backend<T>> std::fmt::Debug for BackendEngine<T, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendEngine")
            .field("widths", &self.mlp.widths())
            .field("sync_phases", &self.sync_phases)
            .field("running", &self.run.is_some())
            .finish_non_exhaustive()
    }
}

impl<T: Real, B: Backend<T>> BackendEngine<T, B> {
    /// An engine for `mlp` on the backend `be` (nothing is allocated before
    /// [`FirstOrderEngine::begin`]).
    pub fn new(mlp: Mlp, be: Arc<B>) -> Self {
        Self {
            be,
            mlp,
            sync_phases: false,
            run: None,
            collective: None,
        }
    }

    /// Lets the engine take data-parallel steps ([`FirstOrderEngine::step_sharded`]): the
    /// weighted gradient is summed across ranks by `collective`
    /// ([`HostStaged`](crate::backend::HostStaged) through the host, or NCCL on GPUs) before
    /// the update, so θ and the optimiser state stay on the device and identical on every
    /// rank.
    pub fn with_collective(mut self, collective: Arc<dyn Collective<T, B>>) -> Self {
        self.collective = Some(collective);
        self
    }

    /// When on, the engine waits for the backend at the end of each phase of a step
    /// ([`Backend::synchronize`]), so the `jvp`, `vjp` and `update` [`Timings`] are device
    /// times (the run gets slower: the host no longer queues the next phase while the device
    /// works). Off by default: on a GPU the phases then record the time to queue their work,
    /// and the device time accrues where the host waits, at the flag (`update`).
    pub fn with_sync_phases(mut self, on: bool) -> Self {
        self.sync_phases = on;
        self
    }

    /// The backend the engine runs on.
    pub fn backend(&self) -> &Arc<B> {
        &self.be
    }

    /// The MLP the engine trains.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    fn moment(&self, host: &[T], p: usize) -> Result<B::Buf> {
        if host.len() == p {
            self.be.upload(host)
        } else {
            self.be.upload(&vec![T::zero_impl(); p])
        }
    }

    /// The step of [`FirstOrderEngine::step`] (`share = None`) and of
    /// [`FirstOrderEngine::step_sharded`] (`share = Some(|rows| / B)`, `rows` possibly empty).
    fn take_step(
        &mut self,
        rows: &[usize],
        share: Option<f64>,
        lr: f64,
        at_tilde: bool,
        timings: &mut Timings,
    ) -> Result<bool> {
        let Self {
            be,
            mlp,
            sync_phases,
            run,
            collective,
        } = self;
        let (be, mlp, sync_phases) = (&**be, &*mlp, *sync_phases);
        let phase_end = || -> Result<()> {
            if sync_phases {
                be.synchronize()?;
            }
            Ok(())
        };
        let run = running(run)?;
        let b = rows.len();
        if let Some(&r) = rows.iter().find(|&&r| r >= run.n) {
            panic!("engine step: row {r} of a training set of {} rows", run.n);
        }
        let (d, c) = (run.d, run.c);
        let p = B::buf_len(&run.theta);
        if b == 0 {
            // a rank without rows in this batch: its share of the gradient is zero
            run.zeros.resize(p, T::zero_impl());
            be.resize(&mut run.grad, p)?;
            be.upload_into(&run.zeros, backend::all_mut::<T, B>(&mut run.grad))?;
        } else {
            // 1–2: gather the batch, one trace at θ̃, f_lin
            let t = Instant::now();
            be.set_rows(rows, &mut run.rows)?;
            be.resize(&mut run.xb, b * d)?;
            be.resize(&mut run.yb, b * c)?;
            let xs = backend::all::<T, B>(&run.x);
            be.gather_rows(backend::all_mut::<T, B>(&mut run.xb), &xs, d, &run.rows)?;
            let ys = backend::all::<T, B>(&run.y);
            be.gather_rows(backend::all_mut::<T, B>(&mut run.yb), &ys, c, &run.rows)?;
            let th_tilde = backend::all::<T, B>(&run.theta_tilde);
            let xb = B::mat(backend::all::<T, B>(&run.xb), b, d);
            mlp.trace_on(be, &th_tilde, &xb, &mut run.trace, true)?;
            be.resize(&mut run.u, b * c)?;
            // Sized on every step, so that the first step (at θ̃) already holds the buffer.
            be.resize(&mut run.flin, b * c)?;
            let f0 = backend::all::<T, B>(run.trace.output_buf());
            // At θ̃, f_lin is the trace's output itself (read in place below).
            if !at_tilde {
                let th = backend::all::<T, B>(&run.theta);
                let tangent = backend::all_mut::<T, B>(&mut run.tangent);
                be.axpby(tangent, T::one_impl(), &th, -T::one_impl(), &th_tilde)?;
                let v = backend::all::<T, B>(&run.tangent);
                let jv = backend::all_mut::<T, B>(&mut run.u);
                mlp.jvp_on(be, &th_tilde, &xb, &run.trace, &v, jv, &mut run.ws)?;
                let jv = backend::all::<T, B>(&run.u);
                let flin = backend::all_mut::<T, B>(&mut run.flin);
                be.axpby(flin, T::one_impl(), &f0, T::one_impl(), &jv)?;
            }
            phase_end()?;
            timings.jvp += t.elapsed().as_secs_f64();

            // 3–4: u = ∂L/∂f_lin, g = J(θ̃)ᵀ u
            let t = Instant::now();
            let flin = if at_tilde {
                B::mat(f0, b, c)
            } else {
                B::mat(backend::all::<T, B>(&run.flin), b, c)
            };
            let yb = B::mat(backend::all::<T, B>(&run.yb), b, c);
            let u = B::mat_mut(backend::all_mut::<T, B>(&mut run.u), b, c);
            be.loss_grad(u, run.loss, &flin, &yb, &mut run.scratch)?;
            be.resize(&mut run.grad, p)?;
            let u = B::mat(backend::all::<T, B>(&run.u), b, c);
            let grad = backend::all_mut::<T, B>(&mut run.grad);
            mlp.vjp_on(be, &th_tilde, &xb, &run.trace, &u, grad, &mut run.ws)?;
            phase_end()?;
            timings.vjp += t.elapsed().as_secs_f64();
        }

        // data-parallel: share · g, summed across ranks
        let grad = match (share, collective.as_ref()) {
            (Some(share), Some(coll)) => {
                let t = Instant::now();
                be.resize(&mut run.gsum, p)?;
                let g = backend::all::<T, B>(&run.grad);
                let out = backend::all_mut::<T, B>(&mut run.gsum);
                be.axpby(out, T::from_f64(share), &g, T::zero_impl(), &g)?;
                coll.sum(be, &mut run.gsum)?;
                timings.comm += t.elapsed().as_secs_f64();
                &mut run.gsum
            }
            _ => &mut run.grad,
        };

        // 5: finiteness, weight decay and the update (nothing changes when not finite)
        let t = Instant::now();
        let wd = (run.weight_decay > 0.0).then(|| T::from_f64(run.weight_decay));
        let rule = rule::<T>(&run.inner, lr, run.t + 1);
        let finite = be.update(
            backend::all_mut::<T, B>(&mut run.theta),
            backend::all_mut::<T, B>(grad),
            run.m.as_mut().map(|m| backend::all_mut::<T, B>(m)),
            run.v.as_mut().map(|v| backend::all_mut::<T, B>(v)),
            rule,
            wd,
            &mut run.flag,
        )?;
        if finite {
            run.t += 1;
            run.moments_live |= run.m.is_some();
        }
        timings.update += t.elapsed().as_secs_f64();
        Ok(finite)
    }
}

/// The state of the current run, or the error of an engine used before `begin`.
fn running<T: Real, B: Backend<T>>(run: &mut Option<Run<T, B>>) -> Result<&mut Run<T, B>> {
    run.as_mut()
        .ok_or_else(|| Error::Device("engine used before FirstOrderEngine::begin".into()))
}

/// The update rule of `inner` at update number `t` (1-based) with step size `lr`.
fn rule<T: Real>(inner: &Inner, lr: f64, t: u64) -> Update<T> {
    match *inner {
        Inner::Sgd {
            momentum, nesterov, ..
        } => Update::Sgd {
            mode: match (momentum != 0.0, nesterov) {
                (false, _) => SgdMode::Plain,
                (true, false) => SgdMode::Momentum,
                (true, true) => SgdMode::Nesterov,
            },
            eta: T::from_f64(lr),
            mu: T::from_f64(momentum),
        },
        Inner::Adam {
            beta1, beta2, eps, ..
        } => Update::Adam(AdamStep::new(beta1, beta2, eps, lr, t)),
        Inner::GaussNewton { .. } | Inner::Spectral { .. } => {
            unreachable!("begin accepts only SGD and Adam")
        }
    }
}

impl<T: Real, B: Backend<T> + Send> FirstOrderEngine<T> for BackendEngine<T, B> {
    /// Copies `θ`, `θ̃`, the optimiser moments (zeros when the state has none yet) and the
    /// training set (row-major) to the backend, and keeps the optimiser settings of `cfg`.
    ///
    /// # Errors
    /// [`Error::Config`] when `cfg.inner` is not SGD or Adam or θ does not fit the MLP;
    /// [`Error::Data`] when the data do not fit the MLP; [`Error::Device`] on allocation or
    /// copy failures (e.g. the training set does not fit in device memory).
    fn begin(
        &mut self,
        cfg: &TrainConfig,
        state: &TrainState<T>,
        train: DataRef<'_, T>,
    ) -> Result<()> {
        self.run = None;
        let (uses_m, uses_v) = match cfg.inner {
            Inner::Sgd { momentum, .. } => (momentum != 0.0, false),
            Inner::Adam { .. } => (true, true),
            _ => {
                return Err(Error::config(format!(
                    "the resident engine runs SGD and Adam inner steps, not {}",
                    cfg.inner.name()
                )));
            }
        };
        let mlp = &self.mlp;
        let p = Model::<T>::n_params(mlp);
        let (d, c) = (Model::<T>::n_inputs(mlp), Model::<T>::n_outputs(mlp));
        let n = train.len();
        if train.x.ncols() != d || train.y.ncols() != c || train.y.nrows() != n || n == 0 {
            return Err(Error::data(format!(
                "engine: training data {}×{} / {}×{} do not fit the MLP {:?}",
                train.x.nrows(),
                train.x.ncols(),
                train.y.nrows(),
                train.y.ncols(),
                mlp.widths()
            )));
        }
        if state.theta.len() != p || state.theta_tilde.len() != p {
            return Err(Error::config(format!(
                "engine: θ has length {}, the MLP has {p} parameters",
                state.theta.len()
            )));
        }
        let be = &*self.be;
        let opt = &state.opt;
        let m = if uses_m {
            Some(self.moment(&opt.m, p)?)
        } else {
            None
        };
        let v = if uses_v {
            Some(self.moment(&opt.v, p)?)
        } else {
            None
        };
        let mut tangent = B::Buf::default();
        be.resize(&mut tangent, p)?;
        self.run = Some(Run {
            inner: cfg.inner,
            loss: cfg.loss,
            weight_decay: cfg.weight_decay,
            n,
            d,
            c,
            x: be.upload_mat(train.x)?,
            y: be.upload_mat(train.y)?,
            theta: be.upload(&state.theta)?,
            theta_tilde: be.upload(&state.theta_tilde)?,
            m,
            v,
            t: opt.t,
            moments_live: uses_m && opt.m.len() == p,
            tangent,
            rows: B::Rows::default(),
            xb: B::Buf::default(),
            yb: B::Buf::default(),
            trace: Trace::new(),
            ws: Workspace::new(),
            u: B::Buf::default(),
            flin: B::Buf::default(),
            grad: B::Buf::default(),
            gsum: B::Buf::default(),
            flag: B::Flag::default(),
            scratch: Vec::new(),
            zeros: Vec::new(),
        });
        Ok(())
    }

    /// `θ̃ ← θ`, a copy on the backend.
    fn relinearise(&mut self) -> Result<()> {
        let be = self.be.clone();
        let run = running(&mut self.run)?;
        let src = backend::all::<T, B>(&run.theta);
        be.copy_slice(backend::all_mut::<T, B>(&mut run.theta_tilde), &src)
    }

    /// One inner step (see [`BackendEngine`]).
    ///
    /// # Panics
    /// If `rows` is empty or holds an index `≥ N` (the trainer's batcher never does).
    fn step(
        &mut self,
        rows: &[usize],
        lr: f64,
        at_tilde: bool,
        timings: &mut Timings,
    ) -> Result<bool> {
        assert!(!rows.is_empty(), "engine step: empty batch");
        self.take_step(rows, None, lr, at_tilde, timings)
    }

    /// One data-parallel inner step (see [`FirstOrderEngine::step_sharded`]); needs a
    /// collective ([`with_collective`](BackendEngine::with_collective)).
    ///
    /// # Panics
    /// If `rows` holds an index `≥ N` (this rank's shard).
    fn step_sharded(
        &mut self,
        rows: &[usize],
        share: f64,
        lr: f64,
        at_tilde: bool,
        timings: &mut Timings,
    ) -> Result<bool> {
        if self.collective.is_none() {
            return Err(Error::config(
                "the engine has no collective to sum its gradients across ranks (with_collective)",
            ));
        }
        self.take_step(rows, Some(share), lr, at_tilde, timings)
    }

    /// Copies `θ`, `θ̃`, and the moments when the host state has them (as the host path
    /// would: they appear with the first applied update) back, and sets the update count.
    fn sync(&mut self, state: &mut TrainState<T>) -> Result<()> {
        let be = self.be.clone();
        let run = running(&mut self.run)?;
        let p = B::buf_len(&run.theta);
        let get = |buf: &B::Buf| -> Result<Vec<T>> {
            let mut out = vec![T::zero_impl(); p];
            be.download(buf, 0..p, &mut out)?;
            Ok(out)
        };
        state.theta = get(&run.theta)?;
        state.theta_tilde = get(&run.theta_tilde)?;
        if run.moments_live {
            if let Some(m) = &run.m {
                state.opt.m = get(m)?;
            }
            if let Some(v) = &run.v {
                state.opt.v = get(v)?;
            }
        }
        state.opt.t = run.t;
        Ok(())
    }
}
