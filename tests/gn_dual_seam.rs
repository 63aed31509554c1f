//! The dual damped Gauss-Newton step written once over the backend seam
//! (`solve::dual_step_on`, which is also the CUDA backend's dual step), run on the CPU
//! backend: it gives the δ of the host dual and primal forms, for one, two and several
//! layers (the NTK assembly's three shapes), both parameterisations, f64 and f32, an input
//! in column-major order, and reports a system that is not positive definite.

mod common;

use common::{assert_close, rand_mat, rand_vec, rng, to_f64};
use faer::Mat;
use itlin::backend::Cpu;
use itlin::solve::{DualWorkspace, Form, Loss, dual_step_on, gauss_newton_step};
use itlin::{Activation, Init, Mlp, Parameterization, Real};

fn nets() -> Vec<Mlp> {
    let ntk = Parameterization::Ntk {
        sigma_w: 1.3,
        sigma_b: 0.4,
    };
    vec![
        Mlp::new(&[6, 3], Activation::Tanh).unwrap(),
        Mlp::new(&[7, 13, 4], Activation::Tanh).unwrap(),
        Mlp::new(&[5, 9, 8, 3], Activation::Relu).unwrap(),
        Mlp::with_parameterization(&[4, 6, 5, 7, 2], Activation::Gelu, ntk).unwrap(),
    ]
}

fn seam_delta<T: Real>(
    mlp: &Mlp,
    theta: &[T],
    x: &Mat<T>,
    y: &Mat<T>,
    lambda: T,
) -> Option<Vec<T>> {
    let mut delta = vec![T::zero_impl(); theta.len()];
    let mut ws = DualWorkspace::<T, Cpu>::default();
    // twice on the same workspace: the second call reuses every buffer
    for _ in 0..2 {
        let out = dual_step_on(
            &Cpu,
            mlp,
            &theta,
            &x.as_ref(),
            &y.as_ref(),
            lambda,
            &mut delta,
            &mut ws,
        )
        .unwrap();
        if out.is_some() {
            return None;
        }
    }
    Some(delta)
}

#[test]
fn the_seam_dual_step_equals_the_host_forms_f64() {
    for (i, mlp) in nets().into_iter().enumerate() {
        let theta = mlp.init::<f64>(Init::Standard, i as u64);
        let (d, c) = (mlp.widths()[0], *mlp.widths().last().unwrap());
        let n = 9;
        let x = rand_mat::<f64>(&mut rng(10 + i as u64), n, d); // faer Mat: column-major
        let y = rand_mat::<f64>(&mut rng(20 + i as u64), n, c);
        for lambda in [1e-3, 0.5] {
            let got = seam_delta(&mlp, &theta, &x, &y, lambda).expect("positive definite");
            for form in [Form::Dual, Form::Primal] {
                let want = gauss_newton_step(
                    &mlp,
                    &theta,
                    x.as_ref(),
                    y.as_ref(),
                    Loss::Mse,
                    lambda,
                    form,
                );
                assert_close(
                    &format!("{:?} λ={lambda} {form:?}", mlp.widths()),
                    &got,
                    &want,
                    1e-9,
                );
            }
        }
    }
}

#[test]
fn the_seam_dual_step_equals_the_host_dual_form_f32() {
    for (i, mlp) in nets().into_iter().enumerate() {
        let theta = mlp.init::<f32>(Init::Standard, i as u64);
        let (d, c) = (mlp.widths()[0], *mlp.widths().last().unwrap());
        let x = rand_mat::<f32>(&mut rng(30 + i as u64), 7, d);
        let y = rand_mat::<f32>(&mut rng(40 + i as u64), 7, c);
        let got = seam_delta(&mlp, &theta, &x, &y, 0.1f32).expect("positive definite");
        let want = gauss_newton_step(
            &mlp,
            &theta,
            x.as_ref(),
            y.as_ref(),
            Loss::Mse,
            0.1,
            Form::Dual,
        );
        assert_close(
            &format!("{:?} f32", mlp.widths()),
            &to_f64(&got),
            &to_f64(&want),
            2e-4,
        );
    }
}

#[test]
fn a_system_that_is_not_positive_definite_is_reported() {
    let mlp = Mlp::new(&[5, 8, 3], Activation::Tanh).unwrap();
    let theta = mlp.init::<f64>(Init::Standard, 3);
    let x = rand_mat::<f64>(&mut rng(1), 6, 5);
    let y = rand_mat::<f64>(&mut rng(2), 6, 3);
    // Θ + NλI with λ far below −‖Θ‖/N has a negative leading entry.
    let mut delta = rand_vec::<f64>(&mut rng(3), theta.len());
    let mut ws = DualWorkspace::<f64, Cpu>::default();
    let out = dual_step_on(
        &Cpu,
        &mlp,
        &theta.as_slice(),
        &x.as_ref(),
        &y.as_ref(),
        -1e6,
        &mut delta,
        &mut ws,
    )
    .unwrap();
    assert_eq!(out, Some(1), "the first leading minor fails");
}

/// The CPU backend's NTK verb writes the whole symmetric `Θ` (both halves) and it is `J Jᵀ`.
#[test]
fn the_cpu_ntk_verb_writes_all_of_j_jt() {
    use itlin::Model;
    use itlin::backend::Backend;
    for (i, mlp) in nets().into_iter().enumerate() {
        let theta = mlp.init::<f64>(Init::Standard, 7 + i as u64);
        let x = rand_mat::<f64>(&mut rng(50 + i as u64), 5, mlp.widths()[0]);
        let s = mlp.signals(&theta, x.as_ref());
        let m = s.n * s.c;
        let mut k = vec![f64::NAN; m * m];
        let km = faer::MatMut::from_row_major_slice_mut(&mut k, m, m);
        Backend::<f64>::ntk(&Cpu, km, &s.acts, &s.grads, mlp.layers(), s.n, s.c).unwrap();
        let j = mlp.jacobian(&theta, x.as_ref());
        let jr = j.as_ref();
        let want: Vec<f64> = (0..m * m)
            .map(|e| {
                let (a, b) = (e / m, e % m);
                (0..jr.ncols()).map(|p| jr[(a, p)] * jr[(b, p)]).sum()
            })
            .collect();
        assert_close(&format!("{:?} Θ", mlp.widths()), &k, &want, 1e-12);
    }
}
