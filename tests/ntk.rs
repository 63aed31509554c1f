//! Empirical NTK: structured vs `J Jᵀ`, products, diagonal, cross-kernels, distance.

mod common;
use common::*;
use faer::Mat;
use itlin::ntk::{self, Method};
use itlin::{Activation, Init, Mlp, Model, Parameterization};

const ARCHS: &[&[usize]] = &[&[3, 2], &[5, 7, 3], &[4, 6, 5, 2], &[2, 3, 4, 3, 3]];

fn jjt(j: &itlin::Jacobian<f64>) -> Vec<f64> {
    let m = j.nrows();
    let mut out = vec![0.0; m * m];
    for a in 0..m {
        for b in 0..m {
            out[b * m + a] = j.row(a).iter().zip(j.row(b)).map(|(x, y)| x * y).sum();
        }
    }
    out
}

#[test]
fn structured_equals_j_jt_for_every_activation_and_depth() {
    for (ai, arch) in ARCHS.iter().enumerate() {
        for act in Activation::ALL {
            for param in [
                Parameterization::Standard,
                Parameterization::Ntk {
                    sigma_w: 1.2,
                    sigma_b: 0.3,
                },
            ] {
                let mlp = Mlp::with_parameterization(arch, act, param).unwrap();
                let theta: Vec<f64> = mlp.init(
                    Init::Ntk {
                        sigma_w: 1.4,
                        sigma_b: 0.4,
                    },
                    ai as u64,
                );
                let x: Mat<f64> = rand_mat(&mut rng(ai as u64 + 50), 6, arch[0]);
                let j = mlp.jacobian(&theta, x.as_ref());
                let want = jjt(&j);
                let s = ntk::empirical(&mlp, &theta, x.as_ref(), Method::Structured);
                let e = ntk::empirical(&mlp, &theta, x.as_ref(), Method::Explicit);
                assert_close(
                    &format!("structured {arch:?} {act}"),
                    &mat_to_vec(s.as_ref()),
                    &want,
                    1e-12,
                );
                assert_close(
                    &format!("explicit {arch:?} {act}"),
                    &mat_to_vec(e.as_ref()),
                    &want,
                    1e-12,
                );
                let a = ntk::empirical(&mlp, &theta, x.as_ref(), Method::Auto);
                assert_close("auto", &mat_to_vec(a.as_ref()), &want, 1e-12);
            }
        }
    }
}

#[test]
fn structured_is_right_across_panel_boundaries() {
    // N·C = 600 > the 256-column panel: exercises the panelled Hadamard assembly.
    let mlp = Mlp::new(&[7, 9, 8, 3], Activation::Gelu).unwrap();
    let theta: Vec<f64> = mlp.init(
        Init::Ntk {
            sigma_w: 1.0,
            sigma_b: 0.2,
        },
        1,
    );
    let x: Mat<f64> = rand_mat(&mut rng(2), 200, 7);
    let j = mlp.jacobian(&theta, x.as_ref());
    let s = ntk::empirical(&mlp, &theta, x.as_ref(), Method::Structured);
    assert_close("structured large", &mat_to_vec(s.as_ref()), &jjt(&j), 1e-12);
}

#[test]
fn ntk_vector_product_diagonal_trace_and_cross() {
    let mlp = Mlp::new(&[5, 6, 4, 3], Activation::Softplus).unwrap();
    let theta: Vec<f64> = mlp.init(
        Init::Ntk {
            sigma_w: 1.1,
            sigma_b: 0.5,
        },
        4,
    );
    let mut r = rng(8);
    let x: Mat<f64> = rand_mat(&mut r, 7, 5);
    let v: Vec<f64> = rand_vec(&mut r, 21);
    let k = ntk::empirical(&mlp, &theta, x.as_ref(), Method::Structured);
    let kv: Vec<f64> = (0..21)
        .map(|i| (0..21).map(|j| k[(i, j)] * v[j]).sum())
        .collect();
    assert_close(
        "Θv",
        &ntk::ntk_vector_product(&mlp, &theta, x.as_ref(), &v),
        &kv,
        1e-12,
    );
    let s = mlp.signals(&theta, x.as_ref());
    let diag: Vec<f64> = (0..21).map(|i| k[(i, i)]).collect();
    assert_close("diag", &ntk::diagonal(&s), &diag, 1e-12);
    assert!((ntk::trace(&s) - diag.iter().sum::<f64>()).abs() < 1e-10 * diag.iter().sum::<f64>());
    // Cross kernel of X with itself is Θ; with a second set it is J(X1) J(X2)ᵀ.
    let x2: Mat<f64> = rand_mat(&mut r, 4, 5);
    let kc = ntk::cross(&mlp, &theta, x.as_ref(), x.as_ref());
    assert_close(
        "cross self",
        &mat_to_vec(kc.as_ref()),
        &mat_to_vec(k.as_ref()),
        1e-12,
    );
    let j1 = mlp.jacobian(&theta, x.as_ref());
    let j2 = mlp.jacobian(&theta, x2.as_ref());
    let kc2 = ntk::cross(&mlp, &theta, x.as_ref(), x2.as_ref());
    let want: Vec<f64> = (0..12)
        .flat_map(|b| (0..21).map(move |a| (a, b)))
        .map(|(a, b)| j1.row(a).iter().zip(j2.row(b)).map(|(p, q)| p * q).sum())
        .collect();
    assert_close("cross", &mat_to_vec(kc2.as_ref()), &want, 1e-12);
}

#[test]
fn kernel_distance_properties() {
    let a: Mat<f64> = rand_mat(&mut rng(1), 5, 5);
    let b: Mat<f64> = rand_mat(&mut rng(2), 5, 5);
    assert!(ntk::kernel_distance(a.as_ref(), a.as_ref()).abs() < 1e-15);
    let a3 = Mat::from_fn(5, 5, |i, j| 3.0 * a[(i, j)]);
    assert!(
        ntk::kernel_distance(a.as_ref(), a3.as_ref()).abs() < 1e-15,
        "scale invariant"
    );
    let d = ntk::kernel_distance(a.as_ref(), b.as_ref());
    assert!(d > 0.0 && d < 2.0);
    let z = Mat::<f64>::zeros(5, 5);
    assert!(ntk::kernel_distance(a.as_ref(), z.as_ref()).is_nan());
}

#[test]
fn f32_structured_agrees_with_f64() {
    let mlp = Mlp::new(&[6, 8, 8, 3], Activation::Tanh).unwrap();
    let t64: Vec<f64> = mlp.init(Init::Standard, 3);
    let t32: Vec<f32> = mlp.init(Init::Standard, 3);
    let x64: Mat<f64> = rand_mat(&mut rng(3), 9, 6);
    let x32 = Mat::from_fn(9, 6, |i, j| x64[(i, j)] as f32);
    let k64 = ntk::empirical(&mlp, &t64, x64.as_ref(), Method::Structured);
    let k32 = ntk::empirical(&mlp, &t32, x32.as_ref(), Method::Structured);
    assert_close(
        "f32 vs f64",
        &mat_to_vec(k32.as_ref()),
        &mat_to_vec(k64.as_ref()),
        1e-5,
    );
    let _ = Model::<f32>::n_params(&mlp);
}

#[test]
fn linearisation_explicit_and_matrix_free_agree() {
    use itlin::linearise::Linearisation;
    let mlp = Mlp::new(&[4, 7, 3], Activation::Gelu).unwrap();
    let t0: Vec<f64> = mlp.init(
        Init::Ntk {
            sigma_w: 1.2,
            sigma_b: 0.3,
        },
        21,
    );
    let mut r = rng(22);
    let x: Mat<f64> = rand_mat(&mut r, 5, 4);
    let theta: Vec<f64> = t0.iter().map(|t| t + 1e-3).collect();
    let u: Mat<f64> = rand_mat(&mut r, 5, 3);
    let v: Vec<f64> = rand_vec(&mut r, t0.len());
    let exp = Linearisation::with_budget(&mlp, &t0, x.as_ref(), u64::MAX);
    let mf = Linearisation::with_budget(&mlp, &t0, x.as_ref(), 0);
    assert!(exp.is_explicit() && !mf.is_explicit());
    assert!(exp.memory_bytes() > mf.memory_bytes());
    assert_close(
        "predict",
        &mat_to_vec(exp.predict(&theta).as_ref()),
        &mat_to_vec(mf.predict(&theta).as_ref()),
        1e-13,
    );
    assert_close("vjp", &exp.vjp(u.as_ref()), &mf.vjp(u.as_ref()), 1e-13);
    assert_close("gn", &exp.gn_mul_vec(&v), &mf.gn_mul_vec(&v), 1e-13);
    // At θ̃ the linear model is the model; nearby it is first-order accurate.
    assert_close(
        "f_lin(θ̃)",
        &mat_to_vec(exp.predict(&t0).as_ref()),
        &mat_to_vec(mlp.forward(&t0, x.as_ref()).as_ref()),
        1e-15,
    );
    let f = mlp.forward(&theta, x.as_ref());
    let err = rel_err(
        &mat_to_vec(exp.predict(&theta).as_ref()),
        &mat_to_vec(f.as_ref()),
    );
    assert!(err < 1e-4, "linearisation error {err}");
}
