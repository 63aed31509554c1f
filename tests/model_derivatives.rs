//! Derivatives of the MLP: central finite differences (f64), the adjoint identity, and the
//! explicit Jacobian against JVP / VJP, over every activation and several depths.

mod common;
use common::*;
use faer::{Mat, MatRef};
use itlin::{Activation, Init, Mlp, Model, Parameterization};

const ARCHS: &[&[usize]] = &[&[3, 2], &[5, 7, 3], &[4, 6, 5, 2], &[2, 3, 4, 3, 3]];

fn param(i: usize) -> Parameterization {
    if i.is_multiple_of(2) {
        Parameterization::Standard
    } else {
        Parameterization::Ntk {
            sigma_w: 1.3,
            sigma_b: 0.4,
        }
    }
}

/// Non-zero biases, so that every path is exercised.
fn theta_for(mlp: &Mlp, seed: u64) -> Vec<f64> {
    mlp.init(
        Init::Ntk {
            sigma_w: 1.5,
            sigma_b: 0.5,
        },
        seed,
    )
}

#[test]
fn jvp_matches_central_differences() {
    for (ai, arch) in ARCHS.iter().enumerate() {
        for act in Activation::ALL {
            let mlp = Mlp::with_parameterization(arch, act, param(ai)).unwrap();
            let mut r = rng(11 + ai as u64);
            let theta = theta_for(&mlp, 3);
            let x: Mat<f64> = rand_mat(&mut r, 4, arch[0]);
            let v: Vec<f64> = rand_vec(&mut r, theta.len());
            let (f, jv) = mlp.jvp(&theta, x.as_ref(), &v);
            let f0 = mlp.forward(&theta, x.as_ref());
            assert_close(
                "primal of jvp",
                &mat_to_vec(f.as_ref()),
                &mat_to_vec(f0.as_ref()),
                1e-14,
            );
            let h = 1e-6;
            let tp: Vec<f64> = theta.iter().zip(&v).map(|(t, d)| t + h * d).collect();
            let tm: Vec<f64> = theta.iter().zip(&v).map(|(t, d)| t - h * d).collect();
            let fp = mlp.forward(&tp, x.as_ref());
            let fm = mlp.forward(&tm, x.as_ref());
            let fd: Vec<f64> = mat_to_vec(fp.as_ref())
                .iter()
                .zip(mat_to_vec(fm.as_ref()))
                .map(|(a, b)| (a - b) / (2.0 * h))
                .collect();
            // ReLU kinks make finite differences exact only away from 0; inputs are generic.
            assert_close(
                &format!("jvp vs FD {arch:?} {act}"),
                &mat_to_vec(jv.as_ref()),
                &fd,
                1e-6,
            );
        }
    }
}

#[test]
fn adjoint_identity_and_explicit_jacobian() {
    for (ai, arch) in ARCHS.iter().enumerate() {
        for act in Activation::ALL {
            let mlp = Mlp::with_parameterization(arch, act, param(ai + 1)).unwrap();
            let mut r = rng(100 + ai as u64);
            let theta = theta_for(&mlp, 7);
            let n = 5;
            let c = *arch.last().unwrap();
            let x: Mat<f64> = rand_mat(&mut r, n, arch[0]);
            let v: Vec<f64> = rand_vec(&mut r, theta.len());
            let u: Mat<f64> = rand_mat(&mut r, n, c);
            let (_, jv) = mlp.jvp(&theta, x.as_ref(), &v);
            let jtu = mlp.vjp(&theta, x.as_ref(), u.as_ref());
            let lhs: f64 = mat_to_vec(u.as_ref())
                .iter()
                .zip(mat_to_vec(jv.as_ref()))
                .map(|(a, b)| a * b)
                .sum();
            let rhs: f64 = jtu.iter().zip(&v).map(|(a, b)| a * b).sum();
            assert!(
                (lhs - rhs).abs() <= 1e-12 * lhs.abs().max(1.0),
                "adjoint {arch:?} {act}: {lhs} vs {rhs}"
            );

            let j = mlp.jacobian(&theta, x.as_ref());
            assert_eq!((j.nrows(), j.ncols()), (n * c, theta.len()));
            // J v (sample-major rows) = JVP; Jᵀ vec(u) = VJP.
            assert_close("J v", &j.mul_vec(&v), &mat_to_row_major(jv.as_ref()), 1e-12);
            let u_vec = mat_to_row_major(u.as_ref());
            assert_close("Jᵀ u", &j.tmul_vec(&u_vec), &jtu, 1e-12);
            // The generic default (one VJP per row) agrees with the fast assembly.
            let slow = default_jacobian(&mlp, &theta, x.as_ref());
            assert_close("fast vs default J", j.as_slice(), slow.as_slice(), 1e-13);
        }
    }
}

/// The trait's default Jacobian, reached through a wrapper that does not override it.
fn default_jacobian(mlp: &Mlp, theta: &[f64], x: MatRef<'_, f64>) -> itlin::Jacobian<f64> {
    struct Plain<'a>(&'a Mlp);
    impl Model<f64> for Plain<'_> {
        fn n_params(&self) -> usize {
            Model::<f64>::n_params(self.0)
        }
        fn n_inputs(&self) -> usize {
            Model::<f64>::n_inputs(self.0)
        }
        fn n_outputs(&self) -> usize {
            Model::<f64>::n_outputs(self.0)
        }
        fn forward(&self, t: &[f64], x: MatRef<'_, f64>) -> Mat<f64> {
            self.0.forward(t, x)
        }
        fn jvp(&self, t: &[f64], x: MatRef<'_, f64>, v: &[f64]) -> (Mat<f64>, Mat<f64>) {
            self.0.jvp(t, x, v)
        }
        fn vjp(&self, t: &[f64], x: MatRef<'_, f64>, u: MatRef<'_, f64>) -> Vec<f64> {
            self.0.vjp(t, x, u)
        }
    }
    Plain(mlp).jacobian(theta, x)
}

#[test]
fn f32_agrees_with_f64() {
    let mlp = Mlp::new(&[20, 16, 16, 4], Activation::Tanh).unwrap();
    let t64: Vec<f64> = mlp.init(Init::Standard, 5);
    let t32: Vec<f32> = mlp.init(Init::Standard, 5);
    let mut r = rng(9);
    let x64: Mat<f64> = rand_mat(&mut r, 8, 20);
    let x32: Mat<f32> = Mat::from_fn(8, 20, |i, j| x64[(i, j)] as f32);
    let j64 = mlp.jacobian(&t64, x64.as_ref());
    let j32 = mlp.jacobian(&t32, x32.as_ref());
    assert_close(
        "J f32 vs f64",
        &to_f64(j32.as_slice()),
        j64.as_slice(),
        1e-5,
    );
}

#[test]
#[should_panic(expected = "θ has length")]
fn wrong_theta_length_panics_with_shapes() {
    let mlp = Mlp::new(&[3, 4, 2], Activation::Relu).unwrap();
    let x = Mat::<f64>::zeros(2, 3);
    let _ = mlp.forward(&[0.0; 5], x.as_ref());
}

#[test]
fn bad_architectures_are_errors() {
    assert!(Mlp::new(&[3], Activation::Tanh).is_err());
    assert!(Mlp::new(&[3, 0, 2], Activation::Tanh).is_err());
    let e = Mlp::new(&[], Activation::Tanh).unwrap_err().to_string();
    assert!(e.contains("at least"), "{e}");
}

#[test]
fn jacobian_into_reuses_and_reshapes_the_buffer() {
    let mlp = Mlp::new(&[4, 5, 3], Activation::Tanh).unwrap();
    let theta: Vec<f64> = mlp.init(
        Init::Ntk {
            sigma_w: 1.0,
            sigma_b: 0.5,
        },
        1,
    );
    let x: Mat<f64> = rand_mat(&mut rng(3), 6, 4);
    let want = mlp.jacobian(&theta, x.as_ref());
    let mut j = itlin::Jacobian::from_row_major(
        vec![f64::NAN; want.nrows() * want.ncols()],
        want.nrows(),
        want.ncols(),
    );
    mlp.jacobian_into(&theta, x.as_ref(), &mut j);
    assert_eq!(j, want, "every entry overwritten");
    let mut small = itlin::Jacobian::zeros(1, 1);
    mlp.jacobian_into(&theta, x.as_ref(), &mut small);
    assert_eq!(small, want);
}
