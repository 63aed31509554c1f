//! CUDA kernels (cargo feature `cuda`): a [`CudaBackend`] (context, stream, cuBLAS and
//! cuSOLVER handles, NVRTC module cache), the kernel families of `kernels/*.cu` compiled at
//! run time by NVRTC ([`nvrtc`]), one safe wrapper per kernel ([`ops`]), and the device-side
//! MLP: forward, JVP, VJP, backprop signals, explicit Jacobian ([`mlp`]), structured NTK and
//! the dual damped Gauss-Newton step ([`ntk`]), host-in/host-out versions of the `Model`
//! API ([`host`]), [`CudaMlp`], an `Mlp` implementing `Model` on the GPU (what the
//! trainer's Gauss-Newton and spectral inners use with `--device cuda`), and
//! [`ResidentEngine`], the trainer's SGD / Adam inner steps with everything resident on the
//! GPU (what `--device cuda` uses for those inners).
//!
//! Every library is loaded dynamically: the crate builds and its tests pass on a machine
//! without CUDA; [`CudaBackend::new`] then returns [`crate::Error::Device`] saying what is
//! missing.

mod blas;
mod context;
pub(crate) mod dense;
pub mod host;
pub mod mlp;
mod model;
#[cfg(feature = "nccl")]
mod nccl;
pub mod ntk;
pub mod nvrtc;
pub mod ops;
mod resident;

pub use blas::CudaReal;
pub use context::CudaBackend;
pub(crate) use context::dev_err;
pub use mlp::{DeviceSignals, DeviceTrace};
pub use model::CudaMlp;
#[cfg(feature = "nccl")]
pub use nccl::NcclSum;
pub use ntk::DualStep;
pub use nvrtc::{Family, Output, compile, compile_source, nvrtc_available, nvrtc_version};
pub use resident::ResidentEngine;

/// Re-export of the cudarc crate, so users can name device buffers (`CudaSlice`) without
/// depending on a matching cudarc version themselves.
pub use cudarc;
