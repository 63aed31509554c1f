//! Iterative linearisation ([linearised model](crate::maths#linearised-model)): train the linearised model
//! `f_lin(x; θ) = f(x; θ̃) + J(x; θ̃)(θ − θ̃)` with an inner optimiser and move the
//! linearisation point `θ̃ ← θ` every `K` inner steps ("feature updates").
//!
//! `K = 1` is ordinary (S)GD, `K = ∞` ([`Period::Never`]) is the finite-width NTK (lazy)
//! regime. Inner optimisers: SGD (momentum, Nesterov), Adam, damped Gauss-Newton / LM and the
//! spectral closed form of `K` gradient-descent steps ([`Inner`]).
//!
//! Build a [`TrainConfig`], make a [`Trainer`], call [`Trainer::fit`]; watch it with an
//! [`Observer`]; read the [`Report`]. Checkpoints ([`checkpoint`]) resume bit-for-bit.

mod backend_engine;
pub mod checkpoint;
mod config;
mod engine;
mod eval_buffers;
mod gather;
mod inner;
mod inner_sharded;
mod loss;
mod metrics;
mod optim;
mod plan;
mod probe;
mod state;
mod trainer;
mod update;

pub use crate::data::Batcher;
pub use backend_engine::BackendEngine;
pub use config::{
    CheckpointConfig, DivergenceRule, GnSolver, Inner, Period, Schedule, TrainConfig,
};
pub use engine::FirstOrderEngine;
pub use inner::phi_k;
pub use loss::{Loss, accuracy, loss_gradient, loss_value};
pub use metrics::{
    Control, Divergence, DivergenceKind, Metrics, Observer, OnEval, Report, Termination, Timings,
};
pub use optim::OptState;
pub use plan::{StepPlan, inner_step_plan};
pub use state::{DataRef, TrainState};
pub use trainer::Trainer;
