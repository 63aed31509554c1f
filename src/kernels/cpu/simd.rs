//! The SIMD kernels, written once over a [`Lane`] type (`f32` or `f64`) with pulp.
//!
//! Every kernel is a `struct` implementing [`pulp::WithSimd`]; the public entry points in
//! [`super::CpuKernels`] dispatch them with [`super::level::arch`]`().dispatch(..)`, so the
//! best instruction set of the running CPU (AVX-512, AVX2+FMA, NEON, …), capped by
//! `ITLIN_SIMD`, is chosen at run time.
//! Loops run over whole registers with four independent accumulators (hiding the FMA
//! latency), then over single registers, then a masked partial register for the tail.
//!
//! Length checks happen in the callers ([`super::CpuKernels`]); these functions assume
//! equal lengths and only use safe slice operations, so a mismatch could at worst panic.

use pulp::{Simd, WithSimd, as_arrays, as_arrays_mut};

/// A scalar with a SIMD register type for every pulp instruction set: the bridge that lets
/// each kernel below be written once for `f32` and `f64`.
pub trait Lane: Copy + Send + Sync + 'static + bytemuck::Pod {
    /// The register type holding `S`-many lanes of `Self`.
    type V<S: Simd>: Copy;
    /// Zero.
    const ZERO: Self;
    /// `a + b` on scalars.
    fn scalar_add(a: Self, b: Self) -> Self;
    /// `(a * b) + c`, one rounding where the hardware has FMA.
    fn mul_add<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>, c: Self::V<S>) -> Self::V<S>;
    /// `a * b`.
    fn mul<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    /// `a + b`.
    fn add<S: Simd>(s: S, a: Self::V<S>, b: Self::V<S>) -> Self::V<S>;
    /// All lanes `x`.
    fn splat<S: Simd>(s: S, x: Self) -> Self::V<S>;
    /// Horizontal sum.
    fn reduce_sum<S: Simd>(s: S, a: Self::V<S>) -> Self;
    /// Loads up to one register, zero-filling the missing lanes.
    fn partial_load<S: Simd>(s: S, x: &[Self]) -> Self::V<S>;
    /// Stores the first `x.len()` lanes.
    fn partial_store<S: Simd>(s: S, x: &mut [Self], v: Self::V<S>);
    /// Splits into whole registers and a tail shorter than one register.
    fn as_simd<S: Simd>(x: &[Self]) -> (&[Self::V<S>], &[Self]);
    /// Splits into whole registers and a tail shorter than one register.
    fn as_mut_simd<S: Simd>(x: &mut [Self]) -> (&mut [Self::V<S>], &mut [Self]);
}

macro_rules! impl_lane {
    ($t:ty, $v:ident, $fma:ident, $mul:ident, $add:ident, $splat:ident, $red:ident,
     $pl:ident, $ps:ident, $as:ident, $asm:ident) => {
        impl Lane for $t {
            type V<S: Simd> = S::$v;
            const ZERO: Self = 0.0;
            #[inline(always)]
            fn scalar_add(a: Self, b: Self) -> Self {
                a + b
            }
            #[inline(always)]
            fn mul_add<S: Simd>(s: S, a: S::$v, b: S::$v, c: S::$v) -> S::$v {
                s.$fma(a, b, c)
            }
            #[inline(always)]
            fn mul<S: Simd>(s: S, a: S::$v, b: S::$v) -> S::$v {
                s.$mul(a, b)
            }
            #[inline(always)]
            fn add<S: Simd>(s: S, a: S::$v, b: S::$v) -> S::$v {
                s.$add(a, b)
            }
            #[inline(always)]
            fn splat<S: Simd>(s: S, x: Self) -> S::$v {
                s.$splat(x)
            }
            #[inline(always)]
            fn reduce_sum<S: Simd>(s: S, a: S::$v) -> Self {
                s.$red(a)
            }
            #[inline(always)]
            fn partial_load<S: Simd>(s: S, x: &[Self]) -> S::$v {
                s.$pl(x)
            }
            #[inline(always)]
            fn partial_store<S: Simd>(s: S, x: &mut [Self], v: S::$v) {
                s.$ps(x, v)
            }
            #[inline(always)]
            fn as_simd<S: Simd>(x: &[Self]) -> (&[S::$v], &[Self]) {
                S::$as(x)
            }
            #[inline(always)]
            fn as_mut_simd<S: Simd>(x: &mut [Self]) -> (&mut [S::$v], &mut [Self]) {
                S::$asm(x)
            }
        }
    };
}

impl_lane!(
    f32,
    f32s,
    mul_add_e_f32s,
    mul_f32s,
    add_f32s,
    splat_f32s,
    reduce_sum_f32s,
    partial_load_f32s,
    partial_store_f32s,
    as_simd_f32s,
    as_mut_simd_f32s
);
impl_lane!(
    f64,
    f64s,
    mul_add_e_f64s,
    mul_f64s,
    add_f64s,
    splat_f64s,
    reduce_sum_f64s,
    partial_load_f64s,
    partial_store_f64s,
    as_simd_f64s,
    as_mut_simd_f64s
);

/// `Σᵢ aᵢ bᵢ`.
pub struct Dot<'a, T> {
    /// Left operand.
    pub a: &'a [T],
    /// Right operand (same length).
    pub b: &'a [T],
}

impl<T: Lane> WithSimd for Dot<'_, T> {
    type Output = T;
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) -> T {
        let n = self.a.len();
        if n >= DOT_SPLIT {
            // Long vectors (not in cache): four concurrent streams, one per quarter, keep
            // more cache-line requests in flight than one sequential stream.
            let q = n / 4;
            let (a, b) = (self.a, self.b);
            let parts = DotPairs4 {
                a: [&a[..q], &a[q..2 * q], &a[2 * q..3 * q], &a[3 * q..4 * q]],
                b: [&b[..q], &b[q..2 * q], &b[2 * q..3 * q], &b[3 * q..4 * q]],
            }
            .with_simd(s);
            return T::scalar_add(parts, dot_short(s, &a[4 * q..], &b[4 * q..]));
        }
        dot_short(s, self.a, self.b)
    }
}

/// The single-stream dot product (four accumulators) behind [`Dot`]. A separate function
/// so that `Dot` is not recursive: a recursive `with_simd` cannot be inlined into pulp's
/// target-feature context and would silently compile for the baseline CPU.
#[inline(always)]
fn dot_short<S: Simd, T: Lane>(s: S, a: &[T], b: &[T]) -> T {
    {
        let (a, a_tail) = T::as_simd::<S>(a);
        let (b, b_tail) = T::as_simd::<S>(b);
        let (a4, a1) = as_arrays::<4, _>(a);
        let (b4, b1) = as_arrays::<4, _>(b);
        let z = T::splat(s, T::ZERO);
        let (mut s0, mut s1, mut s2, mut s3) = (z, z, z, z);
        for ([x0, x1, x2, x3], [y0, y1, y2, y3]) in a4.iter().zip(b4) {
            s0 = T::mul_add(s, *x0, *y0, s0);
            s1 = T::mul_add(s, *x1, *y1, s1);
            s2 = T::mul_add(s, *x2, *y2, s2);
            s3 = T::mul_add(s, *x3, *y3, s3);
        }
        for (x, y) in a1.iter().zip(b1) {
            s0 = T::mul_add(s, *x, *y, s0);
        }
        let xt = T::partial_load(s, a_tail);
        let yt = T::partial_load(s, b_tail);
        s1 = T::mul_add(s, xt, yt, s1);
        let sum = T::add(s, T::add(s, s0, s1), T::add(s, s2, s3));
        T::reduce_sum(s, sum)
    }
}

/// Length from which [`Dot`] reads its operands as four concurrent streams.
pub const DOT_SPLIT: usize = 1 << 14;

/// `Σₖ aₖ·bₖ` over four pairs of equally long slices, one register stream per pair.
struct DotPairs4<'a, T> {
    a: [&'a [T]; 4],
    b: [&'a [T]; 4],
}

impl<T: Lane> WithSimd for DotPairs4<'_, T> {
    type Output = T;
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) -> T {
        let (a0, ta0) = T::as_simd::<S>(self.a[0]);
        let (a1, ta1) = T::as_simd::<S>(self.a[1]);
        let (a2, ta2) = T::as_simd::<S>(self.a[2]);
        let (a3, ta3) = T::as_simd::<S>(self.a[3]);
        let (b0, tb0) = T::as_simd::<S>(self.b[0]);
        let (b1, tb1) = T::as_simd::<S>(self.b[1]);
        let (b2, tb2) = T::as_simd::<S>(self.b[2]);
        let (b3, tb3) = T::as_simd::<S>(self.b[3]);
        let z = T::splat(s, T::ZERO);
        let (mut s0, mut s1, mut s2, mut s3) = (z, z, z, z);
        let n = a0.len();
        let (a1, a2, a3) = (&a1[..n], &a2[..n], &a3[..n]);
        let (b0, b1, b2, b3) = (&b0[..n], &b1[..n], &b2[..n], &b3[..n]);
        for i in 0..n {
            s0 = T::mul_add(s, a0[i], b0[i], s0);
            s1 = T::mul_add(s, a1[i], b1[i], s1);
            s2 = T::mul_add(s, a2[i], b2[i], s2);
            s3 = T::mul_add(s, a3[i], b3[i], s3);
        }
        s0 = T::mul_add(s, T::partial_load(s, ta0), T::partial_load(s, tb0), s0);
        s1 = T::mul_add(s, T::partial_load(s, ta1), T::partial_load(s, tb1), s1);
        s2 = T::mul_add(s, T::partial_load(s, ta2), T::partial_load(s, tb2), s2);
        s3 = T::mul_add(s, T::partial_load(s, ta3), T::partial_load(s, tb3), s3);
        let sum = T::add(s, T::add(s, s0, s1), T::add(s, s2, s3));
        T::reduce_sum(s, sum)
    }
}

/// `Σᵢ xᵢ²`.
pub struct SumSq<'a, T> {
    /// The vector.
    pub x: &'a [T],
}

impl<T: Lane> WithSimd for SumSq<'_, T> {
    type Output = T;
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) -> T {
        Dot {
            a: self.x,
            b: self.x,
        }
        .with_simd(s)
    }
}

/// Four dot products sharing the right operand: `[r₀·v, r₁·v, r₂·v, r₃·v]`
/// (each register of `v` is loaded once for four rows).
pub struct Dot4<'a, T> {
    /// Four rows, each as long as `v`.
    pub rows: [&'a [T]; 4],
    /// The shared operand.
    pub v: &'a [T],
}

impl<T: Lane> WithSimd for Dot4<'_, T> {
    type Output = [T; 4];
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) -> [T; 4] {
        let (v, v_tail) = T::as_simd::<S>(self.v);
        let (r0, t0) = T::as_simd::<S>(self.rows[0]);
        let (r1, t1) = T::as_simd::<S>(self.rows[1]);
        let (r2, t2) = T::as_simd::<S>(self.rows[2]);
        let (r3, t3) = T::as_simd::<S>(self.rows[3]);
        let z = T::splat(s, T::ZERO);
        let (mut s0, mut s1, mut s2, mut s3) = (z, z, z, z);
        for ((((x, a), b), c), d) in v.iter().zip(r0).zip(r1).zip(r2).zip(r3) {
            s0 = T::mul_add(s, *a, *x, s0);
            s1 = T::mul_add(s, *b, *x, s1);
            s2 = T::mul_add(s, *c, *x, s2);
            s3 = T::mul_add(s, *d, *x, s3);
        }
        let x = T::partial_load(s, v_tail);
        s0 = T::mul_add(s, T::partial_load(s, t0), x, s0);
        s1 = T::mul_add(s, T::partial_load(s, t1), x, s1);
        s2 = T::mul_add(s, T::partial_load(s, t2), x, s2);
        s3 = T::mul_add(s, T::partial_load(s, t3), x, s3);
        [
            T::reduce_sum(s, s0),
            T::reduce_sum(s, s1),
            T::reduce_sum(s, s2),
            T::reduce_sum(s, s3),
        ]
    }
}

/// `y ← y + α x`.
pub struct Axpy<'a, T> {
    /// The scale `α`.
    pub alpha: T,
    /// The added vector.
    pub x: &'a [T],
    /// The accumulated vector (same length).
    pub y: &'a mut [T],
}

impl<T: Lane> WithSimd for Axpy<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let a = T::splat(s, self.alpha);
        let (x, x_tail) = T::as_simd::<S>(self.x);
        let (y, y_tail) = T::as_mut_simd::<S>(self.y);
        let (x4, x1) = as_arrays::<4, _>(x);
        let (y4, y1) = as_arrays_mut::<4, _>(y);
        for ([x0, x1, x2, x3], [y0, y1, y2, y3]) in x4.iter().zip(y4) {
            *y0 = T::mul_add(s, a, *x0, *y0);
            *y1 = T::mul_add(s, a, *x1, *y1);
            *y2 = T::mul_add(s, a, *x2, *y2);
            *y3 = T::mul_add(s, a, *x3, *y3);
        }
        for (x, y) in x1.iter().zip(y1) {
            *y = T::mul_add(s, a, *x, *y);
        }
        let yt = T::partial_load(s, y_tail);
        let r = T::mul_add(s, a, T::partial_load(s, x_tail), yt);
        T::partial_store(s, y_tail, r);
    }
}

/// `y ← y + α₀ x₀ + α₁ x₁ + α₂ x₂ + α₃ x₃` (each register of `y` is loaded and stored
/// once for four rows).
pub struct Axpy4<'a, T> {
    /// The four scales.
    pub alpha: [T; 4],
    /// Four rows, each as long as `y`.
    pub x: [&'a [T]; 4],
    /// The accumulated vector.
    pub y: &'a mut [T],
}

impl<T: Lane> WithSimd for Axpy4<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let [a0, a1, a2, a3] = self.alpha.map(|a| T::splat(s, a));
        let (x0, t0) = T::as_simd::<S>(self.x[0]);
        let (x1, t1) = T::as_simd::<S>(self.x[1]);
        let (x2, t2) = T::as_simd::<S>(self.x[2]);
        let (x3, t3) = T::as_simd::<S>(self.x[3]);
        let (y, y_tail) = T::as_mut_simd::<S>(self.y);
        for ((((y, b0), b1), b2), b3) in y.iter_mut().zip(x0).zip(x1).zip(x2).zip(x3) {
            let u = T::mul_add(s, a0, *b0, *y);
            let w = T::mul(s, a1, *b1);
            let u = T::mul_add(s, a2, *b2, u);
            let w = T::mul_add(s, a3, *b3, w);
            *y = T::add(s, u, w);
        }
        let u = T::mul_add(s, a0, T::partial_load(s, t0), T::partial_load(s, y_tail));
        let w = T::mul(s, a1, T::partial_load(s, t1));
        let u = T::mul_add(s, a2, T::partial_load(s, t2), u);
        let w = T::mul_add(s, a3, T::partial_load(s, t3), w);
        T::partial_store(s, y_tail, T::add(s, u, w));
    }
}

/// `out ← α x`.
pub struct ScaleInto<'a, T> {
    /// The scale `α`.
    pub alpha: T,
    /// The source.
    pub x: &'a [T],
    /// The destination (same length).
    pub out: &'a mut [T],
}

impl<T: Lane> WithSimd for ScaleInto<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let a = T::splat(s, self.alpha);
        let (x, x_tail) = T::as_simd::<S>(self.x);
        let (o, o_tail) = T::as_mut_simd::<S>(self.out);
        for (o, x) in o.iter_mut().zip(x) {
            *o = T::mul(s, a, *x);
        }
        T::partial_store(s, o_tail, T::mul(s, a, T::partial_load(s, x_tail)));
    }
}

/// `xᵢ ← xᵢ dᵢ` (e.g. a tangent or cotangent times the activation derivative).
pub struct MulElementwise<'a, T> {
    /// The vector scaled in place.
    pub x: &'a mut [T],
    /// The element-wise factors (same length).
    pub d: &'a [T],
}

impl<T: Lane> WithSimd for MulElementwise<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let (x, x_tail) = T::as_mut_simd::<S>(self.x);
        let (d, d_tail) = T::as_simd::<S>(self.d);
        for (x, d) in x.iter_mut().zip(d) {
            *x = T::mul(s, *x, *d);
        }
        let r = T::mul(s, T::partial_load(s, x_tail), T::partial_load(s, d_tail));
        T::partial_store(s, x_tail, r);
    }
}

/// `out[i·k + j] ← α gᵢ aⱼ` for `k = a.len()`: the outer product `α g ⊗ a`, row-major
/// (one weight block of a Jacobian row).
pub struct Outer<'a, T> {
    /// The common scale `α`.
    pub alpha: T,
    /// The left factor (one row of `out` per entry).
    pub g: &'a [T],
    /// The right factor (the contents of each row).
    pub a: &'a [T],
    /// The destination, `g.len() · a.len()` entries.
    pub out: &'a mut [T],
}

impl<T: Lane> WithSimd for Outer<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let k = self.a.len();
        if k == 0 {
            return;
        }
        for (&gi, dst) in self.g.iter().zip(self.out.chunks_exact_mut(k)) {
            let c = T::mul(s, T::splat(s, self.alpha), T::splat(s, gi));
            let (x, x_tail) = T::as_simd::<S>(self.a);
            let (o, o_tail) = T::as_mut_simd::<S>(dst);
            for (o, x) in o.iter_mut().zip(x) {
                *o = T::mul(s, c, *x);
            }
            T::partial_store(s, o_tail, T::mul(s, c, T::partial_load(s, x_tail)));
        }
    }
}

/// `x·v`, and in the same pass `acc ← acc + α prev`: the step of the fused Gauss-Newton
/// product `Jᵀ(J v)` in which row `i` of `J` streams from memory (the dot) while row `i − 1`,
/// still in cache, is added to the accumulator. Long operands are processed as four
/// concurrent quarter streams, like [`Dot`].
pub struct DotAxpy<'a, T> {
    /// The row being dotted (`J[i, :]`).
    pub x: &'a [T],
    /// The vector it is dotted with.
    pub v: &'a [T],
    /// Scale of the previous row.
    pub alpha: T,
    /// The previous row (`J[i − 1, :]`).
    pub prev: &'a [T],
    /// The accumulator.
    pub acc: &'a mut [T],
}

/// The `k`-th of four consecutive pieces of length `q`.
#[inline(always)]
fn quarter<T>(a: &[T], k: usize, q: usize) -> &[T] {
    &a[k * q..(k + 1) * q]
}

impl<T: Lane> WithSimd for DotAxpy<'_, T> {
    type Output = T;
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) -> T {
        let n = self.x.len();
        // Quarters of whole registers (a multiple of 64 elements covers every lane count).
        let q = if n >= DOT_SPLIT { n / 256 * 64 } else { 0 };
        let (x, v, prev) = (self.x, self.v, self.prev);
        let (acc_q, acc_rest) = self.acc.split_at_mut(4 * q);
        let (c0, acc_q) = acc_q.split_at_mut(q);
        let (c1, acc_q) = acc_q.split_at_mut(q);
        let (c2, c3) = acc_q.split_at_mut(q);
        let (x0, x1, x2, x3) = (
            T::as_simd::<S>(quarter(x, 0, q)).0,
            T::as_simd::<S>(quarter(x, 1, q)).0,
            T::as_simd::<S>(quarter(x, 2, q)).0,
            T::as_simd::<S>(quarter(x, 3, q)).0,
        );
        let (v0, v1, v2, v3) = (
            T::as_simd::<S>(quarter(v, 0, q)).0,
            T::as_simd::<S>(quarter(v, 1, q)).0,
            T::as_simd::<S>(quarter(v, 2, q)).0,
            T::as_simd::<S>(quarter(v, 3, q)).0,
        );
        let (p0, p1, p2, p3) = (
            T::as_simd::<S>(quarter(prev, 0, q)).0,
            T::as_simd::<S>(quarter(prev, 1, q)).0,
            T::as_simd::<S>(quarter(prev, 2, q)).0,
            T::as_simd::<S>(quarter(prev, 3, q)).0,
        );
        let (c0, c1, c2, c3) = (
            T::as_mut_simd::<S>(c0).0,
            T::as_mut_simd::<S>(c1).0,
            T::as_mut_simd::<S>(c2).0,
            T::as_mut_simd::<S>(c3).0,
        );
        let a = T::splat(s, self.alpha);
        let z = T::splat(s, T::ZERO);
        let (mut s0, mut s1, mut s2, mut s3) = (z, z, z, z);
        let m = x0.len();
        let (x1, x2, x3) = (&x1[..m], &x2[..m], &x3[..m]);
        let (v0, v1, v2, v3) = (&v0[..m], &v1[..m], &v2[..m], &v3[..m]);
        let (p0, p1, p2, p3) = (&p0[..m], &p1[..m], &p2[..m], &p3[..m]);
        let (c0, c1, c2, c3) = (&mut c0[..m], &mut c1[..m], &mut c2[..m], &mut c3[..m]);
        for i in 0..m {
            s0 = T::mul_add(s, x0[i], v0[i], s0);
            s1 = T::mul_add(s, x1[i], v1[i], s1);
            s2 = T::mul_add(s, x2[i], v2[i], s2);
            s3 = T::mul_add(s, x3[i], v3[i], s3);
            c0[i] = T::mul_add(s, a, p0[i], c0[i]);
            c1[i] = T::mul_add(s, a, p1[i], c1[i]);
            c2[i] = T::mul_add(s, a, p2[i], c2[i]);
            c3[i] = T::mul_add(s, a, p3[i], c3[i]);
        }
        let sum = T::reduce_sum(s, T::add(s, T::add(s, s0, s1), T::add(s, s2, s3)));
        // The rest (everything for short operands): one stream each.
        let rest = dot_short(s, &x[4 * q..], &v[4 * q..]);
        Axpy {
            alpha: self.alpha,
            x: &prev[4 * q..],
            y: acc_rest,
        }
        .with_simd(s);
        T::scalar_add(sum, rest)
    }
}
