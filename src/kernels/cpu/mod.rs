//! SIMD CPU kernels (pulp, runtime dispatch) and the rayon-parallel drivers built on them.
//!
//! The element-wise primitives live in the [`CpuKernels`] trait, implemented for `f32` and
//! `f64` with the pulp kernels of [`simd`] (one `struct` + `impl WithSimd` per kernel,
//! dispatched at run time to AVX-512, AVX2+FMA, NEON or scalar code, at most the level set by
//! `ITLIN_SIMD`: see [`level`]). Every primitive has a
//! scalar twin in [`scalar`] that the tests compare against. The drivers in [`jvec`] apply
//! them to an explicit Jacobian stored row-major.

pub mod jvec;
pub mod level;
pub mod memory;
pub mod scalar;
pub mod simd;
mod stream;
pub mod tanh;

pub use jvec::{j_v, jt_j_v, jt_u};
pub use level::{SimdLevel, simd_level};
pub use memory::{advise_huge_pages, zeroed_vec};

use faer::traits::RealField;

#[track_caller]
fn same_len(what: &str, a: usize, b: usize) {
    assert_eq!(a, b, "{what}: lengths {a} and {b}");
}

#[track_caller]
fn rows_len<T>(what: &str, rows: &[&[T]; 4], n: usize) {
    for (k, r) in rows.iter().enumerate() {
        assert_eq!(
            r.len(),
            n,
            "{what}: row {k} has length {}, the vector has {n}",
            r.len()
        );
    }
}

#[track_caller]
fn outer_len(what: &str, out: usize, g: usize, a: usize) {
    assert_eq!(out, g * a, "{what}: out has length {out}, g ⊗ a is {g}×{a}");
}

/// Element-wise SIMD primitives on slices. Implemented for `f32` and `f64` only
/// (it is a supertrait of the sealed [`crate::Real`]). The default methods are the scalar
/// twins; the `f32`/`f64` implementations override every one with a SIMD kernel.
///
/// Results may differ from the scalar twins by rounding only: reductions use several
/// accumulators and fused multiply-adds.
///
/// # Panics
/// Every method panics when the slice lengths do not match, naming both.
pub trait CpuKernels: scalar::StdTanh + RealField + Copy + Send + Sync + 'static {
    /// `Σᵢ aᵢ bᵢ`.
    #[track_caller]
    fn dot(a: &[Self], b: &[Self]) -> Self {
        scalar::dot(a, b)
    }
    /// `Σᵢ xᵢ²` (the squared Euclidean norm).
    fn sum_sq(x: &[Self]) -> Self {
        scalar::sum_sq(x)
    }
    /// `[r₀·v, r₁·v, r₂·v, r₃·v]`: four dot products sharing `v` (loaded once).
    #[track_caller]
    fn dot4(rows: [&[Self]; 4], v: &[Self]) -> [Self; 4] {
        scalar::dot4(rows, v)
    }
    /// Returns `x·v` and sets `acc ← acc + α prev` in the same pass over memory: the step of
    /// the fused Gauss-Newton product `Jᵀ(J v)` that dots row `i` of `J` while adding row
    /// `i − 1` (still in cache) to the accumulator, so that reading `J` never pauses.
    #[track_caller]
    fn dot_axpy(x: &[Self], v: &[Self], alpha: Self, prev: &[Self], acc: &mut [Self]) -> Self {
        scalar::dot_axpy(x, v, alpha, prev, acc)
    }
    /// `y ← y + α x`.
    #[track_caller]
    fn axpy(alpha: Self, x: &[Self], y: &mut [Self]) {
        scalar::axpy(alpha, x, y)
    }
    /// `y ← y + α₀x₀ + α₁x₁ + α₂x₂ + α₃x₃` (`y` loaded and stored once for four rows).
    #[track_caller]
    fn axpy4(alpha: [Self; 4], x: [&[Self]; 4], y: &mut [Self]) {
        scalar::axpy4(alpha, x, y)
    }
    /// `out ← α x` (one row of an outer product `g ⊗ a`).
    #[track_caller]
    fn scale_into(alpha: Self, x: &[Self], out: &mut [Self]) {
        scalar::scale_into(alpha, x, out)
    }
    /// `xᵢ ← xᵢ dᵢ` (a tangent or cotangent times the activation derivative `φ'(z)`).
    #[track_caller]
    fn mul_elementwise(x: &mut [Self], d: &[Self]) {
        scalar::mul_elementwise(x, d)
    }
    /// `out[i·k + j] ← (α gᵢ) aⱼ`, `k = a.len()`: the outer product `α g ⊗ a` row-major
    /// (one weight block `s_w g_l ⊗ a_{l−1}` of a Jacobian row).
    #[track_caller]
    fn outer_into(alpha: Self, g: &[Self], a: &[Self], out: &mut [Self]) {
        scalar::outer_into(alpha, g, a, out)
    }
    /// As [`outer_into`](CpuKernels::outer_into), but with non-temporal (streaming) stores
    /// where the CPU has them (x86-64 AVX-512): for large destinations that will not be read
    /// again soon, it halves the memory traffic (no read-for-ownership of each line).
    /// Same values, bit for bit, as `outer_into`.
    #[track_caller]
    fn outer_into_stream(alpha: Self, g: &[Self], a: &[Self], out: &mut [Self]) {
        Self::outer_into(alpha, g, a, out)
    }
    /// `a ← tanh z` and, when given, `d ← tanh'(z) = 1 − a²`, vectorised (a few ulp from
    /// the standard library's `tanh`; see [`tanh`](mod@tanh)). Scalar twin:
    /// [`scalar::tanh_slice`].
    fn tanh_slice(z: &[Self], a: &mut [Self], d: Option<&mut [Self]>);
}

macro_rules! impl_cpu_kernels {
    ($t:ty, $stream:path) => {
        impl CpuKernels for $t {
            #[inline]
            #[track_caller]
            fn dot(a: &[$t], b: &[$t]) -> $t {
                same_len("dot", a.len(), b.len());
                level::arch().dispatch(simd::Dot { a, b })
            }
            #[inline]
            fn sum_sq(x: &[$t]) -> $t {
                level::arch().dispatch(simd::SumSq { x })
            }
            #[inline]
            #[track_caller]
            fn dot4(rows: [&[$t]; 4], v: &[$t]) -> [$t; 4] {
                rows_len("dot4", &rows, v.len());
                level::arch().dispatch(simd::Dot4 { rows, v })
            }
            #[inline]
            #[track_caller]
            fn dot_axpy(x: &[$t], v: &[$t], alpha: $t, prev: &[$t], acc: &mut [$t]) -> $t {
                same_len("dot_axpy", x.len(), v.len());
                same_len("dot_axpy", x.len(), prev.len());
                same_len("dot_axpy", x.len(), acc.len());
                level::arch().dispatch(simd::DotAxpy {
                    x,
                    v,
                    alpha,
                    prev,
                    acc,
                })
            }
            #[inline]
            #[track_caller]
            fn axpy(alpha: $t, x: &[$t], y: &mut [$t]) {
                same_len("axpy", x.len(), y.len());
                level::arch().dispatch(simd::Axpy { alpha, x, y })
            }
            #[inline]
            #[track_caller]
            fn axpy4(alpha: [$t; 4], x: [&[$t]; 4], y: &mut [$t]) {
                rows_len("axpy4", &x, y.len());
                level::arch().dispatch(simd::Axpy4 { alpha, x, y })
            }
            #[inline]
            #[track_caller]
            fn scale_into(alpha: $t, x: &[$t], out: &mut [$t]) {
                same_len("scale_into", x.len(), out.len());
                level::arch().dispatch(simd::ScaleInto { alpha, x, out })
            }
            #[inline]
            #[track_caller]
            fn mul_elementwise(x: &mut [$t], d: &[$t]) {
                same_len("mul_elementwise", x.len(), d.len());
                level::arch().dispatch(simd::MulElementwise { x, d })
            }
            #[inline]
            #[track_caller]
            fn outer_into(alpha: $t, g: &[$t], a: &[$t], out: &mut [$t]) {
                outer_len("outer_into", out.len(), g.len(), a.len());
                level::arch().dispatch(simd::Outer { alpha, g, a, out })
            }
            #[inline]
            #[track_caller]
            fn outer_into_stream(alpha: $t, g: &[$t], a: &[$t], out: &mut [$t]) {
                outer_len("outer_into_stream", out.len(), g.len(), a.len());
                if !$stream(alpha, g, a, out) {
                    level::arch().dispatch(simd::Outer { alpha, g, a, out })
                }
            }
            #[inline]
            #[track_caller]
            fn tanh_slice(z: &[$t], a: &mut [$t], d: Option<&mut [$t]>) {
                same_len("tanh_slice", z.len(), a.len());
                if let Some(d) = &d {
                    same_len("tanh_slice", z.len(), d.len());
                }
                level::arch().dispatch(tanh::Tanh { z, a, d })
            }
        }
    };
}

impl_cpu_kernels!(f32, stream::outer_f32);
impl_cpu_kernels!(f64, stream::outer_f64);
