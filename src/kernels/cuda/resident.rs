//! [`ResidentEngine`]: the SGD / Adam inner steps of the trainer entirely on the GPU.
//!
//! `θ`, `θ̃`, the optimiser moments and the whole training set `(X, Y)` live in device memory
//! for the duration of [`Trainer::fit`](crate::train::Trainer::fit). One inner step on the
//! linearised model `f_lin(θ) = f(θ̃) + J(θ̃)(θ − θ̃)` is, on the backend's stream:
//!
//! 1. upload the `B` row indices (`u32`), gather `X_b`, `Y_b` ([`ops::gather_rows`]);
//! 2. `f_lin = f(X_b; θ̃) + J(X_b; θ̃)(θ − θ̃)` ([`mlp::jvp`], tangent `θ − θ̃` by
//!    [`ops::axpby`]; right after a re-linearisation only the forward [`mlp::trace`], whose
//!    layer inputs and `φ'` the VJP then reuses);
//! 3. `u = ∂L/∂f_lin` with the `1/B` of the mean ([`ops::loss_grad`]);
//! 4. `g = J(X_b; θ̃)ᵀ u` ([`mlp::vjp`], or [`mlp::vjp_with_trace`] on the trace of step 2);
//! 5. a non-finite flag over `g` ([`ops::nonfinite`]), then the weight decay and the optimiser
//!    update ([`ops::sgd_update`], [`ops::adam_update`]), which do nothing when the flag is set;
//! 6. download the flag (4 bytes): the only transfer to the host per step.
//!
//! The arithmetic of steps 3 and 5 follows the CPU's (`crate::loss::loss_gradient`,
//! `crate::train::OptState::update`) operation by operation, so with the same gradients the
//! updates agree bit for bit; the gradients themselves come from cuBLAS and differ from the
//! CPU's by rounding.
//!
//! The Gauss-Newton and spectral inners do not use the engine: they run with the
//! [`CudaMlp`](super::CudaMlp) model, which copies `θ` and the batch to the device per call.

use super::blas::CudaReal;
use super::context::{CudaBackend, dev_err};
use super::host::row_major;
use super::mlp as dmlp;
use super::ops::{self, AdamStep, DevicePtrDyn, SgdMode};
use crate::loss::Loss;
use crate::train::{DataRef, FirstOrderEngine, Inner, OptState, Timings, TrainConfig, TrainState};
use crate::{Error, Mlp, Model, Result};
use cudarc::driver::CudaSlice;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// The device buffers of one mini-batch size `B`: indices, `X_b` (`B × d`), `Y_b` (`B × C`),
/// the output cotangent `u` (`B × C`).
struct BatchBufs<T> {
    idx: CudaSlice<u32>,
    xb: CudaSlice<T>,
    yb: CudaSlice<T>,
    u: CudaSlice<T>,
}

/// Everything the engine holds during one `fit`.
struct Run<T> {
    inner: Inner,
    loss: Loss,
    weight_decay: f64,
    n: usize,
    d: usize,
    c: usize,
    x: CudaSlice<T>,
    y: CudaSlice<T>,
    theta: CudaSlice<T>,
    theta_tilde: CudaSlice<T>,
    /// SGD velocity or Adam's first moment (when the optimiser has one).
    m: Option<CudaSlice<T>>,
    /// Adam's second moment.
    v: Option<CudaSlice<T>>,
    /// Updates taken (`OptState::t`).
    t: u64,
    /// Whether the host state's moments exist (they did at `begin`, or an update was applied).
    moments_live: bool,
    tangent: CudaSlice<T>,
    flag: CudaSlice<u32>,
    batches: HashMap<usize, BatchBufs<T>>,
}

/// A [`FirstOrderEngine`] on a CUDA device for an [`Mlp`]: the whole first-order inner step
/// of the trainer (gather, JVP, loss gradient, VJP, weight decay, SGD / momentum / Nesterov /
/// Adam update) stays on the GPU; per step only the `B` row indices go up and a 4-byte
/// finiteness flag comes down.
///
/// One step, on the backend's stream: gather `X_b`, `Y_b` by the uploaded indices
/// ([`ops::gather_rows`]); `f_lin = f(X_b; θ̃) + J(X_b; θ̃)(θ − θ̃)` ([`mlp::jvp`](super::mlp::jvp); right
/// after a re-linearisation only the forward trace, reused by the VJP);
/// `u = ∂L/∂f_lin` with the `1/B` of the mean ([`ops::loss_grad`]); `g = J(X_b; θ̃)ᵀ u`
/// ([`mlp::vjp`](super::mlp::vjp)); a non-finite flag over `g` ([`ops::nonfinite`]); weight decay and the
/// update ([`ops::sgd_update`], [`ops::adam_update`]), skipped on the device when the flag is
/// set; the flag download. The loss gradient and the updates round every operation as the
/// CPU does (`crate::loss::loss_gradient`, [`OptState::update`]), so with equal gradients
/// the updates agree bit for bit; the gradients (cuBLAS) differ from the CPU's by rounding.
///
/// Relinearisation `θ̃ ← θ` is a device copy; [`FirstOrderEngine::sync`] downloads `θ`, `θ̃`
/// and the moments. The Gauss-Newton and spectral inners do not use the engine.
///
/// ```no_run
/// # #[cfg(feature = "cuda")] fn main() -> itlin::Result<()> {
/// use itlin::kernels::cuda::{CudaBackend, ResidentEngine};
/// use itlin::train::{DataRef, Inner, TrainConfig, Trainer};
/// use itlin::{Activation, Init, Mlp};
/// use std::sync::Arc;
/// # let (x, y) = (faer::Mat::<f32>::zeros(8, 4), faer::Mat::<f32>::zeros(8, 2));
/// let mlp = Mlp::new(&[4, 16, 2], Activation::Tanh)?;
/// let be = Arc::new(CudaBackend::new()?);
/// let engine = ResidentEngine::<f32>::new(mlp.clone(), be);
/// let cfg = TrainConfig::new().with_inner(Inner::adam(1e-3)).with_steps(100);
/// let mut trainer = Trainer::new(&mlp, mlp.init(Init::Standard, 0), cfg)?
///     .with_engine(Box::new(engine));
/// trainer.fit(DataRef::new(x.as_ref(), y.as_ref(), None), None, &mut ())?;
/// # Ok(()) }
/// # #[cfg(not(feature = "cuda"))] fn main() {}
/// ```
pub struct ResidentEngine<T: CudaReal> {
    be: Arc<CudaBackend>,
    mlp: Mlp,
    sync_phases: bool,
    run: Option<Run<T>>,
}

impl<T: CudaReal> std::fmt::Debug for ResidentEngine<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResidentEngine")
            .field("widths", &self.mlp.widths())
            .field("backend", &self.be)
            .field("sync_phases", &self.sync_phases)
            .field("running", &self.run.is_some())
            .finish()
    }
}

impl<T: CudaReal> ResidentEngine<T> {
    /// An engine for `mlp` on the device of `be` (nothing is allocated before
    /// [`FirstOrderEngine::begin`]).
    pub fn new(mlp: Mlp, be: Arc<CudaBackend>) -> Self {
        Self {
            be,
            mlp,
            sync_phases: false,
            run: None,
        }
    }

    /// When on, the engine waits for the device at the end of each phase of a step, so the
    /// `jvp`, `vjp` and `update` [`Timings`] are device times (the run gets slower: the host
    /// no longer queues the next phase while the device works). Off by default: the phases
    /// then record the time to queue their work, and the device time accrues where the
    /// host waits, at the flag download (`update`).
    pub fn with_sync_phases(mut self, on: bool) -> Self {
        self.sync_phases = on;
        self
    }

    /// The backend the engine runs on.
    pub fn backend(&self) -> &Arc<CudaBackend> {
        &self.be
    }

    fn run_mut(&mut self) -> Result<&mut Run<T>> {
        running(&mut self.run)
    }

    fn upload_or_zeros(&self, host: &[T], p: usize) -> Result<CudaSlice<T>> {
        if host.len() == p {
            self.be.upload(host)
        } else {
            self.be.zeros(p)
        }
    }
}

/// The state of the current run, or the error of an engine used before `begin`.
fn running<T>(run: &mut Option<Run<T>>) -> Result<&mut Run<T>> {
    run.as_mut()
        .ok_or_else(|| Error::Device("ResidentEngine: used before FirstOrderEngine::begin".into()))
}

impl<T: CudaReal> FirstOrderEngine<T> for ResidentEngine<T> {
    /// Uploads `θ`, `θ̃`, the optimiser moments (zeros when the state has none yet) and the
    /// training set (row-major), and keeps the optimiser settings of `cfg`.
    ///
    /// # Errors
    /// [`Error::Config`] when `cfg.inner` is not SGD or Adam; [`Error::Data`] when the data
    /// do not fit the MLP or have more than `u32::MAX` rows; [`Error::Device`] on allocation
    /// or copy failures (e.g. the training set does not fit in device memory).
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
                    "the GPU-resident engine runs SGD and Adam inner steps, not {}",
                    cfg.inner.name()
                )));
            }
        };
        let p = Model::<T>::n_params(&self.mlp);
        let (d, c) = (
            Model::<T>::n_inputs(&self.mlp),
            Model::<T>::n_outputs(&self.mlp),
        );
        let n = train.len();
        if train.x.ncols() != d || train.y.ncols() != c || train.y.nrows() != n || n == 0 {
            return Err(Error::data(format!(
                "ResidentEngine: training data {}×{} / {}×{} do not fit the MLP {:?}",
                train.x.nrows(),
                train.x.ncols(),
                train.y.nrows(),
                train.y.ncols(),
                self.mlp.widths()
            )));
        }
        if u32::try_from(n).is_err() {
            return Err(Error::data(format!(
                "ResidentEngine: {n} training rows exceed the 32-bit row indices"
            )));
        }
        if state.theta.len() != p || state.theta_tilde.len() != p {
            return Err(Error::config(format!(
                "ResidentEngine: θ has length {}, the MLP has {p} parameters",
                state.theta.len()
            )));
        }
        let OptState { m, v, t } = &state.opt;
        let run = Run {
            inner: cfg.inner,
            loss: cfg.loss,
            weight_decay: cfg.weight_decay,
            n,
            d,
            c,
            x: self.be.upload(&row_major(train.x))?,
            y: self.be.upload(&row_major(train.y))?,
            theta: self.be.upload(&state.theta)?,
            theta_tilde: self.be.upload(&state.theta_tilde)?,
            m: if uses_m {
                Some(self.upload_or_zeros(m, p)?)
            } else {
                None
            },
            v: if uses_v {
                Some(self.upload_or_zeros(v, p)?)
            } else {
                None
            },
            t: *t,
            moments_live: uses_m && m.len() == p,
            tangent: self.be.zeros(p)?,
            flag: self.be.zeros(1)?,
            batches: HashMap::new(),
        };
        self.run = Some(run);
        Ok(())
    }

    /// `θ̃ ← θ` as a device copy.
    fn relinearise(&mut self) -> Result<()> {
        let stream = self.be.stream().clone();
        let run = self.run_mut()?;
        stream
            .memcpy_dtod(&run.theta, &mut run.theta_tilde)
            .map_err(dev_err("ResidentEngine: copying θ to θ̃"))
    }

    /// One inner step on the device (see [`ResidentEngine`]).
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
        let Self {
            be,
            mlp,
            sync_phases,
            run,
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
        assert!(b > 0, "ResidentEngine::step: empty batch");
        let idx: Vec<u32> = rows
            .iter()
            .map(|&r| {
                assert!(
                    r < run.n,
                    "ResidentEngine::step: row {r} of a training set of {} rows",
                    run.n
                );
                r as u32
            })
            .collect();

        // 1–2: gather the batch, f_lin at θ̃
        let t = Instant::now();
        if !run.batches.contains_key(&b) {
            let bufs = BatchBufs {
                idx: be.zeros::<u32>(b)?,
                xb: be.zeros::<T>(b * run.d)?,
                yb: be.zeros::<T>(b * run.c)?,
                u: be.zeros::<T>(b * run.c)?,
            };
            run.batches.insert(b, bufs);
        }
        let bufs = run.batches.get_mut(&b).expect("inserted above");
        be.stream()
            .memcpy_htod(&idx, &mut bufs.idx)
            .map_err(dev_err("ResidentEngine: uploading the batch rows"))?;
        ops::gather_rows(be, &run.x, run.n, run.d, &bufs.idx, &mut bufs.xb)?;
        ops::gather_rows(be, &run.y, run.n, run.c, &bufs.idx, &mut bufs.yb)?;
        // One forward trace at θ̃ (with φ') serves both the JVP and the VJP below.
        let tr = dmlp::trace(be, mlp, &run.theta_tilde, &bufs.xb, b, true)?;
        let jv = if at_tilde {
            None
        } else {
            ops::axpby(
                be,
                T::one_impl(),
                &run.theta,
                -T::one_impl(),
                &run.theta_tilde,
                &mut run.tangent,
            )?;
            Some(dmlp::jvp_with_trace(
                be,
                mlp,
                &run.theta_tilde,
                &bufs.xb,
                &tr,
                &run.tangent,
            )?)
        };
        let f0 = tr.output_buf().get();
        let jv = jv.as_ref();
        phase_end()?;
        timings.jvp += t.elapsed().as_secs_f64();

        // 3–4: u = ∂L/∂f_lin, g = J(θ̃)ᵀ u
        let t = Instant::now();
        let inv_b = T::from_f64(1.0 / b as f64);
        ops::loss_grad(
            be,
            run.loss,
            f0,
            jv.map(|j| j as &dyn DevicePtrDyn<T>),
            &bufs.yb,
            b,
            run.c,
            inv_b,
            &mut bufs.u,
        )?;
        let grad = dmlp::vjp_with_trace(be, mlp, &run.theta_tilde, &bufs.xb, &tr, &bufs.u)?;
        phase_end()?;
        timings.vjp += t.elapsed().as_secs_f64();

        // 5–6: finiteness, weight decay and update (skipped on the device when not finite)
        let t = Instant::now();
        be.stream()
            .memset_zeros(&mut run.flag)
            .map_err(dev_err("ResidentEngine: clearing the flag"))?;
        ops::nonfinite(be, &grad, &mut run.flag)?;
        let wd = (run.weight_decay > 0.0).then(|| T::from_f64(run.weight_decay));
        match run.inner {
            Inner::Sgd {
                momentum, nesterov, ..
            } => {
                let mode = match (momentum != 0.0, nesterov) {
                    (false, _) => SgdMode::Plain,
                    (true, false) => SgdMode::Momentum,
                    (true, true) => SgdMode::Nesterov,
                };
                ops::sgd_update(
                    be,
                    &mut run.theta,
                    &grad,
                    run.m.as_mut(),
                    mode,
                    wd,
                    T::from_f64(lr),
                    T::from_f64(momentum),
                    &run.flag,
                )?;
            }
            Inner::Adam {
                beta1, beta2, eps, ..
            } => {
                let s = AdamStep::<T>::new(beta1, beta2, eps, lr, run.t + 1);
                let (m, v) = (
                    run.m.as_mut().expect("Adam has m"),
                    run.v.as_mut().expect("Adam has v"),
                );
                ops::adam_update(be, &mut run.theta, &grad, m, v, wd, s, &run.flag)?;
            }
            Inner::GaussNewton { .. } | Inner::Spectral { .. } => {
                unreachable!("begin accepts only SGD and Adam")
            }
        }
        let flag = be.download(&run.flag)?;
        let finite = flag.first() == Some(&0);
        if finite {
            run.t += 1;
            run.moments_live |= run.m.is_some();
        }
        timings.update += t.elapsed().as_secs_f64();
        Ok(finite)
    }

    /// Downloads `θ`, `θ̃`, and the moments when the host state has them (as the CPU path
    /// would: they appear with the first applied update), and sets the update count.
    fn sync(&mut self, state: &mut TrainState<T>) -> Result<()> {
        let be = self.be.clone();
        let run = self.run_mut()?;
        state.theta = be.download(&run.theta)?;
        state.theta_tilde = be.download(&run.theta_tilde)?;
        if run.moments_live {
            if let Some(m) = &run.m {
                state.opt.m = be.download(m)?;
            }
            if let Some(v) = &run.v {
                state.opt.v = be.download(v)?;
            }
        }
        state.opt.t = run.t;
        Ok(())
    }
}
