//! [`TrainConfig`]: every knob of the iterative-linearisation trainer, with documented defaults
//! and `with_*` builders.

use super::loss::Loss;
use crate::solve::{Form, Preconditioner};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How often the linearisation point `θ̃` is moved to the current `θ` (a "feature update").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Period {
    /// Re-linearise every `k ≥ 1` inner steps (`k = 1` is ordinary (S)GD).
    Steps(u64),
    /// Never re-linearise (`K = ∞`: the finite-width NTK / lazy regime).
    Never,
}

impl Period {
    /// `Some(k)` for [`Period::Steps`], `None` for [`Period::Never`].
    pub fn steps(self) -> Option<u64> {
        match self {
            Period::Steps(k) => Some(k),
            Period::Never => None,
        }
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Period::Steps(k) => write!(f, "{k}"),
            Period::Never => f.write_str("inf"),
        }
    }
}

impl std::str::FromStr for Period {
    type Err = Error;
    /// Parses `N` (a positive integer) or `inf` / `never` / `∞`.
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        if ["inf", "never", "∞", "infinity"]
            .iter()
            .any(|w| t.eq_ignore_ascii_case(w))
        {
            return Ok(Period::Never);
        }
        match t.parse::<u64>() {
            Ok(k) if k >= 1 => Ok(Period::Steps(k)),
            _ => Err(Error::config(format!(
                "period K (--k) must be a positive integer or 'inf', got '{s}'"
            ))),
        }
    }
}

/// The optimiser that trains the linearised model `f_lin` between feature updates.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Inner {
    /// Mini-batch SGD, `v ← μ v + g`, `θ ← θ − η v` (Nesterov: `θ ← θ − η (g + μ v)`).
    Sgd {
        /// Step size `η`.
        lr: f64,
        /// Momentum `μ ∈ [0, 1)` (0 = plain SGD).
        momentum: f64,
        /// Use Nesterov momentum.
        nesterov: bool,
    },
    /// Adam (Kingma & Ba) with bias correction.
    Adam {
        /// Step size `η`.
        lr: f64,
        /// First-moment decay `β₁`.
        beta1: f64,
        /// Second-moment decay `β₂`.
        beta2: f64,
        /// Denominator guard `ε`.
        eps: f64,
    },
    /// One damped Gauss-Newton step on `f_lin` per inner step, on a sampled subset of
    /// [`TrainConfig::gn_batch`] rows (or the full batch):
    /// `(JᵀHJ + NλI) δ = −Jᵀ g` with `J = J(θ̃)` and `H, g` at `f_lin(θ)`
    /// ([damped GN step](crate::maths#damped-gauss-newton-step)).
    GaussNewton {
        /// Damping `λ` (the initial one when `adaptive`).
        damping: f64,
        /// Levenberg-Marquardt adaptation: a step that does not lower the linearised loss
        /// on its subset is rejected and `λ ← 10λ`; an accepted step sets `λ ← λ/3`.
        adaptive: bool,
    },
    /// `K` full-batch gradient-descent steps of size `lr` on the linearised mean MSE in closed
    /// form ([`φ_K`](crate::maths#k-gradient-steps-in-closed-form)), on a subset of [`TrainConfig::gn_batch`] rows. One solve
    /// counts as `K` inner steps; MSE only.
    Spectral {
        /// Step size `η` of the equivalent gradient descent.
        lr: f64,
    },
}

impl Inner {
    /// Plain SGD with step size `lr` (no momentum).
    pub fn sgd(lr: f64) -> Self {
        Inner::Sgd {
            lr,
            momentum: 0.0,
            nesterov: false,
        }
    }
    /// Adam with step size `lr` and the usual `β₁ = 0.9, β₂ = 0.999, ε = 1e-8`.
    pub fn adam(lr: f64) -> Self {
        Inner::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
    /// Short name (`sgd`, `adam`, `gn`, `spectral`).
    pub fn name(&self) -> &'static str {
        match self {
            Inner::Sgd { .. } => "sgd",
            Inner::Adam { .. } => "adam",
            Inner::GaussNewton { .. } => "gn",
            Inner::Spectral { .. } => "spectral",
        }
    }
    /// The base learning rate (`None` for Gauss-Newton).
    pub fn lr(&self) -> Option<f64> {
        match *self {
            Inner::Sgd { lr, .. } | Inner::Adam { lr, .. } | Inner::Spectral { lr } => Some(lr),
            Inner::GaussNewton { .. } => None,
        }
    }
}

/// How the Gauss-Newton inner steps solve their damped system (see
/// [`GaussNewtonStep`](crate::solve::GaussNewtonStep)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GnSolver {
    /// The form ([`Form::Auto`] by default: primal, dense dual or CG by size).
    pub form: Form,
    /// The CG preconditioner (with [`Form::Cg`] only). A Nyström-type one
    /// ([`Preconditioner::Nystrom`], [`Preconditioner::PivotedCholesky`]) makes CG solve the
    /// dual system matrix-free; its factor is built once per linearisation when every
    /// training row is in each solve, else once per step.
    pub preconditioner: Preconditioner,
}

impl Default for GnSolver {
    fn default() -> Self {
        Self {
            form: Form::Auto,
            preconditioner: Preconditioner::Auto,
        }
    }
}

/// Learning-rate schedule over the whole run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Schedule {
    /// `η_t = η`.
    Constant,
    /// `η_t = η · (1 + cos(π t / T)) / 2` over the `T` steps of the run.
    Cosine,
}

impl std::str::FromStr for Schedule {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "constant" | "const" => Ok(Schedule::Constant),
            "cosine" | "cos" => Ok(Schedule::Cosine),
            _ => Err(Error::config(format!(
                "unknown schedule '{s}'; expected constant or cosine"
            ))),
        }
    }
}

/// When a run whose values are all finite still counts as diverged (non-finite gradients,
/// steps, parameters or losses always do). With `L_ref = max(L(θ₀), L(0))` — the mean
/// training loss at the start and that of the zero predictor (`ln C` for cross-entropy), on
/// the first ≤ 1024 training rows — an evaluation diverges when
///
/// - the training loss of `f_lin` exceeds `loss_factor · L_ref` (an optimiser that made the
///   loss `loss_factor` times worse than predicting nothing is not converging), or
/// - `‖θ − θ₀‖ > theta_factor · max(‖θ₀‖, 1)` (parameters so far from the start that the
///   linearised model is evaluated on rounding noise).
///
/// Defaults `loss_factor = 1e4`, `theta_factor = 1e6`; no run that learns comes near either.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DivergenceRule {
    /// The factor on `L_ref` (≥ 1).
    pub loss_factor: f64,
    /// The factor on `max(‖θ₀‖, 1)` (≥ 1).
    pub theta_factor: f64,
}

impl Default for DivergenceRule {
    fn default() -> Self {
        Self {
            loss_factor: 1e4,
            theta_factor: 1e6,
        }
    }
}

/// Where and how often to checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointConfig {
    /// The checkpoint file (written atomically: temporary file, fsync, rename).
    pub path: PathBuf,
    /// Write one every this many steps (and at the end of the run).
    pub every: u64,
}

/// Configuration of a [`Trainer`](super::Trainer) run. Build with [`TrainConfig::new`] (the
/// defaults below) and the `with_*` methods; [`TrainConfig::validate`] checks it.
///
/// | field | default |
/// |---|---|
/// | `period` | `Period::Steps(10)` |
/// | `inner` | `Inner::Sgd { lr: 0.05, momentum: 0.9, nesterov: false }` |
/// | `loss` | `Loss::CrossEntropy` |
/// | `weight_decay` | `0` |
/// | `schedule` | `Schedule::Constant` |
/// | `batch` | `128` |
/// | `steps` | `1000` |
/// | `gn_batch` | `None` (full batch) |
/// | `eval_every` | `100` (and always at the end) |
/// | `probe` | `32` (samples for linearisation error and kernel distance; 0 disables) |
/// | `kernel_distance` | `true` |
/// | `eval_max` | `None` (evaluate on the whole train and test sets) |
/// | `seed` | `0` (mini-batch order and subset sampling) |
/// | `checkpoint` | `None` |
/// | `divergence` | [`DivergenceRule::default`] (loss 1e4 × reference, ‖θ − θ₀‖ 1e6 × ‖θ₀‖) |
/// | `gn_solver` | [`GnSolver::default`] (`Form::Auto`, `Preconditioner::Auto`) |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Feature-update period `K`.
    pub period: Period,
    /// Inner optimiser on the linearised model.
    pub inner: Inner,
    /// Training loss (mean over samples).
    pub loss: Loss,
    /// L2 weight decay: adds `wd · θ` to the gradient (the gradient of `(wd/2)‖θ‖²`) of the
    /// SGD and Adam inner steps; the Gauss-Newton and spectral solves do not use it (their
    /// damping plays that role).
    pub weight_decay: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Mini-batch size of the SGD/Adam inner steps.
    pub batch: usize,
    /// Total number of inner steps.
    pub steps: u64,
    /// Rows per Gauss-Newton / spectral solve (`None` = the whole training set).
    pub gn_batch: Option<usize>,
    /// Evaluate every this many steps.
    pub eval_every: u64,
    /// Size of the probe subset (first rows of the training set).
    pub probe: usize,
    /// Measure kernel distances on the probe subset at each evaluation.
    pub kernel_distance: bool,
    /// Evaluate on at most this many rows of each set.
    pub eval_max: Option<usize>,
    /// Seed of the mini-batch order and of subset sampling.
    pub seed: u64,
    /// Periodic checkpoints.
    pub checkpoint: Option<CheckpointConfig>,
    /// When a finite run counts as diverged.
    #[serde(default)]
    pub divergence: DivergenceRule,
    /// How the Gauss-Newton inner steps solve their system.
    #[serde(default)]
    pub gn_solver: GnSolver,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl TrainConfig {
    /// The defaults of the table above.
    pub fn new() -> Self {
        Self {
            period: Period::Steps(10),
            inner: Inner::Sgd {
                lr: 0.05,
                momentum: 0.9,
                nesterov: false,
            },
            loss: Loss::CrossEntropy,
            weight_decay: 0.0,
            schedule: Schedule::Constant,
            batch: 128,
            steps: 1000,
            gn_batch: None,
            eval_every: 100,
            probe: 32,
            kernel_distance: true,
            eval_max: None,
            seed: 0,
            checkpoint: None,
            divergence: DivergenceRule::default(),
            gn_solver: GnSolver::default(),
        }
    }
    /// Sets the feature-update period.
    pub fn with_period(mut self, period: Period) -> Self {
        self.period = period;
        self
    }
    /// Sets the inner optimiser.
    pub fn with_inner(mut self, inner: Inner) -> Self {
        self.inner = inner;
        self
    }
    /// Sets the loss.
    pub fn with_loss(mut self, loss: Loss) -> Self {
        self.loss = loss;
        self
    }
    /// Sets the weight decay.
    pub fn with_weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = wd;
        self
    }
    /// Sets the learning-rate schedule.
    pub fn with_schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }
    /// Sets the mini-batch size.
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch;
        self
    }
    /// Sets the total number of inner steps.
    pub fn with_steps(mut self, steps: u64) -> Self {
        self.steps = steps;
        self
    }
    /// Sets the Gauss-Newton / spectral subset size (`None` = full batch).
    pub fn with_gn_batch(mut self, n: Option<usize>) -> Self {
        self.gn_batch = n;
        self
    }
    /// Sets the evaluation interval.
    pub fn with_eval_every(mut self, every: u64) -> Self {
        self.eval_every = every;
        self
    }
    /// Sets the probe size (0 disables linearisation error and kernel distance).
    pub fn with_probe(mut self, probe: usize) -> Self {
        self.probe = probe;
        self
    }
    /// Turns the kernel-distance measurement on or off.
    pub fn with_kernel_distance(mut self, on: bool) -> Self {
        self.kernel_distance = on;
        self
    }
    /// Caps the rows used for evaluation.
    pub fn with_eval_max(mut self, n: Option<usize>) -> Self {
        self.eval_max = n;
        self
    }
    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Checkpoints to `path` every `every` steps.
    pub fn with_checkpoint(mut self, path: impl Into<PathBuf>, every: u64) -> Self {
        self.checkpoint = Some(CheckpointConfig {
            path: path.into(),
            every,
        });
        self
    }

    /// Sets how the Gauss-Newton inner steps solve their system.
    pub fn with_gn_solver(mut self, solver: GnSolver) -> Self {
        self.gn_solver = solver;
        self
    }

    /// Sets the divergence rule.
    pub fn with_divergence(mut self, rule: DivergenceRule) -> Self {
        self.divergence = rule;
        self
    }

    /// Checks every value.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        let pos = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::config(format!("{name} must be positive, got {v}")))
            }
        };
        if let Period::Steps(0) = self.period {
            return Err(Error::config("period K must be at least 1"));
        }
        match self.inner {
            Inner::Sgd { lr, momentum, .. } => {
                pos("learning rate", lr)?;
                if !(0.0..1.0).contains(&momentum) {
                    return Err(Error::config(format!(
                        "momentum must be in [0, 1), got {momentum}"
                    )));
                }
            }
            Inner::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => {
                pos("learning rate", lr)?;
                pos("Adam eps", eps)?;
                if !((0.0..1.0).contains(&beta1) && (0.0..1.0).contains(&beta2)) {
                    return Err(Error::config(format!(
                        "Adam betas must be in [0, 1), got {beta1}, {beta2}"
                    )));
                }
            }
            Inner::GaussNewton { damping, .. } => pos("damping", damping)?,
            Inner::Spectral { lr } => {
                pos("learning rate", lr)?;
                if self.loss != Loss::Mse {
                    return Err(Error::config(
                        "the spectral inner solver is the closed form of gradient descent on MSE; use --loss mse",
                    ));
                }
            }
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::config(format!(
                "weight decay must be ≥ 0, got {}",
                self.weight_decay
            )));
        }
        if self.batch == 0 {
            return Err(Error::config("batch size must be at least 1"));
        }
        if self.eval_every == 0 {
            return Err(Error::config("eval interval must be at least 1"));
        }
        if self.gn_solver.preconditioner != Preconditioner::Auto && self.gn_solver.form != Form::Cg
        {
            return Err(Error::config(format!(
                "the preconditioner {} applies to the CG form only (--gn-form cg)",
                self.gn_solver.preconditioner
            )));
        }
        if self.gn_batch == Some(0) {
            return Err(Error::config("GN batch must be at least 1"));
        }
        let DivergenceRule {
            loss_factor,
            theta_factor,
        } = self.divergence;
        let ok = |v: f64| v.is_finite() && v >= 1.0;
        if !(ok(loss_factor) && ok(theta_factor)) {
            return Err(Error::config(format!(
                "divergence factors must be finite and ≥ 1, got {loss_factor} and {theta_factor}"
            )));
        }
        if let Some(c) = &self.checkpoint
            && c.every == 0
        {
            return Err(Error::config("checkpoint interval must be at least 1"));
        }
        Ok(())
    }
}
