//! Property tests of the MLP's derivatives over random architectures (1–4 layers, widths
//! 1–9, every activation, both parameterisations) and batch sizes 1–9:
//! forward against plain loops written from the documented layout (`itlin::maths`), the adjoint identity, the explicit
//! Jacobian (and the `J v`, `Jᵀ u`, `Jᵀ(J v)` kernels) against JVP / VJP and plain loops,
//! JVP against central differences, and f32 against f64.
//!
//! The runner is deterministic (ChaCha, fixed seed, see `common::strategies::config`); a failure
//! prints the shrunk case.

mod common;
use common::reference::{jtu_naive, jv_naive};
use common::strategies::{Arch, arch, config, theta};
use common::*;
use faer::Mat;
use itlin::{Activation, Model, Parameterization};
use proptest::prelude::*;

/// `φ(z)` written independently of the crate (the activations of `itlin::maths`).
fn phi(act: Activation, z: f64) -> f64 {
    match act {
        Activation::Identity => z,
        Activation::Relu => z.max(0.0),
        Activation::Tanh => z.tanh(),
        Activation::Gelu => 0.5 * z * (1.0 + libm::erf(z * std::f64::consts::FRAC_1_SQRT_2)),
        Activation::Softplus => z.max(0.0) + (-z.abs()).exp().ln_1p(),
    }
}

/// Forward pass by plain loops over the θ layout of `itlin::maths` (per layer `W` row-major
/// `fan_out × fan_in`, then `b`): the output in sample-major order and every hidden
/// pre-activation `z`.
fn naive_forward(arch: &Arch, theta: &[f64], x: &Mat<f64>) -> (Vec<f64>, Vec<f64>) {
    let w = &arch.widths;
    let layers = w.len() - 1;
    let (mut out, mut pre) = (Vec::new(), Vec::new());
    for s in 0..x.nrows() {
        let mut a: Vec<f64> = (0..w[0]).map(|k| x[(s, k)]).collect();
        let mut off = 0;
        for l in 0..layers {
            let (fi, fo) = (w[l], w[l + 1]);
            let (sw, sb) = match arch.param {
                Parameterization::Standard => (1.0, 1.0),
                Parameterization::Ntk { sigma_w, sigma_b } => {
                    (sigma_w / (fi as f64).sqrt(), sigma_b)
                }
            };
            let wm = &theta[off..off + fi * fo];
            let b = &theta[off + fi * fo..off + fi * fo + fo];
            off += fi * fo + fo;
            let z: Vec<f64> = (0..fo)
                .map(|o| sw * (0..fi).map(|i| wm[o * fi + i] * a[i]).sum::<f64>() + sb * b[o])
                .collect();
            if l + 1 == layers {
                out.extend(z);
            } else {
                a = z.iter().map(|&zi| phi(arch.act, zi)).collect();
                pre.extend(z);
            }
        }
        assert_eq!(off, theta.len(), "θ layout");
    }
    (out, pre)
}

/// Whether a ReLU network has a hidden pre-activation within `margin` of the kink at θ.
fn near_relu_kink(arch: &Arch, theta: &[f64], x: &Mat<f64>, margin: f64) -> bool {
    arch.act == Activation::Relu
        && naive_forward(arch, theta, x)
            .1
            .iter()
            .any(|z| z.abs() < margin)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `Σ |aᵢ bᵢ|`: the scale against which rounding in `⟨a, b⟩` is measured.
fn abs_dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x * y).abs()).sum()
}

proptest! {
    #![proptest_config(config(48, 0x00C0_FFEE_0001))]

    /// `Mlp::forward` is the network of `itlin::maths` (layout, parameterisation, activation);
    /// the primal output of the JVP is the forward pass.
    #[test]
    fn forward_matches_plain_loops(arch in arch(), n in 1usize..=9, seed in any::<u64>()) {
        let mlp = arch.mlp();
        let theta: Vec<f64> = theta(&mlp, seed);
        let mut r = rng(seed);
        let x: Mat<f64> = rand_mat(&mut r, n, arch.d());
        let v: Vec<f64> = rand_vec(&mut r, theta.len());
        let f = mat_to_row_major(mlp.forward(&theta, x.as_ref()).as_ref());
        let (want, _) = naive_forward(&arch, &theta, &x);
        assert_close("forward vs loops", &f, &want, 1e-12);
        let (f_jvp, _) = mlp.jvp(&theta, x.as_ref(), &v);
        assert_close("primal of jvp", &mat_to_row_major(f_jvp.as_ref()), &f, 1e-14);
    }

    /// `⟨u, J v⟩ = ⟨Jᵀ u, v⟩` for JVP and VJP, relative to `Σ|uᵢ (Jv)ᵢ|`.
    #[test]
    fn adjoint_identity(arch in arch(), n in 1usize..=9, seed in any::<u64>()) {
        let mlp = arch.mlp();
        let theta: Vec<f64> = theta(&mlp, seed);
        let mut r = rng(seed ^ 1);
        let x: Mat<f64> = rand_mat(&mut r, n, arch.d());
        let v: Vec<f64> = rand_vec(&mut r, theta.len());
        let u: Mat<f64> = rand_mat(&mut r, n, arch.c());
        let (_, jv) = mlp.jvp(&theta, x.as_ref(), &v);
        let jtu = mlp.vjp(&theta, x.as_ref(), u.as_ref());
        let (uu, jv) = (mat_to_vec(u.as_ref()), mat_to_vec(jv.as_ref()));
        let (lhs, rhs) = (dot(&uu, &jv), dot(&jtu, &v));
        let scale = abs_dot(&uu, &jv).max(abs_dot(&jtu, &v));
        prop_assert!(
            (lhs - rhs).abs() <= 1e-12 * scale,
            "⟨u, Jv⟩ = {lhs:e}, ⟨Jᵀu, v⟩ = {rhs:e}, scale {scale:e}"
        );
    }

    /// The explicit Jacobian: `J v` = JVP, `Jᵀ u` = VJP, row `n·C + c` = VJP of `e_{nc}`,
    /// and the crate's `J v`, `Jᵀ u`, `Jᵀ(J v)` kernels = plain loops over `J`.
    #[test]
    fn explicit_jacobian_matches_jvp_vjp_and_loops(
        arch in arch(),
        n in 1usize..=9,
        seed in any::<u64>(),
    ) {
        let mlp = arch.mlp();
        let c = arch.c();
        let theta: Vec<f64> = theta(&mlp, seed);
        let mut r = rng(seed ^ 2);
        let x: Mat<f64> = rand_mat(&mut r, n, arch.d());
        let v: Vec<f64> = rand_vec(&mut r, theta.len());
        let u: Mat<f64> = rand_mat(&mut r, n, c);
        let j = mlp.jacobian(&theta, x.as_ref());
        prop_assert_eq!((j.nrows(), j.ncols()), (n * c, theta.len()));
        let (_, jv) = mlp.jvp(&theta, x.as_ref(), &v);
        let jv = mat_to_row_major(jv.as_ref());
        let u_vec = mat_to_row_major(u.as_ref());
        let jtu = mlp.vjp(&theta, x.as_ref(), u.as_ref());
        assert_close("naive J v vs JVP", &jv_naive(&j, &v), &jv, 1e-12);
        assert_close("naive Jᵀ u vs VJP", &jtu_naive(&j, &u_vec), &jtu, 1e-12);
        assert_close("J::mul_vec vs JVP", &j.mul_vec(&v), &jv, 1e-12);
        assert_close("J::tmul_vec vs VJP", &j.tmul_vec(&u_vec), &jtu, 1e-12);
        assert_close("J::gn_mul_vec vs Jᵀ(J v)", &j.gn_mul_vec(&v), &jtu_naive(&j, &jv), 1e-12);
        let mut seed_row = Mat::<f64>::zeros(n, c);
        for row in 0..n * c {
            seed_row[(row / c, row % c)] = 1.0;
            let g = mlp.vjp(&theta, x.as_ref(), seed_row.as_ref());
            seed_row[(row / c, row % c)] = 0.0;
            assert_close(&format!("row {row} of J vs VJP(e_row)"), j.row(row), &g, 1e-12);
        }
    }

    /// JVP against central differences `(f(θ + hv) − f(θ − hv)) / 2h`, h = 1e-6. ReLU cases
    /// with a pre-activation within 1e-4 of the kink (or crossing it at θ ± hv) are skipped.
    #[test]
    fn jvp_matches_central_differences(arch in arch(), n in 1usize..=9, seed in any::<u64>()) {
        let mlp = arch.mlp();
        let theta: Vec<f64> = theta(&mlp, seed);
        let mut r = rng(seed ^ 3);
        let x: Mat<f64> = rand_mat(&mut r, n, arch.d());
        let v: Vec<f64> = rand_vec(&mut r, theta.len());
        let h = 1e-6;
        let tp: Vec<f64> = theta.iter().zip(&v).map(|(t, d)| t + h * d).collect();
        let tm: Vec<f64> = theta.iter().zip(&v).map(|(t, d)| t - h * d).collect();
        if arch.act == Activation::Relu {
            let (_, z0) = naive_forward(&arch, &theta, &x);
            let (_, zp) = naive_forward(&arch, &tp, &x);
            let (_, zm) = naive_forward(&arch, &tm, &x);
            let kink = z0.iter().zip(&zp).zip(&zm).any(|((a, b), c)| {
                a.abs() < 1e-4 || a.signum() != b.signum() || a.signum() != c.signum()
            });
            prop_assume!(!kink, "ReLU pre-activation near the kink");
        }
        let (_, jv) = mlp.jvp(&theta, x.as_ref(), &v);
        let fp = mat_to_row_major(mlp.forward(&tp, x.as_ref()).as_ref());
        let fm = mat_to_row_major(mlp.forward(&tm, x.as_ref()).as_ref());
        let fd: Vec<f64> = fp.iter().zip(&fm).map(|(a, b)| (a - b) / (2.0 * h)).collect();
        assert_close(
            &format!("JVP vs FD {:?} {}", arch.widths, arch.act),
            &mat_to_row_major(jv.as_ref()),
            &fd,
            1e-6,
        );
    }

    /// f32 forward, JVP, VJP and Jacobian agree with f64 on the same (f32-representable)
    /// θ, X, v, u to 1e-4 relative. ReLU cases within 1e-4 of a kink are skipped (there
    /// f32 rounding may legitimately flip `φ'`).
    #[test]
    fn f32_agrees_with_f64(arch in arch(), n in 1usize..=9, seed in any::<u64>()) {
        let mlp = arch.mlp();
        let c = arch.c();
        let t32: Vec<f32> = theta(&mlp, seed);
        let t64 = to_f64(&t32);
        let mut r = rng(seed ^ 4);
        let x32: Mat<f32> = rand_mat(&mut r, n, arch.d());
        let v32: Vec<f32> = rand_vec(&mut r, t32.len());
        let u32_: Mat<f32> = rand_mat(&mut r, n, c);
        let x64 = Mat::from_fn(n, arch.d(), |i, k| f64::from(x32[(i, k)]));
        let v64 = to_f64(&v32);
        let u64_ = Mat::from_fn(n, c, |i, k| f64::from(u32_[(i, k)]));
        prop_assume!(!near_relu_kink(&arch, &t64, &x64, 1e-4), "ReLU pre-activation near the kink");

        let f32_ = mlp.forward(&t32, x32.as_ref());
        let f64_ = mlp.forward(&t64, x64.as_ref());
        assert_close("forward f32", &mat_to_vec(f32_.as_ref()), &mat_to_vec(f64_.as_ref()), 1e-4);
        let (_, jv32) = mlp.jvp(&t32, x32.as_ref(), &v32);
        let (_, jv64) = mlp.jvp(&t64, x64.as_ref(), &v64);
        assert_close("JVP f32", &mat_to_vec(jv32.as_ref()), &mat_to_vec(jv64.as_ref()), 1e-4);
        let g32 = mlp.vjp(&t32, x32.as_ref(), u32_.as_ref());
        let g64 = mlp.vjp(&t64, x64.as_ref(), u64_.as_ref());
        assert_close("VJP f32", &to_f64(&g32), &g64, 1e-4);
        let j32 = mlp.jacobian(&t32, x32.as_ref());
        let j64 = mlp.jacobian(&t64, x64.as_ref());
        assert_close("Jacobian f32", &to_f64(j32.as_slice()), j64.as_slice(), 1e-4);
    }

    /// `Activation::apply_with_derivative`: the value is `φ` and the derivative matches
    /// central differences of `φ` (h = 1e-5), away from the ReLU kink. The points ±0.5, ±1
    /// are always included, so errors are measured on the derivative's O(1) scale: in
    /// saturation (e.g. tanh at z = −6, φ' ≈ 1e-5) both the differences and `1 − tanh²` are
    /// accurate only in absolute terms.
    #[test]
    fn activation_value_and_derivative(
        act in prop::sample::select(Activation::ALL.to_vec()),
        zs in prop::collection::vec(-8.0f64..8.0, 0..64),
    ) {
        let zs: Vec<f64> = [-1.0, -0.5, 0.5, 1.0]
            .into_iter()
            .chain(zs.into_iter().filter(|z| act != Activation::Relu || z.abs() > 1e-3))
            .collect();
        let h = 1e-5;
        let (mut val, mut der, mut want_val, mut fd) = (vec![], vec![], vec![], vec![]);
        for &z in &zs {
            let (a, d) = act.apply_with_derivative(z);
            val.push(a);
            der.push(d);
            want_val.push(phi(act, z));
            fd.push((phi(act, z + h) - phi(act, z - h)) / (2.0 * h));
        }
        assert_close(&format!("{act} value"), &val, &want_val, 1e-14);
        assert_close(&format!("{act} derivative"), &der, &fd, 1e-8);
    }
}
