//! The sealed [`Real`] trait: the one place where `f32` and `f64` differ.
//!
//! Every numeric routine of the crate is generic over `T: Real`. The trait bundles what the
//! routines need from a floating-point type: faer's [`RealField`]
//! (so `T` works with faer's matmul, Cholesky and eigen-decompositions), the element
//! functions of the activations, the SIMD kernels of [`crate::kernels::cpu`] (through
//! [`CpuKernels`]), a default comparison tolerance, and the name suffix of the CUDA entry points.

use crate::kernels::cpu::CpuKernels;
use faer::traits::RealField;
use std::fmt::{Debug, Display};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A floating-point scalar: `f32` or `f64` (sealed).
pub trait Real:
    RealField
    + CpuKernels
    + sealed::Sealed
    + Copy
    + Send
    + Sync
    + Debug
    + Display
    + Default
    + bytemuck::Pod
    + std::iter::Sum
    + 'static
{
    /// Short name (`"f32"` / `"f64"`), used in benchmark output and run configs.
    const NAME: &'static str;
    /// Suffix of the CUDA kernel entry points (`"_f32"` / `"_f64"`).
    const CUDA_SUFFIX: &'static str;
    /// Machine epsilon.
    const EPSILON: Self;
    /// Default relative tolerance for comparing two computations of the same quantity
    /// (about `sqrt(eps)` scaled for accumulated rounding: 1e-4 for f32, 1e-10 for f64).
    const TOLERANCE: f64;

    /// Conversion from `f64` (rounding for `f32`).
    fn from_f64(x: f64) -> Self;
    /// Conversion to `f64` (exact).
    fn to_f64(self) -> f64;
    /// Conversion from `usize` (as `f64`, then rounded).
    #[inline]
    fn from_usize(n: usize) -> Self {
        Self::from_f64(n as f64)
    }
    /// `e^x`.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Error function `erf(x) = 2/√π ∫₀ˣ e^{−t²} dt`.
    fn erf(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// `ln(1 + e^x)` evaluated without overflow.
    fn softplus(self) -> Self;
    /// Whether the value is neither infinite nor NaN.
    fn is_finite(self) -> bool;
    /// The larger of two values (NaN-propagating is not guaranteed).
    fn max(self, other: Self) -> Self;
    /// The smaller of two values.
    fn min(self, other: Self) -> Self;
    /// Fused multiply-add `self * a + b`.
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// `x^n`.
    fn powi(self, n: i32) -> Self;
}

macro_rules! impl_real {
    ($t:ty, $suffix:literal, $tol:expr, $erf:path) => {
        impl Real for $t {
            const NAME: &'static str = stringify!($t);
            const CUDA_SUFFIX: &'static str = $suffix;
            const EPSILON: Self = <$t>::EPSILON;
            const TOLERANCE: f64 = $tol;

            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline(always)]
            fn erf(self) -> Self {
                $erf(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn softplus(self) -> Self {
                // ln(1 + e^x) = max(x, 0) + ln(1 + e^{-|x|})
                <$t>::max(self, 0.0) + <$t>::ln_1p(<$t>::exp(-<$t>::abs(self)))
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline(always)]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline(always)]
            fn min(self, other: Self) -> Self {
                <$t>::min(self, other)
            }
            #[inline(always)]
            fn mul_add(self, a: Self, b: Self) -> Self {
                <$t>::mul_add(self, a, b)
            }
            #[inline(always)]
            fn powi(self, n: i32) -> Self {
                <$t>::powi(self, n)
            }
        }
    };
}

impl_real!(f32, "_f32", 1e-4, libm::erff);
impl_real!(f64, "_f64", 1e-10, libm::erf);
