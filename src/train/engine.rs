//! [`FirstOrderEngine`]: where the SGD / Adam inner steps run when they do not run on the host.

use super::config::TrainConfig;
use super::metrics::Timings;
use super::state::{DataRef, TrainState};
use crate::{Real, Result};

/// A place other than the host where the first-order inner steps (SGD, momentum, Nesterov,
/// Adam, with weight decay) run, holding `θ`, `θ̃`, the optimiser state and the training set.
///
/// The [`Trainer`](super::Trainer) takes a first-order inner step on the linearised model
/// `f_lin(θ) = f(θ̃) + J(θ̃)(θ − θ̃)` as
///
/// 1. pick the mini-batch rows (`B` of them, from the [`Batcher`](super::Batcher)) and the
///    step size `η` (schedule),
/// 2. `f_lin = f(X_b; θ̃) + J(X_b; θ̃)(θ − θ̃)` (one JVP at `θ̃`; a forward pass right after a
///    re-linearisation, when `θ = θ̃`),
/// 3. `u = ∂L/∂f_lin` of the mean loss over the batch ([`loss_gradient`](super::loss_gradient),
///    with its `1/B`),
/// 4. `g = J(X_b; θ̃)ᵀ u` (one VJP at `θ̃`),
/// 5. if `g` is finite: `g ← g + wd·θ` (when `wd > 0`), then the optimiser update
///    ([`OptState::update`](super::OptState::update)); else nothing changes.
///
/// Without an engine the trainer does all of it on the host with its [`Model`](crate::Model).
/// With one ([`Trainer::with_engine`](super::Trainer::with_engine)) the trainer does step 1
/// and the engine steps 2–5 on its own copies of the state (for example in GPU memory:
/// `crate::kernels::cuda::ResidentEngine`), so that a step moves only the `B` row indices; the
/// trainer calls [`sync`](FirstOrderEngine::sync) whenever it needs the host state
/// (evaluations, checkpoints, the end of [`fit`](super::Trainer::fit)).
///
/// Contract (what the trainer relies on, and what an implementation must keep so that
/// results match the host path up to rounding):
/// - [`begin`](Self::begin) copies in the state: `θ`, `θ̃`, the optimiser state
///   (`m`, `v` when present, the update count `t`) and the whole training set;
/// - [`step`](Self::step) takes exactly steps 2–5 above for the given rows and step size,
///   and reports whether `g` was finite (a non-finite step changes nothing);
/// - [`relinearise`](Self::relinearise) sets `θ̃ ← θ`;
/// - [`sync`](Self::sync) writes `θ`, `θ̃` and the optimiser state back into a [`TrainState`]
///   (the host-side counters, batcher and timings are the trainer's and are left alone).
pub trait FirstOrderEngine<T: Real> {
    /// Takes over `state` (θ, θ̃, optimiser) and the training set `train` for a run of `cfg`
    /// (whose inner optimiser is SGD or Adam).
    ///
    /// # Errors
    /// Device errors (allocation, copies).
    fn begin(
        &mut self,
        cfg: &TrainConfig,
        state: &TrainState<T>,
        train: DataRef<'_, T>,
    ) -> Result<()>;

    /// `θ̃ ← θ` (a feature update).
    ///
    /// # Errors
    /// Device errors.
    fn relinearise(&mut self) -> Result<()>;

    /// One inner step on the training rows `rows` (`B` of them) with step size `lr`;
    /// `at_tilde` says that `θ = θ̃` (no step since the last re-linearisation), so `f_lin` is
    /// a plain forward pass. Adds the time of its phases to `timings` (`jvp`, `vjp`,
    /// `update`). Returns whether the gradient was finite; when it was not, nothing changed.
    ///
    /// # Errors
    /// Device errors.
    fn step(
        &mut self,
        rows: &[usize],
        lr: f64,
        at_tilde: bool,
        timings: &mut Timings,
    ) -> Result<bool>;

    /// One inner step of a data-parallel run ([`Trainer::with_comm`](super::Trainer::with_comm)):
    /// `rows` are this rank's rows of the global batch as indices into its shard (possibly
    /// none), `share = |rows| / B` its share of the global batch `B`. The gradient of the
    /// mean loss over `rows` (zero when there are none) is weighted by `share` and summed
    /// across the ranks before steps 5 (so every rank takes the same update). Returns whether
    /// the summed gradient was finite. The default refuses: an engine must be given a
    /// collective to take such steps.
    ///
    /// # Errors
    /// [`crate::Error::Config`] for an engine without a collective; device and
    /// communication errors.
    fn step_sharded(
        &mut self,
        rows: &[usize],
        share: f64,
        lr: f64,
        at_tilde: bool,
        timings: &mut Timings,
    ) -> Result<bool> {
        let _ = (rows, share, lr, at_tilde, timings);
        Err(crate::Error::config(
            "this engine takes no data-parallel steps (it has no collective to sum its gradients)",
        ))
    }

    /// Writes `θ`, `θ̃` and the optimiser state (`m`, `v`, `t`) into `state`.
    ///
    /// # Errors
    /// Device errors.
    fn sync(&mut self, state: &mut TrainState<T>) -> Result<()>;
}
