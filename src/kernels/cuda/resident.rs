//! [`ResidentEngine`]: the SGD / Adam inner steps of the trainer entirely on the GPU.
//!
//! It is the crate's one first-order step, [`BackendEngine`], on the CUDA backend: `θ`, `θ̃`,
//! the optimiser moments and the whole training set `(X, Y)` live in device memory for the
//! duration of [`Trainer::fit`](crate::train::Trainer::fit), and one inner step on the
//! linearised model `f_lin(θ) = f(θ̃) + J(θ̃)(θ − θ̃)` is, on the backend's stream:
//!
//! 1. upload the `B` row indices (`u32`), gather `X_b`, `Y_b` (`ops::gather_rows`);
//! 2. one forward trace at θ̃ keeping `φ'` (`Mlp::trace_on`), `θ − θ̃` (`ops::axpby`), one
//!    JVP on that trace (`Mlp::jvp_on`) and `f_lin = f(θ̃) + J(θ − θ̃)`;
//! 3. `u = ∂L/∂f_lin` with the `1/B` of the mean (`ops::loss_grad`);
//! 4. `g = J(X_b; θ̃)ᵀ u`, one VJP on the same trace (`Mlp::vjp_on`);
//! 5. a non-finite flag over `g` (`ops::nonfinite`), then the weight decay and the optimiser
//!    update (`ops::sgd_update`, `ops::adam_update`), which do nothing when the flag is set;
//! 6. download the flag (4 bytes): the only transfer to the host per step.
//!
//! The arithmetic of steps 3 and 5 follows the CPU's (`crate::loss::loss_gradient`,
//! `crate::train::OptState::update`) operation by operation, so with the same gradients the
//! updates agree bit for bit; the gradients themselves come from cuBLAS and differ from the
//! CPU's by rounding. On the CPU backend the same engine trains bit for bit like the
//! trainer's host path (a CI test).
//!
//! The Gauss-Newton and spectral inners do not use the engine: they run with the
//! [`CudaMlp`](super::CudaMlp) model, which copies `θ` and the batch to the device per call.
//!
//! ```no_run
//! # #[cfg(feature = "cuda")] fn main() -> itlin::Result<()> {
//! use itlin::kernels::cuda::{CudaBackend, ResidentEngine};
//! use itlin::train::{DataRef, Inner, TrainConfig, Trainer};
//! use itlin::{Activation, Init, Mlp};
//! use std::sync::Arc;
//! # let (x, y) = (faer::Mat::<f32>::zeros(8, 4), faer::Mat::<f32>::zeros(8, 2));
//! let mlp = Mlp::new(&[4, 16, 2], Activation::Tanh)?;
//! let be = Arc::new(CudaBackend::new()?);
//! let engine = ResidentEngine::<f32>::new(mlp.clone(), be);
//! let cfg = TrainConfig::new().with_inner(Inner::adam(1e-3)).with_steps(100);
//! let mut trainer = Trainer::new(&mlp, mlp.init(Init::Standard, 0), cfg)?
//!     .with_engine(Box::new(engine));
//! trainer.fit(DataRef::new(x.as_ref(), y.as_ref(), None), None, &mut ())?;
//! # Ok(()) }
//! # #[cfg(not(feature = "cuda"))] fn main() {}
//! ```

use super::context::CudaBackend;
use crate::train::BackendEngine;

/// A [`FirstOrderEngine`](crate::train::FirstOrderEngine) on a CUDA device for an
/// [`Mlp`](crate::Mlp): the crate's [`BackendEngine`] on the CUDA backend. Per step only the
/// `B` row indices go up (`u32`) and a 4-byte finiteness flag comes down; the loss gradient
/// and the updates round as the CPU does, so with equal gradients the updates agree bit for
/// bit (the gradients come from cuBLAS and differ by rounding).
pub type ResidentEngine<T> = BackendEngine<T, CudaBackend>;
