//! One safe wrapper per kernel (and per cuBLAS call the crate makes): each checks the lengths
//! of its buffers against the shape it is given, panicking at the boundary on a mismatch
//! (`# Panics`), and only then launches. Driver and library failures are [`Error::Device`].
//!
//! Matrices are row-major, as everywhere in the crate; [`gemm_rm`] does the translation to
//! cuBLAS's column-major convention.

use super::blas::{CudaReal, Op};
use super::context::{CudaBackend, dev_err};
use super::nvrtc::Family;
use crate::{Activation, Error, Result};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, LaunchConfig, PushKernelArg};
use std::ffi::c_int;

/// Threads per block of the one-dimensional kernels.
const THREADS: u32 = 256;

/// The raw device address of a buffer to be read.
pub(crate) fn rd<T, S: DevicePtr<T>>(be: &CudaBackend, s: &S) -> u64 {
    let (p, _sync) = s.device_ptr(be.stream());
    p
}

/// The raw device address of a buffer to be written.
pub(crate) fn wr<T, D: DevicePtrMut<T>>(be: &CudaBackend, d: &mut D) -> u64 {
    let (p, _sync) = d.device_ptr_mut(be.stream());
    p
}

/// Blocks for a grid-stride loop over `n` items: enough to fill the device, no more.
fn blocks_for(be: &CudaBackend, n: usize) -> u32 {
    let cap = (be.sm_count() * 16).max(1);
    n.div_ceil(THREADS as usize).clamp(1, cap) as u32
}

fn cfg1(blocks: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn to_int(what: &str, v: usize) -> Result<c_int> {
    c_int::try_from(v).map_err(|_| {
        Error::Device(format!(
            "{what} = {v} exceeds the 32-bit sizes of cuBLAS/cuSOLVER"
        ))
    })
}

#[track_caller]
fn check_len(what: &str, got: usize, want: usize, shape: &str) {
    assert_eq!(
        got, want,
        "{what}: buffer has {got} elements, the shape {shape} needs {want}"
    );
}

macro_rules! launch {
    ($be:expr, $family:expr, $name:expr, $ty:ty, $cfg:expr, [$($arg:expr),* $(,)?]) => {{
        let fname = format!("{}{}", $name, <$ty as crate::Real>::CUDA_SUFFIX);
        let func = $be.function($family, &fname)?;
        let mut builder = $be.stream().launch_builder(&func);
        $( builder.arg($arg); )*
        // SAFETY: the argument list matches the kernel's signature in kernels/*.cu (types and
        // order), every pointer is a live allocation of this context whose length the caller
        // checked against the shape passed alongside, and the launch is ordered on the
        // backend's single stream after the writes that produced its inputs.
        unsafe { builder.launch($cfg) }.map_err(dev_err(&fname))?;
    }};
}

/// A readable device buffer behind `dyn` (for optional arguments).
pub trait DevicePtrDyn<T> {
    /// Number of elements.
    fn dyn_len(&self) -> usize;
    /// The raw device address, for reading on the backend's stream.
    fn read_ptr(&self, be: &CudaBackend) -> u64;
}

/// A writable device buffer behind `dyn` (for optional arguments).
pub trait DevicePtrMutDyn<T> {
    /// Number of elements.
    fn dyn_len(&self) -> usize;
    /// The raw device address, for writing on the backend's stream.
    fn write_ptr(&mut self, be: &CudaBackend) -> u64;
}

impl<T, S: DevicePtr<T>> DevicePtrDyn<T> for S {
    fn dyn_len(&self) -> usize {
        self.len()
    }
    fn read_ptr(&self, be: &CudaBackend) -> u64 {
        rd(be, self)
    }
}

impl<T, S: DevicePtrMut<T>> DevicePtrMutDyn<T> for S {
    fn dyn_len(&self) -> usize {
        self.len()
    }
    fn write_ptr(&mut self, be: &CudaBackend) -> u64 {
        wr(be, self)
    }
}

mod jacobian_stripes;
mod jvec;
mod layer;
mod linalg;
mod optim;

pub use jacobian_stripes::{
    DEFAULT_WEIGHT_ROWS, StripeGeometry, StripeKernels, StripeOpts, jacobian_stripes,
    jacobian_v4_applies, stripe_geometry,
};
pub use jvec::{gemv_rm, j_v, jt_j_v, jt_u};
pub use layer::{
    COL_SUM_ONE_STAGE_ROWS, JACOBIAN_MAX_LAYERS, JacobianLayer, bias_act, bias_act_in_place,
    bias_mul, col_sum, col_sum_one_stage, eye_rows, jacobian_all, jacobian_layer, mul_bcast_rows,
};
pub use linalg::{ThetaIn, add_diag, axpby, fill, gemm_rm, ntk_fused};
pub use optim::{AdamStep, SgdMode, adam_update, gather_rows, loss_grad, nonfinite, sgd_update};
