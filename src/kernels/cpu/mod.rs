//! SIMD CPU kernels (pulp, runtime dispatch) and the rayon-parallel drivers built on them.
//!
//! The element-wise primitives live in the [`CpuKernels`] trait, implemented for `f32` and
//! `f64`; every primitive has a scalar twin in [`scalar`] that the tests compare against.
//! The drivers in [`jvec`] apply them to an explicit Jacobian stored row-major.

pub mod jvec;
pub mod scalar;

pub use jvec::{j_v, jt_j_v, jt_u};

use faer::traits::RealField;

/// Element-wise SIMD primitives on slices. Implemented for `f32` and `f64` only
/// (it is a supertrait of the sealed [`crate::Real`]).
///
/// # Panics
/// Every method panics when the slice lengths differ.
pub trait CpuKernels: RealField + Copy + Send + Sync + 'static {
    /// `Σᵢ aᵢ bᵢ`.
    fn dot(a: &[Self], b: &[Self]) -> Self {
        scalar::dot(a, b)
    }
    /// `y ← y + α x`.
    fn axpy(alpha: Self, x: &[Self], y: &mut [Self]) {
        scalar::axpy(alpha, x, y)
    }
    /// `out ← α x` (one row of an outer product `g ⊗ a`).
    fn scale_into(alpha: Self, x: &[Self], out: &mut [Self]) {
        scalar::scale_into(alpha, x, out)
    }
}

impl CpuKernels for f32 {}
impl CpuKernels for f64 {}
