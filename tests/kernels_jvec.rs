//! The J-vector drivers `j_v`, `jt_u`, `jt_j_v` against a naive f64 reference, at odd shapes,
//! on several thread counts, and with proptest over shapes.

mod common;

use common::{rand_vec, rng};
use itlin::Real;
use itlin::kernels::cpu::{j_v, jt_j_v, jt_u};
use proptest::prelude::*;

const MS: [usize; 5] = [0, 1, 3, 17, 130];
const PS: [usize; 5] = [0, 1, 5, 129, 2049];

/// Reference `J v` in f64 and, per row, `Σ_j |J_ij v_j|` (the scale of its rounding error).
fn ref_jv(j: &[f64], m: usize, p: usize, v: &[f64]) -> (Vec<f64>, Vec<f64>) {
    (0..m)
        .map(|i| {
            let row = &j[i * p..(i + 1) * p];
            (
                row.iter().zip(v).map(|(a, b)| a * b).sum::<f64>(),
                row.iter().zip(v).map(|(a, b)| (a * b).abs()).sum::<f64>(),
            )
        })
        .unzip()
}

/// Reference `Jᵀ u` in f64 and, per column, `Σ_i |J_ij u_i|`.
fn ref_jtu(j: &[f64], m: usize, p: usize, u: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut out = vec![0.0; p];
    let mut mag = vec![0.0; p];
    for i in 0..m {
        for c in 0..p {
            out[c] += j[i * p + c] * u[i];
            mag[c] += (j[i * p + c] * u[i]).abs();
        }
    }
    (out, mag)
}

#[track_caller]
fn check(what: &str, got: &[f64], want: &[f64], mag: &[f64], n: usize, eps: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for i in 0..got.len() {
        let tol = 2.0 * (n as f64 + 8.0) * eps * mag[i] + 1e-300;
        let d = (got[i] - want[i]).abs();
        assert!(
            d <= tol,
            "{what}: entry {i}: {} vs {} (diff {d:e} > {tol:e})",
            got[i],
            want[i]
        );
    }
}

fn one_shape<T: Real>(m: usize, p: usize, seed: u64) {
    let mut r = rng(seed);
    let j: Vec<T> = rand_vec(&mut r, m * p);
    let v: Vec<T> = rand_vec(&mut r, p);
    let u: Vec<T> = rand_vec(&mut r, m);
    let (jf, vf, uf): (Vec<f64>, Vec<f64>, Vec<f64>) = (
        j.iter().map(|x| x.to_f64()).collect(),
        v.iter().map(|x| x.to_f64()).collect(),
        u.iter().map(|x| x.to_f64()).collect(),
    );
    let e = T::EPSILON.to_f64();
    let what = |k: &str| format!("{k} {} m={m} p={p}", T::NAME);

    // Outputs start as garbage: the drivers must overwrite, not accumulate.
    let mut out = vec![T::from_f64(7.0); m];
    j_v(&j, m, p, &v, &mut out);
    let (want, mag) = ref_jv(&jf, m, p, &vf);
    check(&what("j_v"), &common::to_f64(&out), &want, &mag, p, e);

    let mut out = vec![T::from_f64(7.0); p];
    jt_u(&j, m, p, &u, &mut out);
    let (want, mag) = ref_jtu(&jf, m, p, &uf);
    check(&what("jt_u"), &common::to_f64(&out), &want, &mag, m, e);

    let mut out = vec![T::from_f64(7.0); p];
    jt_j_v(&j, m, p, &v, &mut out);
    // Reference Jᵀ(J v); the error scale is Σ_i |J_ij| Σ_k |J_ik v_k|.
    let (w, wmag) = ref_jv(&jf, m, p, &vf);
    let (want, _) = ref_jtu(&jf, m, p, &w);
    let (_, mag) = ref_jtu(&jf.iter().map(|x| x.abs()).collect::<Vec<_>>(), m, p, &wmag);
    check(
        &what("jt_j_v"),
        &common::to_f64(&out),
        &want,
        &mag,
        m + p,
        e,
    );
}

fn all_shapes<T: Real>() {
    for (a, &m) in MS.iter().enumerate() {
        for (b, &p) in PS.iter().enumerate() {
            one_shape::<T>(m, p, (10 * a + b) as u64);
        }
    }
}

/// Rows long enough for the four-stream kernels (`simd::DOT_SPLIT`).
#[test]
fn drivers_long_rows() {
    let p = itlin::kernels::cpu::simd::DOT_SPLIT + 333;
    one_shape::<f64>(9, p, 5);
    one_shape::<f32>(6, p, 6);
}

#[test]
fn drivers_f64() {
    all_shapes::<f64>();
}

#[test]
fn drivers_f32() {
    all_shapes::<f32>();
}

/// Row partitions that do not divide evenly (1, 3 and 5 threads).
#[test]
fn drivers_on_other_thread_counts() {
    for threads in [1, 3, 5] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        pool.install(|| {
            one_shape::<f64>(17, 129, 99);
            one_shape::<f32>(130, 5, 98);
            one_shape::<f64>(3, 2049, 97);
        });
    }
}

#[test]
#[should_panic(expected = "j_v: v has length 4, J has 5 columns")]
fn j_v_shape_mismatch_panics() {
    let j = vec![0.0f64; 15];
    j_v(&j, 3, 5, &[0.0; 4], &mut [0.0; 3]);
}

#[test]
#[should_panic(expected = "jt_u: J has 14 entries, expected m·p = 3·5")]
fn jt_u_size_mismatch_panics() {
    let j = vec![0.0f32; 14];
    jt_u(&j, 3, 5, &[0.0; 3], &mut [0.0; 5]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn drivers_match_reference(m in 0usize..40, p in 0usize..300, seed in 0u64..1000) {
        one_shape::<f64>(m, p, seed);
        one_shape::<f32>(m, p, seed + 1);
    }
}

/// `zeroed_vec` (the Jacobian's buffer) is all zeros at every size, including sizes that
/// take the huge-page path, and the buffer is writable everywhere.
#[test]
fn zeroed_vec_is_zero() {
    use itlin::kernels::cpu::zeroed_vec;
    for n in [0usize, 1, 17, 1 << 20, (1 << 20) + 3] {
        let mut v: Vec<f64> = zeroed_vec(n);
        assert_eq!(v.len(), n);
        assert!(v.iter().all(|&x| x == 0.0), "zeroed_vec({n}) not zero");
        v.iter_mut().enumerate().for_each(|(i, x)| *x = i as f64);
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as f64));
        let w: Vec<f32> = zeroed_vec(n);
        assert!(
            w.iter().all(|&x| x == 0.0),
            "zeroed_vec::<f32>({n}) not zero"
        );
    }
}
