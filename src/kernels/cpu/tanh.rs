//! A branch-free `tanh` that the compiler vectorises (inside a pulp `WithSimd` kernel the
//! loop is compiled for the running CPU's vector width), and the fused kernel
//! `a ← tanh z`, `d ← 1 − a²` used by the activation layer.
//!
//! Accuracy (checked against the standard library's `tanh` in `tests/kernels_twins.rs`):
//! a few ulp. Method: for `|x| < 0.3` the odd Taylor series (through `x¹¹` in `f32`, `x²³` in
//! `f64`; the first omitted term is below half an ulp); otherwise `1 − 2/(e^{2|x|} + 1)` with
//! the sign restored, where `e^y` is computed by range reduction `y = n ln 2 + r`,
//! `|r| ≤ ln 2 / 2`, a Taylor polynomial for `e^r` (degree 7 / 13) and an exponent-bit
//! scaling by `2ⁿ`. `2|x|` is clamped where `tanh` is 1 to working precision, so no overflow.

use pulp::{Simd, WithSimd};

/// Scalars with a vectorisable `tanh`.
pub trait FastTanh: super::simd::Lane {
    /// `tanh x`, branch-free (a few ulp).
    fn tanh_fast(x: Self) -> Self;
}

impl FastTanh for f64 {
    #[inline(always)]
    fn tanh_fast(x: f64) -> f64 {
        const C: [f64; 12] = [
            1.0,
            -0.333_333_333_333_333_3,
            0.133_333_333_333_333_33,
            -0.053_968_253_968_253_97,
            0.021_869_488_536_155_203,
            -0.008_863_235_529_902_197,
            0.003_592_128_036_572_481,
            -0.001_455_834_387_051_318_3,
            0.000_590_027_440_945_586,
            -0.000_239_129_114_243_552_48,
            9.691_537_956_929_451e-5,
            -3.927_832_388_331_683e-5,
        ];
        let ax = x.abs();
        // Small |x|: odd series x · Σ cₖ x^{2k}.
        let x2 = x * x;
        let mut p = C[11];
        for &c in C[..11].iter().rev() {
            p = p.mul_add(x2, c);
        }
        let small = x * p;
        // Large |x|: 1 − 2/(e^{2|x|} + 1); tanh = 1 in f64 beyond |x| ≈ 19.1.
        let y = (2.0 * ax).min(40.0);
        let e = exp_reduced_f64(y);
        let big = (1.0 - 2.0 / (e + 1.0)).copysign(x);
        if ax < 0.3 { small } else { big }
    }
}

/// `e^y` for `0 ≤ y ≤ 40` (a few ulp).
#[inline(always)]
fn exp_reduced_f64(y: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const SHIFT: f64 = 6_755_399_441_055_744.0; // 1.5 · 2^52: rounds to an integer
    // Adding SHIFT rounds y·log₂e to an integer n held in the low mantissa bits of `t`
    // (read back with integer arithmetic: a float-to-int cast would not vectorise well).
    let t = y * LOG2E + SHIFT;
    let nf = t - SHIFT;
    let n = t.to_bits().wrapping_sub(SHIFT.to_bits());
    let r = (y - nf * LN2_HI) - nf * LN2_LO;
    // Taylor series of e^r through r^13 (|r| ≤ 0.347: error below 1e-17).
    let mut p: f64 = 1.0 / 6_227_020_800.0;
    for k in (0..13).rev() {
        p = p.mul_add(r, INV_FACT[k]);
    }
    let scale = f64::from_bits(n.wrapping_add(1023) << 52);
    p * scale
}

/// `1/k!` for `k = 0..13`.
const INV_FACT: [f64; 13] = [
    1.0,
    1.0,
    0.5,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40320.0,
    1.0 / 362_880.0,
    1.0 / 3_628_800.0,
    1.0 / 39_916_800.0,
    1.0 / 479_001_600.0,
];

impl FastTanh for f32 {
    #[inline(always)]
    fn tanh_fast(x: f32) -> f32 {
        const C: [f32; 6] = [
            1.0,
            -0.333_333_34,
            0.133_333_33,
            -0.053_968_254,
            0.021_869_488,
            -0.008_863_236,
        ];
        let ax = x.abs();
        let x2 = x * x;
        let mut p = C[5];
        for &c in C[..5].iter().rev() {
            p = p.mul_add(x2, c);
        }
        let small = x * p;
        // tanh = 1 in f32 beyond |x| ≈ 9.01.
        let y = (2.0 * ax).min(20.0);
        const LOG2E: f32 = std::f32::consts::LOG2_E;
        const LN2_HI: f32 = 0.693_145_75;
        const LN2_LO: f32 = 1.428_606_8e-6;
        const SHIFT: f32 = 12_582_912.0; // 1.5 · 2^23
        let t = y * LOG2E + SHIFT;
        let nf = t - SHIFT;
        let n = t.to_bits().wrapping_sub(SHIFT.to_bits());
        let r = (y - nf * LN2_HI) - nf * LN2_LO;
        let mut e: f32 = 1.0 / 40320.0;
        for c in [
            1.0 / 5040.0,
            1.0 / 720.0,
            1.0 / 120.0,
            1.0 / 24.0,
            1.0 / 6.0,
            0.5,
            1.0,
            1.0,
        ] {
            e = e.mul_add(r, c);
        }
        let e = e * f32::from_bits(n.wrapping_add(127) << 23);
        let big = (1.0 - 2.0 / (e + 1.0)).copysign(x);
        if ax < 0.3 { small } else { big }
    }
}

/// `a ← tanh z` and, when given, `d ← 1 − a²`.
pub struct Tanh<'a, T> {
    /// Pre-activations.
    pub z: &'a [T],
    /// Activations (same length).
    pub a: &'a mut [T],
    /// Derivatives (same length), if wanted.
    pub d: Option<&'a mut [T]>,
}

impl<T: FastTanh + std::ops::Mul<Output = T> + std::ops::Sub<Output = T> + From<i8>> WithSimd
    for Tanh<'_, T>
{
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, _s: S) {
        // Plain loops: compiled with the target features of `S`, the compiler vectorises them.
        for (ai, &zi) in self.a.iter_mut().zip(self.z) {
            *ai = T::tanh_fast(zi);
        }
        if let Some(d) = self.d {
            let one = T::from(1);
            for (di, &ai) in d.iter_mut().zip(self.a.iter()) {
                *di = one - ai * ai;
            }
        }
    }
}
