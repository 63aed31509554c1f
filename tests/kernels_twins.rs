//! Every SIMD primitive of `CpuKernels` against its scalar twin, for f32 and f64, at the sizes
//! around the register and unroll boundaries, on aligned and unaligned slices.

mod common;

use common::{rand_vec, rng};
use itlin::Real;
use itlin::kernels::cpu::{CpuKernels, scalar};

const SIZES: [usize; 9] = [0, 1, 15, 16, 17, 127, 128, 129, 1000];
/// Start offsets into a larger buffer: aligned and unaligned views.
const OFFSETS: [usize; 2] = [0, 1];

fn eps<T: Real>() -> f64 {
    T::EPSILON.to_f64()
}

/// A random slice of length `n` starting at `off` inside a larger buffer.
fn view<T: Real>(seed: u64, n: usize, off: usize) -> Vec<T> {
    rand_vec::<T>(&mut rng(seed), n + off)
}

/// `|got − want| ≤ tol` for every entry.
#[track_caller]
fn close_each(what: &str, got: &[f64], want: &[f64], tol: impl Fn(usize) -> f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for i in 0..got.len() {
        let d = (got[i] - want[i]).abs();
        assert!(
            d <= tol(i),
            "{what}: entry {i}: {} vs {} (diff {d:e} > {:e})",
            got[i],
            want[i],
            tol(i)
        );
    }
}

fn f64s<T: Real>(x: &[T]) -> Vec<f64> {
    x.iter().map(|v| v.to_f64()).collect()
}

fn twins<T: Real>() {
    let e = eps::<T>();
    for &n in &SIZES {
        for &off in &OFFSETS {
            let what = |k: &str| format!("{k} {} n={n} off={off}", T::NAME);
            let ab = view::<T>(1 + n as u64, n, off);
            let bb = view::<T>(1000 + n as u64, n, off);
            let (a, b) = (&ab[off..], &bb[off..]);
            let abs: f64 = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x.to_f64() * y.to_f64()).abs())
                .sum();
            let bound = 2.0 * (n as f64 + 4.0) * e * abs + f64::MIN_POSITIVE;

            // dot
            let (got, want) = (T::dot(a, b).to_f64(), scalar::dot(a, b).to_f64());
            assert!(
                (got - want).abs() <= bound,
                "{}: {got} vs {want}",
                what("dot")
            );

            // sum_sq
            let sq: f64 = a.iter().map(|x| x.to_f64().powi(2)).sum();
            let (got, want) = (T::sum_sq(a).to_f64(), scalar::sum_sq(a).to_f64());
            let bsq = 2.0 * (n as f64 + 4.0) * e * sq + f64::MIN_POSITIVE;
            assert!(
                (got - want).abs() <= bsq,
                "{}: {got} vs {want}",
                what("sum_sq")
            );

            // axpy
            let alpha = T::from_f64(-0.75);
            let mut y1 = bb.clone();
            let mut y2 = bb.clone();
            T::axpy(alpha, a, &mut y1[off..]);
            scalar::axpy(alpha, a, &mut y2[off..]);
            close_each(&what("axpy"), &f64s(&y1), &f64s(&y2), |i| {
                let i0 = i.saturating_sub(off).min(n.saturating_sub(1));
                let t = if n == 0 {
                    0.0
                } else {
                    (0.75 * a[i0].to_f64()).abs()
                };
                2.0 * e * (bb[i].to_f64().abs() + t)
            });
            assert_eq!(
                y1[..off],
                bb[..off],
                "{}: wrote before the slice",
                what("axpy")
            );

            // scale_into (exact: one rounding either way)
            let mut o1 = bb.clone();
            let mut o2 = bb.clone();
            T::scale_into(alpha, a, &mut o1[off..]);
            scalar::scale_into(alpha, a, &mut o2[off..]);
            assert_eq!(o1, o2, "{}", what("scale_into"));

            // mul_elementwise (exact)
            let mut x1 = bb.clone();
            let mut x2 = bb.clone();
            T::mul_elementwise(&mut x1[off..], a);
            scalar::mul_elementwise(&mut x2[off..], a);
            assert_eq!(x1, x2, "{}", what("mul_elementwise"));

            // dot4 / axpy4 on four different rows
            let rows: Vec<Vec<T>> = (0..4)
                .map(|k| view::<T>(50 + k + 7 * n as u64, n, off))
                .collect();
            let r: [&[T]; 4] = std::array::from_fn(|k| &rows[k][off..]);
            let got = T::dot4(r, b);
            let want = scalar::dot4(r, b);
            for k in 0..4 {
                let absk: f64 = r[k]
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (x.to_f64() * y.to_f64()).abs())
                    .sum();
                let bk = 2.0 * (n as f64 + 4.0) * e * absk + f64::MIN_POSITIVE;
                let (g, w) = (got[k].to_f64(), want[k].to_f64());
                assert!((g - w).abs() <= bk, "{} row {k}: {g} vs {w}", what("dot4"));
            }
            let al = [0.5, -1.25, 2.0, -0.3].map(T::from_f64);
            let mut y1 = bb.clone();
            let mut y2 = bb.clone();
            T::axpy4(al, r, &mut y1[off..]);
            scalar::axpy4(al, r, &mut y2[off..]);
            close_each(&what("axpy4"), &f64s(&y1), &f64s(&y2), |i| {
                if i < off {
                    return 0.0;
                }
                let j = i - off;
                let s: f64 = (0..4)
                    .map(|k| (al[k].to_f64() * r[k][j].to_f64()).abs())
                    .sum();
                8.0 * e * (bb[i].to_f64().abs() + s)
            });
        }
    }
}

/// Outer products (plain and streaming) are exact: both compute `(α gᵢ) aⱼ` with the same
/// two roundings. Destination offsets 0..17 cover every misalignment of the streaming path.
fn outer<T: Real>() {
    for &k in &SIZES {
        for rows in [0usize, 1, 3] {
            let g = view::<T>(7, rows, 0);
            let a = view::<T>(8 + k as u64, k, 0);
            let alpha = T::from_f64(1.5);
            let mut want = vec![T::zero_impl(); rows * k];
            scalar::outer_into(alpha, &g, &a, &mut want);
            for off in 0..17 {
                let mut b1 = view::<T>(9, rows * k + off + 3, 0);
                let mut b2 = b1.clone();
                let end = off + rows * k;
                T::outer_into(alpha, &g, &a, &mut b1[off..end]);
                T::outer_into_stream(alpha, &g, &a, &mut b2[off..end]);
                let what = format!("{} rows={rows} k={k} off={off}", T::NAME);
                assert_eq!(&b1[off..end], &want[..], "outer_into {what}");
                assert_eq!(&b2[off..end], &want[..], "outer_into_stream {what}");
                let orig = view::<T>(9, rows * k + off + 3, 0);
                assert_eq!(
                    b2[..off],
                    orig[..off],
                    "outer_into_stream wrote before {what}"
                );
                assert_eq!(
                    b2[end..],
                    orig[end..],
                    "outer_into_stream wrote after {what}"
                );
                assert_eq!(b1[end..], orig[end..], "outer_into wrote after {what}");
            }
        }
    }
}

#[test]
fn twins_f32() {
    twins::<f32>();
}

#[test]
fn twins_f64() {
    twins::<f64>();
}

#[test]
fn outer_f32() {
    outer::<f32>();
}

#[test]
fn outer_f64() {
    outer::<f64>();
}

#[test]
#[should_panic(expected = "dot: lengths 3 and 4")]
fn dot_length_mismatch_panics() {
    let _ = f64::dot(&[1.0; 3], &[1.0; 4]);
}

#[test]
#[should_panic(expected = "outer_into_stream: out has length 5, g ⊗ a is 2×3")]
fn outer_length_mismatch_panics() {
    f32::outer_into_stream(1.0, &[1.0; 2], &[1.0; 3], &mut [0.0; 5]);
}

/// The vectorised tanh kernel against the standard library's `tanh` (its scalar twin), over
/// both branches of the kernel (|z| < 0.3 and above), the clamp region and special values.
fn tanh_twin<T: Real>(ulps: f64) {
    let mut z: Vec<T> = (0..4000)
        .map(|i| T::from_f64((i as f64 - 2000.0) * 0.0125))
        .collect();
    z.extend(view::<T>(77, 1000, 0));
    z.extend(
        [
            0.0, -0.0, 1e-30, -1e-30, 0.3, -0.3, 0.29999, 25.0, -25.0, 1e6,
        ]
        .map(T::from_f64),
    );
    for &n in &SIZES {
        for &off in &OFFSETS {
            let zz = &z[off..off + n];
            let mut a1 = vec![T::zero_impl(); n];
            let mut d1 = vec![T::zero_impl(); n];
            let mut a2 = a1.clone();
            let mut d2 = d1.clone();
            T::tanh_slice(zz, &mut a1, Some(&mut d1));
            scalar::tanh_slice(zz, &mut a2, Some(&mut d2));
            let mut a3 = vec![T::zero_impl(); n];
            T::tanh_slice(zz, &mut a3, None);
            assert_eq!(a1, a3, "tanh_slice with and without derivative");
            let e = eps::<T>();
            close_each(
                &format!("tanh {} n={n} off={off}", T::NAME),
                &f64s(&a1),
                &f64s(&a2),
                |i| ulps * e * a2[i].to_f64().abs() + f64::MIN_POSITIVE,
            );
            close_each(
                &format!("tanh' {} n={n} off={off}", T::NAME),
                &f64s(&d1),
                &f64s(&d2),
                |i| {
                    ulps * e * (d2[i].to_f64().abs() + 2.0 * a2[i].to_f64().abs())
                        + f64::MIN_POSITIVE
                },
            );
        }
    }
    // The whole range at once (all sizes above cover only its start).
    let mut a1 = vec![T::zero_impl(); z.len()];
    let mut a2 = a1.clone();
    T::tanh_slice(&z, &mut a1, None);
    scalar::tanh_slice(&z, &mut a2, None);
    close_each(
        &format!("tanh {} full range", T::NAME),
        &f64s(&a1),
        &f64s(&a2),
        |i| ulps * eps::<T>() * a2[i].to_f64().abs() + f64::MIN_POSITIVE,
    );
    assert_eq!(a1[z.len() - 10].to_f64(), 0.0);
    assert!(a1[z.len() - 9].to_f64().is_sign_negative(), "tanh(-0) = -0");
}

#[test]
fn tanh_f32() {
    tanh_twin::<f32>(4.0);
}

#[test]
fn tanh_f64() {
    tanh_twin::<f64>(4.0);
}

/// Long dot products take the four-stream path (`simd::DOT_SPLIT`); check it and the
/// lengths around its threshold (the quarters plus the leftover).
fn long_dots<T: Real>() {
    use itlin::kernels::cpu::simd::DOT_SPLIT;
    let e = eps::<T>();
    for n in [DOT_SPLIT - 1, DOT_SPLIT, DOT_SPLIT + 17, 4 * DOT_SPLIT + 3] {
        for off in OFFSETS {
            let ab = view::<T>(3 + n as u64, n, off);
            let bb = view::<T>(4 + n as u64, n, off);
            let (a, b) = (&ab[off..], &bb[off..]);
            let abs: f64 = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x.to_f64() * y.to_f64()).abs())
                .sum();
            let bound = 2.0 * (n as f64 + 4.0) * e * abs;
            let (got, want) = (T::dot(a, b).to_f64(), scalar::dot(a, b).to_f64());
            assert!(
                (got - want).abs() <= bound,
                "dot {} n={n}: {got} vs {want}",
                T::NAME
            );
            // Exact reference in f64 for a sharper check than the twin bound.
            let exact: f64 = a.iter().zip(b).map(|(x, y)| x.to_f64() * y.to_f64()).sum();
            assert!(
                (got - exact).abs() <= bound,
                "dot {} n={n}: {got} vs exact {exact}",
                T::NAME
            );
            let sq: f64 = a.iter().map(|x| x.to_f64().powi(2)).sum();
            let got = T::sum_sq(a).to_f64();
            assert!(
                (got - sq).abs() <= 2.0 * (n as f64 + 4.0) * e * sq,
                "sum_sq {} n={n}",
                T::NAME
            );
        }
    }
}

#[test]
fn long_dots_f32() {
    long_dots::<f32>();
}

#[test]
fn long_dots_f64() {
    long_dots::<f64>();
}

/// The fused `dot_axpy` step against its twin (dot, then axpy), short and long (the
/// four-stream path), aligned and not.
fn dot_axpy_twin<T: Real>() {
    use itlin::kernels::cpu::simd::DOT_SPLIT;
    let e = eps::<T>();
    for n in SIZES
        .into_iter()
        .chain([DOT_SPLIT - 1, DOT_SPLIT, DOT_SPLIT + 77])
    {
        for off in OFFSETS {
            let xb = view::<T>(11 + n as u64, n, off);
            let vb = view::<T>(12 + n as u64, n, off);
            let pb = view::<T>(13 + n as u64, n, off);
            let ab = view::<T>(14 + n as u64, n, off);
            let (x, v, pr) = (&xb[off..], &vb[off..], &pb[off..]);
            let alpha = T::from_f64(0.625);
            let mut a1 = ab.clone();
            let mut a2 = ab.clone();
            let got = T::dot_axpy(x, v, alpha, pr, &mut a1[off..]).to_f64();
            let want = scalar::dot_axpy(x, v, alpha, pr, &mut a2[off..]).to_f64();
            let abs: f64 = x
                .iter()
                .zip(v)
                .map(|(a, b)| (a.to_f64() * b.to_f64()).abs())
                .sum();
            let bound = 2.0 * (n as f64 + 4.0) * e * abs + f64::MIN_POSITIVE;
            let what = format!("dot_axpy {} n={n} off={off}", T::NAME);
            assert!((got - want).abs() <= bound, "{what}: {got} vs {want}");
            close_each(&what, &f64s(&a1), &f64s(&a2), |i| {
                let t = if i < off {
                    0.0
                } else {
                    (0.625 * pr[i - off].to_f64()).abs()
                };
                2.0 * e * (ab[i].to_f64().abs() + t)
            });
        }
    }
}

#[test]
fn dot_axpy_f32() {
    dot_axpy_twin::<f32>();
}

#[test]
fn dot_axpy_f64() {
    dot_axpy_twin::<f64>();
}
