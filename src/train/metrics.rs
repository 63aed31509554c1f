//! What the trainer measures ([`Metrics`], [`Timings`]), how a user watches it
//! ([`Observer`]) and what a run returns ([`Report`]).

use serde::{Deserialize, Serialize};

/// Wall time (seconds) spent in each phase of training, accumulated over the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Forward passes and JVPs at `θ̃` (`f(x; θ̃)` and `J(θ − θ̃)`).
    pub jvp: f64,
    /// VJPs at `θ̃` (`Jᵀ ∂L/∂f`).
    pub vjp: f64,
    /// Optimiser updates, re-linearisations and batch gathering.
    pub update: f64,
    /// Gauss-Newton and spectral solves.
    pub solve: f64,
    /// Evaluation (losses, accuracies, probe NTKs).
    pub eval: f64,
    /// Writing checkpoints.
    pub checkpoint: f64,
    /// Collectives of a data-parallel run (gradient sums, reductions of the metrics),
    /// including the wait for the slowest rank.
    #[serde(default)]
    pub comm: f64,
}

impl Timings {
    /// Sum of all phases.
    pub fn total(&self) -> f64 {
        self.jvp + self.vjp + self.update + self.solve + self.eval + self.checkpoint + self.comm
    }
}

/// One evaluation. Losses and accuracies are those of the trained model, the linearisation
/// `f_lin(x; θ) = f(x; θ̃) + J(x; θ̃)(θ − θ̃)`; the `net_*` fields are those of the network
/// `f(x; θ)` itself (equal to the former right after a re-linearisation).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Inner steps taken.
    pub step: u64,
    /// Passes over the training set (`step · batch / N`, fractional).
    pub epoch: f64,
    /// Re-linearisations (feature updates) so far.
    pub relinearisations: u64,
    /// Mean training loss of `f_lin`.
    pub train_loss: f64,
    /// Training accuracy of `f_lin` (classification only).
    pub train_acc: Option<f64>,
    /// Mean test loss of `f_lin` (when a test set is given).
    pub test_loss: Option<f64>,
    /// Test accuracy of `f_lin`.
    pub test_acc: Option<f64>,
    /// Mean test loss of the network `f(θ)`.
    pub net_test_loss: Option<f64>,
    /// Test accuracy of the network `f(θ)`.
    pub net_test_acc: Option<f64>,
    /// `‖θ − θ₀‖₂`.
    pub dist_init: f64,
    /// `‖θ − θ̃‖₂`.
    pub dist_lin: f64,
    /// Linearisation error on the probe subset: `‖f(θ) − f_lin(θ)‖_F / √N_probe`.
    pub lin_error: Option<f64>,
    /// Kernel distance `d(Θ(θ₀), Θ(θ))` on the probe subset
    /// ([kernel distance](crate::maths#kernel-distance)).
    pub kernel_distance: Option<f64>,
    /// Kernel distance `d(Θ(θ̃), Θ(θ))` to the current linearisation point.
    pub kernel_distance_lin: Option<f64>,
    /// Kernel distance `d(Θ(θ₀), Θ(θ̃))`: how far the features of the trained model
    /// `f_lin` (its tangent kernel is `Θ(θ̃)`) have moved from initialisation (0 for `K = ∞`).
    pub kernel_distance_features: Option<f64>,
    /// Learning rate in force (first-order and spectral inners).
    pub lr: Option<f64>,
    /// Damping in force (Gauss-Newton inner).
    pub damping: Option<f64>,
    /// Wall time since the run started (including time before a resume).
    pub seconds: f64,
    /// Time per phase so far.
    pub timings: Timings,
}

/// What an [`Observer`] asks the trainer to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Keep training.
    Continue,
    /// Stop after this evaluation (the report says [`Termination::Stopped`]).
    Stop,
}

/// Callbacks during [`Trainer::fit`](super::Trainer::fit). Every method has a no-op default.
pub trait Observer {
    /// After each inner step (`step` steps done out of `total`).
    fn on_step(&mut self, _step: u64, _total: u64) {}
    /// After each re-linearisation (`count` so far, at `step`).
    fn on_relinearise(&mut self, _step: u64, _count: u64) {}
    /// After each evaluation; return [`Control::Stop`] to end the run early.
    fn on_eval(&mut self, _metrics: &Metrics) -> Control {
        Control::Continue
    }
}

/// The observer that does nothing.
impl Observer for () {}

/// An observer calling a closure on each evaluation.
pub struct OnEval<F>(pub F);

impl<F: FnMut(&Metrics)> Observer for OnEval<F> {
    fn on_eval(&mut self, metrics: &Metrics) -> Control {
        (self.0)(metrics);
        Control::Continue
    }
}

/// Why a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Termination {
    /// All configured steps were taken.
    Completed,
    /// An observer returned [`Control::Stop`].
    Stopped,
    /// Training diverged and stopped there; [`Report::divergence`] says where, what and
    /// why (see [`DivergenceRule`](super::DivergenceRule)).
    Diverged,
}

/// How a run diverged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DivergenceKind {
    /// A value became infinite or NaN.
    NonFinite,
    /// A finite value crossed the limit of the [`DivergenceRule`](super::DivergenceRule).
    Exploded,
}

/// Where, what and why a run diverged; the θ the trainer keeps is finite (that of
/// `kept_step`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    /// The inner step at which it was detected, numbered from 1: the step whose update
    /// failed (for a spectral solve, the first of its `K` steps), or the step of the
    /// evaluation that showed it.
    pub step: u64,
    /// Non-finite or exploded.
    pub kind: DivergenceKind,
    /// What was measured: `batch gradient`, `θ after the update`, `Gauss-Newton step δ`,
    /// `spectral step δ`, `train loss`, `‖θ − θ₀‖`, ….
    pub quantity: String,
    /// Its value (in JSON a number, or the text `inf`, `-inf`, `NaN`); `None` when only
    /// its non-finiteness is known (an engine reports a flag, not the value).
    #[serde(with = "f64_or_text")]
    pub value: Option<f64>,
    /// The limit it crossed (exploded values).
    pub limit: Option<f64>,
    /// The step whose θ is kept (the last finite one; for a failed update the step before).
    pub kept_step: u64,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.kind, self.limit, self.value) {
            (DivergenceKind::Exploded, Some(l), Some(v)) => write!(
                f,
                "training diverged at step {}: {} is {v:.4e}, above the limit {l:.4e}",
                self.step, self.quantity
            )?,
            (_, _, Some(v)) => write!(
                f,
                "training diverged at step {}: {} is not finite ({v})",
                self.step, self.quantity
            )?,
            (_, _, None) => write!(
                f,
                "training diverged at step {}: {} is not finite",
                self.step, self.quantity
            )?,
        }
        write!(f, "; θ of step {} kept", self.kept_step)
    }
}

/// Serialises an `Option<f64>` as a JSON number when finite, as the text `inf`, `-inf`,
/// `NaN` otherwise (JSON has no such numbers), `null` for `None`; reads any of them.
mod f64_or_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Num(f64),
        Text(String),
    }

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        v.map(|v| {
            if v.is_finite() {
                Repr::Num(v)
            } else {
                Repr::Text(v.to_string())
            }
        })
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        match Option::<Repr>::deserialize(d)? {
            None => Ok(None),
            Some(Repr::Num(v)) => Ok(Some(v)),
            Some(Repr::Text(t)) => t
                .parse()
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("not a number: {t:?}"))),
        }
    }
}

/// The outcome of [`Trainer::fit`](super::Trainer::fit).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Why the run ended.
    pub termination: Termination,
    /// Inner steps taken in total (including those before a resume).
    pub steps: u64,
    /// Re-linearisations in total.
    pub relinearisations: u64,
    /// Every evaluation of this call, in order.
    pub history: Vec<Metrics>,
    /// Wall time in seconds (including time before a resume).
    pub seconds: f64,
    /// Time per phase.
    pub timings: Timings,
    /// Gauss-Newton steps rejected by the adaptive damping.
    pub rejected_steps: u64,
    /// Where and why the run diverged ([`Termination::Diverged`]).
    #[serde(default)]
    pub divergence: Option<Divergence>,
}

impl Report {
    /// The last evaluation, if any.
    pub fn last(&self) -> Option<&Metrics> {
        self.history.last()
    }
}
