//! Every device op against the CPU implementation: f64 to 1e-12 relative, f32 to 1e-5
//! (the dual GN step, a linear solve, to 1e-10 / 1e-3: its error grows with the condition
//! number of Θ + NλI). Outputs are poisoned with NaN before every launch (caller buffers
//! filled with NaN, backend allocations through `set_poison`) and checked fully written.
//! Odd sizes throughout. Every test skips with the reason when no GPU is usable, unless
//! `ITLIN_REQUIRE_GPU=1` (the GPU check script sets it), in which case it fails.
#![cfg(feature = "cuda")]

mod common;

use common::{mat_to_row_major, rand_vec, rel_err, rng, to_f64};
use faer::{Mat, MatRef};
use itlin::kernels::cuda::{CudaBackend, CudaReal, DualStep, mlp as dmlp, ntk as dntk, ops};
use itlin::solve::{Form, Loss, gauss_newton_step};
use itlin::{Activation, Init, Mlp, Model, Parameterization, Real};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// One backend shared by the tests (its handles are used by one test at a time).
fn backend() -> Option<MutexGuard<'static, CudaBackend>> {
    static BE: OnceLock<Option<Mutex<CudaBackend>>> = OnceLock::new();
    let be = BE.get_or_init(|| match CudaBackend::new() {
        Ok(be) => {
            println!(
                "CUDA device: {} ({})",
                be.device_name().unwrap_or_default(),
                be.arch()
            );
            be.set_poison(true);
            Some(Mutex::new(be))
        }
        Err(e) if std::env::var("ITLIN_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("ITLIN_REQUIRE_GPU=1 but {e}")
        }
        Err(e) => {
            println!("skipping: {e}");
            None
        }
    });
    match be {
        Some(m) => Some(m.lock().unwrap_or_else(|p| p.into_inner())),
        None => {
            println!("skipping: no usable CUDA device (see the first message)");
            None
        }
    }
}

fn tol<T: Real>() -> f64 {
    if T::NAME == "f64" { 1e-12 } else { 1e-5 }
}

/// Asserts every value is finite (nothing left as poison) and close to the reference.
#[track_caller]
fn check<T: Real>(what: &str, got: &[T], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = got.iter().position(|x| !x.is_finite()) {
        panic!(
            "{what} ({}): element {i} of {} not written (or not finite)",
            T::NAME,
            got.len()
        );
    }
    let e = rel_err(&to_f64(got), want);
    assert!(
        e <= tol,
        "{what} ({}): relative error {e:e} > {tol:e}",
        T::NAME
    );
}

fn nan_buf<T: CudaReal>(
    be: &CudaBackend,
    n: usize,
) -> itlin::kernels::cuda::cudarc::driver::CudaSlice<T> {
    be.upload(&vec![T::from_f64(f64::NAN); n]).expect("upload")
}

fn row_major<T: Real>(m: MatRef<'_, T>) -> Vec<T> {
    let mut v = Vec::with_capacity(m.nrows() * m.ncols());
    for i in 0..m.nrows() {
        for j in 0..m.ncols() {
            v.push(m[(i, j)]);
        }
    }
    v
}

fn jvec_case<T: CudaReal>(be: &CudaBackend, m: usize, p: usize, offset: usize, seed: u64) {
    let mut r = rng(seed);
    let jh: Vec<T> = rand_vec(&mut r, m * p + offset);
    let v: Vec<T> = rand_vec(&mut r, p);
    let u: Vec<T> = rand_vec(&mut r, m);
    let j_host = &jh[offset..];
    let mut want_jv = vec![T::zero_impl(); m];
    itlin::kernels::cpu::j_v(j_host, m, p, &v, &mut want_jv);
    let mut want_jtu = vec![T::zero_impl(); p];
    itlin::kernels::cpu::jt_u(j_host, m, p, &u, &mut want_jtu);
    let mut want_gn = vec![T::zero_impl(); p];
    itlin::kernels::cpu::jt_j_v(j_host, m, p, &v, &mut want_gn);

    let jd_all = be.upload(&jh).unwrap();
    let jd = jd_all.slice(offset..); // misaligned when offset > 0: exercises the scalar heads
    let (vd, ud) = (be.upload(&v).unwrap(), be.upload(&u).unwrap());
    let what = format!("m={m} p={p} offset={offset}");

    let mut out = nan_buf::<T>(be, m);
    ops::j_v(be, &jd, m, p, &vd, &mut out).unwrap();
    check(
        &format!("j_v {what}"),
        &be.download(&out).unwrap(),
        &to_f64(&want_jv),
        tol::<T>(),
    );

    let mut out = nan_buf::<T>(be, p);
    ops::jt_u(be, &jd, m, p, &ud, &mut out).unwrap();
    check(
        &format!("jt_u {what}"),
        &be.download(&out).unwrap(),
        &to_f64(&want_jtu),
        tol::<T>(),
    );

    // Output at an odd offset: the wide-access path must not be taken for it.
    let mut big = nan_buf::<T>(be, p + 1);
    {
        let mut out = big.slice_mut(1..);
        ops::jt_u(be, &jd, m, p, &ud, &mut out).unwrap();
    }
    let got = be.download(&big).unwrap();
    assert!(
        got[0].to_f64().is_nan(),
        "jt_u wrote before its output view"
    );
    check(
        &format!("jt_u (offset out) {what}"),
        &got[1..],
        &to_f64(&want_jtu),
        tol::<T>(),
    );

    let mut out = nan_buf::<T>(be, p);
    ops::jt_j_v(be, &jd, m, p, &vd, &mut out).unwrap();
    check(
        &format!("jt_j_v {what}"),
        &be.download(&out).unwrap(),
        &to_f64(&want_gn),
        tol::<T>(),
    );

    // The cuBLAS baselines used by the benchmark compute the same thing.
    let mut out = nan_buf::<T>(be, m);
    ops::gemv_rm(be, false, &jd, m, p, &vd, &mut out).unwrap();
    check(
        &format!("cublas J v {what}"),
        &be.download(&out).unwrap(),
        &to_f64(&want_jv),
        tol::<T>(),
    );
    let mut out = nan_buf::<T>(be, p);
    ops::gemv_rm(be, true, &jd, m, p, &ud, &mut out).unwrap();
    check(
        &format!("cublas Jᵀu {what}"),
        &be.download(&out).unwrap(),
        &to_f64(&want_jtu),
        tol::<T>(),
    );
}

fn jvec_all<T: CudaReal>(be: &CudaBackend) {
    // (m, p): tiny, odd, p not a multiple of the packet, packet-aligned p, many rows
    // (several row chunks in Jᵀu), wide rows.
    for (i, &(m, p)) in [
        (1, 1),
        (3, 5),
        (7, 33),
        (30, 1001),
        (12, 64),
        (3001, 37),
        (5, 4099),
    ]
    .iter()
    .enumerate()
    {
        for offset in [0, 1] {
            jvec_case::<T>(be, m, p, offset, 100 + i as u64);
        }
    }
}

#[test]
fn j_vector_products_match_cpu() {
    let Some(be) = backend() else { return };
    jvec_all::<f64>(&be);
    jvec_all::<f32>(&be);
}

fn activation_case<T: CudaReal>(be: &CudaBackend, act: Activation) {
    let (rows, cols) = (7, 13);
    let mut r = rng(7);
    let z: Vec<T> = rand_vec::<T>(&mut r, rows * cols)
        .iter()
        .map(|&x| x * T::from_f64(4.0))
        .collect();
    let b: Vec<T> = rand_vec(&mut r, cols);
    let sb = T::from_f64(0.7);
    let mut want_a = Vec::new();
    let mut want_d = Vec::new();
    for (i, &zi) in z.iter().enumerate() {
        let (a, d) = act.apply_with_derivative(zi + sb * b[i % cols]);
        want_a.push(a.to_f64());
        want_d.push(d.to_f64());
    }
    let (zd, bd) = (be.upload(&z).unwrap(), be.upload(&b).unwrap());
    let mut a = nan_buf::<T>(be, z.len());
    let mut d = nan_buf::<T>(be, z.len());
    ops::bias_act(
        be,
        act,
        &zd,
        Some(&bd),
        sb,
        rows,
        cols,
        &mut a,
        Some(&mut d),
    )
    .unwrap();
    check(
        &format!("{act} φ"),
        &be.download(&a).unwrap(),
        &want_a,
        tol::<T>(),
    );
    check(
        &format!("{act} φ'"),
        &be.download(&d).unwrap(),
        &want_d,
        tol::<T>(),
    );
    // In place, without bias and derivative.
    let mut zz = be.upload(&z).unwrap();
    ops::bias_act_in_place(be, act, &mut zz, None, sb, rows, cols, None).unwrap();
    let want: Vec<f64> = z.iter().map(|&zi| act.apply(zi).to_f64()).collect();
    check(
        &format!("{act} φ in place"),
        &be.download(&zz).unwrap(),
        &want,
        tol::<T>(),
    );
}

#[test]
fn activations_match_cpu() {
    let Some(be) = backend() else { return };
    for act in Activation::ALL {
        activation_case::<f64>(&be, act);
        activation_case::<f32>(&be, act);
    }
}

fn mlps() -> Vec<Mlp> {
    let mut v: Vec<Mlp> = Activation::ALL
        .iter()
        .map(|&a| Mlp::new(&[5, 7, 3], a).unwrap())
        .collect();
    v.push(
        Mlp::with_parameterization(
            &[4, 6, 5, 2],
            Activation::Tanh,
            Parameterization::Ntk {
                sigma_w: 1.3,
                sigma_b: 0.4,
            },
        )
        .unwrap(),
    );
    v.push(Mlp::new(&[3, 1], Activation::Relu).unwrap());
    // Odd widths over a 16-byte packet: packets crossing weight rows (v2's per-element path).
    v.push(Mlp::new(&[13, 9, 3], Activation::Tanh).unwrap());
    // Four layers: the fused NTK assembly's middle pass (Θ added as it is).
    v.push(Mlp::new(&[4, 6, 5, 3, 2], Activation::Gelu).unwrap());
    // Every fan_in a multiple of 4 (f32 and f64) or of 2 only (f64): jacobian_stripes's own
    // kernels (weight stripes, spilling slots when p is odd, gaps) instead of its fallback.
    v.push(Mlp::new(&[8, 12, 4, 3], Activation::Relu).unwrap());
    v.push(Mlp::new(&[6, 10, 3], Activation::Tanh).unwrap());
    // fan_in / W > 1024 slots: jacobian_stripes splits a weight row over several blocks.
    v.push(Mlp::new(&[4104, 3, 2], Activation::Tanh).unwrap());
    v
}

struct Case<T> {
    theta: Vec<T>,
    x: Mat<T>,
    n: usize,
}

fn case<T: Real>(mlp: &Mlp, n: usize, seed: u64) -> Case<T> {
    let init = match mlp.parameterization() {
        Parameterization::Standard => Init::Standard,
        Parameterization::Ntk { .. } => Init::Ntk {
            sigma_w: 1.3,
            sigma_b: 0.4,
        },
    };
    let mut theta: Vec<T> = mlp.init(init, seed);
    // Non-zero biases so that the bias paths are tested.
    let mut r = rng(seed + 1);
    let noise: Vec<T> = rand_vec(&mut r, theta.len());
    for (t, e) in theta.iter_mut().zip(noise) {
        *t += T::from_f64(0.1) * e;
    }
    let x = common::rand_mat::<T>(&mut r, n, mlp.widths()[0]);
    Case { theta, x, n }
}

fn mlp_case<T: CudaReal>(be: &CudaBackend, mlp: &Mlp, n: usize) {
    let c = case::<T>(mlp, n, 42);
    let p = <Mlp as Model<T>>::n_params(mlp);
    let nc = n * <Mlp as Model<T>>::n_outputs(mlp);
    let name = format!("{:?} {} N={n}", mlp.widths(), mlp.activation());
    let td = be.upload(&c.theta).unwrap();
    let xd = be.upload(&row_major(c.x.as_ref())).unwrap();
    let mut r = rng(9);
    let v: Vec<T> = rand_vec(&mut r, p);
    let u: Vec<T> = rand_vec(&mut r, nc);
    let (vd, ud) = (be.upload(&v).unwrap(), be.upload(&u).unwrap());

    let f = mlp.forward(&c.theta, c.x.as_ref());
    let got = dmlp::forward(be, mlp, &td, &xd, n).unwrap();
    check(
        &format!("forward {name}"),
        &be.download(&got).unwrap(),
        &mat_to_row_major(f.as_ref()),
        tol::<T>(),
    );

    let (f2, jv) = mlp.jvp(&c.theta, c.x.as_ref(), &v);
    let (gf, gjv) = dmlp::jvp(be, mlp, &td, &xd, n, &vd).unwrap();
    check(
        &format!("jvp primal {name}"),
        &be.download(&gf).unwrap(),
        &mat_to_row_major(f2.as_ref()),
        tol::<T>(),
    );
    check(
        &format!("jvp {name}"),
        &be.download(&gjv).unwrap(),
        &mat_to_row_major(jv.as_ref()),
        tol::<T>(),
    );

    let umat = MatRef::from_row_major_slice(&u, n, nc / n);
    let g = mlp.vjp(&c.theta, c.x.as_ref(), umat);
    let gg = dmlp::vjp(be, mlp, &td, &xd, n, &ud).unwrap();
    check(
        &format!("vjp {name}"),
        &be.download(&gg).unwrap(),
        &to_f64(&g),
        tol::<T>(),
    );

    let j = mlp.jacobian(&c.theta, c.x.as_ref());
    let jd = dmlp::jacobian(be, mlp, &td, &xd, n).unwrap();
    check(
        &format!("jacobian {name}"),
        &be.download(&jd).unwrap(),
        &to_f64(j.as_slice()),
        tol::<T>(),
    );

    // Jacobian written into a caller buffer poisoned with NaN, by both kernels, also into a
    // view one element in (misaligned for 16-byte stores); nothing outside J is touched.
    let s = dmlp::signals(be, mlp, &td, &xd, n).unwrap();
    // Versions: 1, 2, the default (v4 with 16 / 8 weight rows per block), v4 with whole
    // weight blocks per block, and v4 with one weight row per block written two at a time.
    // Offsets 0 and 4 keep J 16-byte aligned in f32 (0 and 2 in f64), the others do not (v4
    // falls back to v2 there).
    let v4 = |rows, at_once| ops::StripeOpts {
        weight_rows_per_block: rows,
        min_rows_at_once: at_once,
        ..Default::default()
    };
    let variants = [
        (1, None),
        (2, None),
        (4, None),
        (4, Some(v4(1 << 20, 0))),
        (4, Some(v4(1, 2))),
        (4, Some(v4(9, 0))),
    ];
    for (ver, opts) in variants {
        for offset in [0, 1, 2, 4] {
            let mut jn = nan_buf::<T>(be, nc * p + 4);
            {
                let mut view = jn.slice_mut(offset..offset + nc * p);
                match (ver, opts) {
                    (1, _) => dmlp::write_jacobian_per_layer(be, mlp, &s, &mut view).unwrap(),
                    (2, _) => dmlp::write_jacobian_flat(be, mlp, &s, &mut view).unwrap(),
                    (_, Some(o)) => {
                        dmlp::write_jacobian_stripes(be, mlp, &s, &mut view, o).unwrap()
                    }
                    _ => dmlp::write_jacobian(be, mlp, &s, &mut view).unwrap(),
                }
            }
            let all = be.download(&jn).unwrap();
            let outside = all[..offset].iter().chain(&all[offset + nc * p..]);
            assert!(
                outside.into_iter().all(|x| !x.is_finite()),
                "write_jacobian (v{ver} {opts:?}) wrote outside J"
            );
            check(
                &format!("write_jacobian v{ver} {opts:?} offset={offset} {name}"),
                &all[offset..offset + nc * p],
                &to_f64(j.as_slice()),
                tol::<T>(),
            );
        }
    }

    let k = itlin::ntk::empirical(mlp, &c.theta, c.x.as_ref(), itlin::ntk::Method::Explicit);
    let kd = dntk::ntk_structured(be, mlp, &td, &xd, n).unwrap();
    check(
        &format!("structured NTK {name}"),
        &be.download(&kd).unwrap(),
        &mat_to_row_major(k.as_ref()),
        tol::<T>(),
    );
}

#[test]
fn mlp_forward_jvp_vjp_jacobian_ntk_match_cpu() {
    let Some(be) = backend() else { return };
    for mlp in mlps() {
        for n in [1, 3] {
            mlp_case::<f64>(&be, &mlp, n);
            mlp_case::<f32>(&be, &mlp, n);
        }
    }
}

fn gn_case<T: CudaReal>(be: &CudaBackend, mlp: &Mlp, n: usize, lambda: f64, tol: f64) {
    let c = case::<T>(mlp, n, 5);
    let cout = <Mlp as Model<T>>::n_outputs(mlp);
    let mut r = rng(6);
    let y = common::rand_mat::<T>(&mut r, n, cout);
    let want = gauss_newton_step(
        mlp,
        &c.theta,
        c.x.as_ref(),
        y.as_ref(),
        Loss::Mse,
        lambda,
        Form::Dual,
    );
    let td = be.upload(&c.theta).unwrap();
    let xd = be.upload(&row_major(c.x.as_ref())).unwrap();
    let yd = be.upload(&row_major(y.as_ref())).unwrap();
    match dntk::gn_dual_step(be, mlp, &td, &xd, &yd, c.n, T::from_f64(lambda)).unwrap() {
        DualStep::Solved(d) => check(
            &format!("gn_dual_step {:?} N={n} λ={lambda}", mlp.widths()),
            &be.download(&d).unwrap(),
            &to_f64(&want),
            tol,
        ),
        DualStep::NotPositiveDefinite { minor } => {
            panic!("Θ + NλI not positive definite at minor {minor} with λ = {lambda}")
        }
    }
}

/// The bias gradient's column sum in its two-stage form (more rows than
/// `COL_SUM_ONE_STAGE_ROWS`), directly and inside a VJP with many samples.
fn col_sum_case<T: CudaReal>(be: &CudaBackend) {
    for (rows, cols) in [(1000, 37), (257, 3), (4099, 130), (100, 10)] {
        let mut r = rng(rows as u64);
        let x: Vec<T> = rand_vec(&mut r, rows * cols);
        let xd = be.upload(&x).unwrap();
        let mut out = nan_buf::<T>(be, cols);
        ops::col_sum(be, &xd, rows, cols, T::from_f64(0.5), &mut out).unwrap();
        let want: Vec<f64> = (0..cols)
            .map(|j| 0.5 * (0..rows).map(|i| x[i * cols + j].to_f64()).sum::<f64>())
            .collect();
        check(
            &format!("col_sum {rows}×{cols}"),
            &be.download(&out).unwrap(),
            &want,
            tol::<T>() * 10.0,
        );
    }
    let mlp = Mlp::new(&[5, 7, 3], Activation::Tanh).unwrap();
    let n = 600;
    let c = case::<T>(&mlp, n, 8);
    let mut r = rng(10);
    let u: Vec<T> = rand_vec(&mut r, n * 3);
    let (td, xd, ud) = (
        be.upload(&c.theta).unwrap(),
        be.upload(&row_major(c.x.as_ref())).unwrap(),
        be.upload(&u).unwrap(),
    );
    let g = mlp.vjp(
        &c.theta,
        c.x.as_ref(),
        MatRef::from_row_major_slice(&u, n, 3),
    );
    let gd = dmlp::vjp(be, &mlp, &td, &xd, n, &ud).unwrap();
    check(
        &format!("vjp N={n}"),
        &be.download(&gd).unwrap(),
        &to_f64(&g),
        tol::<T>(),
    );
}

#[test]
fn column_sums_and_vjp_with_many_rows_match_cpu() {
    let Some(be) = backend() else { return };
    col_sum_case::<f64>(&be);
    col_sum_case::<f32>(&be);
}

#[test]
fn dual_gauss_newton_step_matches_cpu() {
    let Some(be) = backend() else { return };
    let mlp = Mlp::new(&[5, 7, 3], Activation::Tanh).unwrap();
    gn_case::<f64>(&be, &mlp, 3, 0.1, 1e-10);
    gn_case::<f32>(&be, &mlp, 3, 0.1, 1e-3);
    let deep = Mlp::new(&[4, 9, 6, 2], Activation::Gelu).unwrap();
    gn_case::<f64>(&be, &deep, 5, 0.05, 1e-10);
    gn_case::<f32>(&be, &deep, 5, 0.05, 1e-3);
}

#[test]
fn non_positive_definite_system_is_reported_not_an_error() {
    let Some(be) = backend() else { return };
    // Θ has rank ≤ P = 4 < N·C = 6, so with λ = 0 the Cholesky must fail (or, by rounding,
    // succeed with a huge step); λ < 0 large enough makes it certainly indefinite.
    let mlp = Mlp::new(&[1, 1, 1], Activation::Tanh).unwrap();
    let c = case::<f64>(&mlp, 6, 3);
    let td = be.upload(&c.theta).unwrap();
    let xd = be.upload(&row_major(c.x.as_ref())).unwrap();
    let yd = be.upload(&[0.5f64; 6]).unwrap();
    let out = dntk::gn_dual_step(&be, &mlp, &td, &xd, &yd, 6, -10.0).unwrap();
    assert!(
        matches!(out, DualStep::NotPositiveDefinite { minor } if minor >= 1),
        "an indefinite system must be reported: {out:?}"
    );
}

#[test]
#[should_panic(expected = "j_v: v")]
fn shape_mismatch_panics_at_the_boundary() {
    let Some(be) = backend() else {
        // Keep the `should_panic` contract when skipping.
        panic!("j_v: v (skipped: no GPU)");
    };
    let j = be.upload(&[1.0f64; 6]).unwrap();
    let v = be.upload(&[1.0f64; 2]).unwrap();
    let mut out = be.upload(&[0.0f64; 2]).unwrap();
    ops::j_v(&be, &j, 2, 3, &v, &mut out).unwrap();
}

fn host_case<T: CudaReal>(be: &CudaBackend) {
    use itlin::kernels::cuda::host;
    let mlp = Mlp::new(&[5, 7, 3], Activation::Softplus).unwrap();
    let c = case::<T>(&mlp, 3, 11);
    let mut r = rng(12);
    let v: Vec<T> = rand_vec(&mut r, c.theta.len());
    let u = common::rand_mat::<T>(&mut r, 3, 3);
    let y = common::rand_mat::<T>(&mut r, 3, 3);
    let x = c.x.as_ref();
    let f = host::forward(be, &mlp, &c.theta, x).unwrap();
    check(
        "host forward",
        &row_major(f.as_ref()),
        &mat_to_row_major(mlp.forward(&c.theta, x).as_ref()),
        tol::<T>(),
    );
    let (_, jv) = host::jvp(be, &mlp, &c.theta, x, &v).unwrap();
    check(
        "host jvp",
        &row_major(jv.as_ref()),
        &mat_to_row_major(mlp.jvp(&c.theta, x, &v).1.as_ref()),
        tol::<T>(),
    );
    let g = host::vjp(be, &mlp, &c.theta, x, u.as_ref()).unwrap();
    check(
        "host vjp",
        &g,
        &to_f64(&mlp.vjp(&c.theta, x, u.as_ref())),
        tol::<T>(),
    );
    let j = host::jacobian(be, &mlp, &c.theta, x).unwrap();
    check(
        "host jacobian",
        j.as_slice(),
        &to_f64(mlp.jacobian(&c.theta, x).as_slice()),
        tol::<T>(),
    );
    let k = host::ntk(be, &mlp, &c.theta, x).unwrap();
    let want = itlin::ntk::empirical(&mlp, &c.theta, x, itlin::ntk::Method::Explicit);
    check(
        "host ntk",
        &row_major(k.as_ref()),
        &mat_to_row_major(want.as_ref()),
        tol::<T>(),
    );
    let d = host::gn_dual_step(be, &mlp, &c.theta, x, y.as_ref(), 0.1)
        .unwrap()
        .expect("positive definite");
    let want = gauss_newton_step(&mlp, &c.theta, x, y.as_ref(), Loss::Mse, 0.1, Form::Dual);
    let gn_tol = if T::NAME == "f64" { 1e-10 } else { 1e-3 };
    check("host gn_dual_step", &d, &to_f64(&want), gn_tol);
}

#[test]
fn host_wrappers_match_cpu() {
    let Some(be) = backend() else { return };
    host_case::<f64>(&be);
    host_case::<f32>(&be);
}
