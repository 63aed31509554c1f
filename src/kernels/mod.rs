//! Compute kernels: SIMD CPU kernels ([`cpu`]) and, with the `cuda` feature, CUDA kernels.

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
