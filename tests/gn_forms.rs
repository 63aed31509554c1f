//! Every Gauss-Newton form against a dense f64 reference solve of the normal equations, the
//! closed-form K-step gradient descent against K explicit steps, and the λ→0 limit.

mod common;
use common::*;
use faer::{Mat, MatRef};
use itlin::solve::{
    Filter, Form, GaussNewtonStep, Loss, SpectralCache, StepStatus, gauss_newton_step,
    gradient_descent_closed_form,
};
use itlin::{Activation, Init, Mlp, Model};

/// Dense reference: `(JᵀHJ + NλI) δ = −Jᵀg`, solved by Gaussian elimination in f64.
fn reference(
    mlp: &Mlp,
    theta: &[f64],
    x: MatRef<'_, f64>,
    y: MatRef<'_, f64>,
    loss: Loss,
    lambda: f64,
) -> Vec<f64> {
    let j = mlp.jacobian(theta, x);
    let (n, c, p) = (x.nrows(), y.ncols(), theta.len());
    let f = mlp.forward(theta, x);
    let g = itlin::loss::output_residual(loss, f.as_ref(), y);
    let pr = itlin::loss::softmax(f.as_ref());
    let mut a = vec![vec![0.0; p + 1]; p];
    for s in 0..n {
        // H_s
        let h = |u: usize, v: usize| match loss {
            Loss::Mse => f64::from(u8::from(u == v)),
            Loss::CrossEntropy => {
                pr[(s, u)] * f64::from(u8::from(u == v)) - pr[(s, u)] * pr[(s, v)]
            }
        };
        for u in 0..c {
            for v in 0..c {
                let huv = h(u, v);
                if huv == 0.0 {
                    continue;
                }
                let (ru, rv) = (j.row(s * c + u), j.row(s * c + v));
                for (a_row, &jp) in a.iter_mut().zip(ru) {
                    for (aq, &jq) in a_row[..p].iter_mut().zip(rv) {
                        *aq += huv * jp * jq;
                    }
                }
            }
            let gu = g[(s, u)];
            for (a_row, &jp) in a.iter_mut().zip(j.row(s * c + u)) {
                a_row[p] -= jp * gu;
            }
        }
    }
    for (i, row) in a.iter_mut().enumerate() {
        row[i] += n as f64 * lambda;
    }
    gauss_solve(a)
}

fn gauss_solve(mut a: Vec<Vec<f64>>) -> Vec<f64> {
    let p = a.len();
    for k in 0..p {
        let piv = (k..p)
            .max_by(|&i, &j| a[i][k].abs().total_cmp(&a[j][k].abs()))
            .unwrap();
        a.swap(k, piv);
        let pivot_row = a[k].clone();
        for row in a.iter_mut().skip(k + 1) {
            let f = row[k] / pivot_row[k];
            for (v, &pv) in row[k..].iter_mut().zip(&pivot_row[k..]) {
                *v -= f * pv;
            }
        }
    }
    let mut x = vec![0.0; p];
    for k in (0..p).rev() {
        let s: f64 = (k + 1..p).map(|jj| a[k][jj] * x[jj]).sum();
        x[k] = (a[k][p] - s) / a[k][k];
    }
    x
}

fn problem(
    widths: &[usize],
    n: usize,
    seed: u64,
    one_hot: bool,
) -> (Mlp, Vec<f64>, Mat<f64>, Mat<f64>) {
    let mlp = Mlp::new(widths, Activation::Tanh).unwrap();
    let theta: Vec<f64> = mlp.init(
        Init::Ntk {
            sigma_w: 1.3,
            sigma_b: 0.2,
        },
        seed,
    );
    let mut r = rng(seed + 1);
    let x: Mat<f64> = rand_mat(&mut r, n, widths[0]);
    let c = *widths.last().unwrap();
    let y = if one_hot {
        Mat::from_fn(n, c, |i, k| f64::from(u8::from((i * 7 + 3) % c == k)))
    } else {
        rand_mat(&mut r, n, c)
    };
    (mlp, theta, x, y)
}

#[test]
fn every_form_matches_the_dense_reference_mse_and_ce() {
    // Over-parameterised (P > N·C) and under-parameterised (P ≤ N·C) cases.
    for (widths, n) in [(&[3usize, 5, 2][..], 4usize), (&[2, 3, 2][..], 12)] {
        for loss in [Loss::Mse, Loss::CrossEntropy] {
            let (mlp, theta, x, y) = problem(widths, n, 5, loss == Loss::CrossEntropy);
            let lambda = 1e-2;
            let want = reference(&mlp, &theta, x.as_ref(), y.as_ref(), loss, lambda);
            for form in [
                Form::Primal,
                Form::Dual,
                Form::Cg,
                Form::Spectral,
                Form::Auto,
            ] {
                let (d, rep) = GaussNewtonStep::new(loss)
                    .with_damping(lambda)
                    .with_form(form)
                    .solve(&mlp, &theta, x.as_ref(), y.as_ref());
                assert_eq!(rep.status, StepStatus::Solved, "{form:?} {loss:?}: {rep:?}");
                assert_close(&format!("{form:?} {loss:?} {widths:?}"), &d, &want, 1e-9);
            }
        }
    }
}

#[test]
fn dual_step_tends_to_the_minimum_norm_solution() {
    // P > N·C: as λ → 0 the dual step is −J⁺ r, the minimum-norm solution of J δ = −r.
    let (mlp, theta, x, y) = problem(&[3, 6, 2], 3, 9, false);
    let d = gauss_newton_step(
        &mlp,
        &theta,
        x.as_ref(),
        y.as_ref(),
        Loss::Mse,
        1e-13,
        Form::Dual,
    );
    let j = mlp.jacobian(&theta, x.as_ref());
    let f = mlp.forward(&theta, x.as_ref());
    let r: Vec<f64> = (0..3)
        .flat_map(|i| (0..2).map(move |k| (i, k)))
        .map(|(i, k)| f[(i, k)] - y[(i, k)])
        .collect();
    let jd = j.mul_vec(&d);
    let neg_r: Vec<f64> = r.iter().map(|v| -v).collect();
    assert_close("J δ = −r", &jd, &neg_r, 1e-7);
    // δ is in the row space of J: δ = Jᵀ β for the β solving J Jᵀ β = J δ.
    let k = itlin::ntk::empirical(&mlp, &theta, x.as_ref(), itlin::ntk::Method::Explicit);
    let m = 6;
    let aug: Vec<Vec<f64>> = (0..m)
        .map(|i| (0..m).map(|jj| k[(i, jj)]).chain([jd[i]]).collect())
        .collect();
    let beta = gauss_solve(aug);
    assert_close("δ ∈ row space", &j.tmul_vec(&beta), &d, 1e-6);
}

#[test]
fn closed_form_k_steps_equal_k_explicit_gd_steps() {
    let (mlp, theta, x, y) = problem(&[3, 5, 2], 6, 2, false);
    let (n, lr, k) = (6usize, 0.7, 25u64);
    let j = mlp.jacobian(&theta, x.as_ref());
    let f = mlp.forward(&theta, x.as_ref());
    let r: Vec<f64> = (0..n)
        .flat_map(|i| (0..2).map(move |c| (i, c)))
        .map(|(i, c)| f[(i, c)] - y[(i, c)])
        .collect();
    // δ_{t+1} = δ_t − (η/N) Jᵀ (r + J δ_t)
    let mut delta = vec![0.0; theta.len()];
    for _ in 0..k {
        let jd = j.mul_vec(&delta);
        let res: Vec<f64> = r.iter().zip(&jd).map(|(a, b)| a + b).collect();
        let g = j.tmul_vec(&res);
        for (d, gi) in delta.iter_mut().zip(&g) {
            *d -= lr / n as f64 * gi;
        }
    }
    let closed = gradient_descent_closed_form(&mlp, &theta, x.as_ref(), y.as_ref(), lr, k);
    assert_close("φ_K", &closed, &delta, 1e-9);
    // K = 1 is one gradient step.
    let one = gradient_descent_closed_form(&mlp, &theta, x.as_ref(), y.as_ref(), lr, 1);
    let g = j.tmul_vec(&r);
    let want: Vec<f64> = g.iter().map(|v| -lr / n as f64 * v).collect();
    assert_close("K = 1", &one, &want, 1e-9);
}

#[test]
fn spectral_cache_predicts_the_linearised_loss() {
    let (mlp, theta, x, y) = problem(&[4, 6, 3], 5, 12, false);
    let cache = SpectralCache::new(&mlp, &theta, x.as_ref(), y.as_ref()).unwrap();
    let filter = Filter::Damping { lambda: 0.05 };
    let d = cache.delta(&mlp, &theta, x.as_ref(), filter);
    let (pred_loss, pred_norm) = cache.predicted(filter);
    let (f, jd) = mlp.jvp(&theta, x.as_ref(), &d);
    let mut lin = 0.0;
    for i in 0..5 {
        for c in 0..3 {
            let e = f[(i, c)] + jd[(i, c)] - y[(i, c)];
            lin += e * e;
        }
    }
    lin /= 10.0;
    assert!(
        (pred_loss - lin).abs() < 1e-10 * lin.max(1e-300),
        "{pred_loss} vs {lin}"
    );
    let norm: f64 = d.iter().map(|v| v * v).sum();
    assert!((pred_norm - norm).abs() < 1e-9 * norm);
}

#[test]
fn non_finite_residuals_give_a_zero_step_and_a_status() {
    let (mlp, theta, x, mut y) = problem(&[3, 4, 2], 3, 1, false);
    y[(1, 1)] = f64::NAN;
    let (d, rep) = GaussNewtonStep::new(Loss::Mse).solve(&mlp, &theta, x.as_ref(), y.as_ref());
    assert_eq!(rep.status, StepStatus::NonFinite);
    assert!(d.iter().all(|v| *v == 0.0));
}

#[test]
fn zero_damping_on_a_singular_primal_system_raises_damping() {
    // P ≤ N·C but duplicated samples make JᵀJ rank-deficient.
    let mlp = Mlp::new(&[2, 2, 2], Activation::Tanh).unwrap();
    let theta: Vec<f64> = mlp.init(Init::Standard, 3);
    let x = Mat::from_fn(12, 2, |_, j| 0.3 + j as f64 * 0.1);
    let y = Mat::from_fn(12, 2, |i, j| (i + j) as f64 * 0.1);
    let (d, rep) = GaussNewtonStep::new(Loss::Mse)
        .with_damping(0.0)
        .with_form(Form::Primal)
        .solve(&mlp, &theta, x.as_ref(), y.as_ref());
    assert_eq!(rep.status, StepStatus::DampingRaised, "{rep:?}");
    assert!(rep.lambda_used > 0.0);
    assert!(d.iter().all(|v| v.is_finite()));
    let _ = Model::<f64>::n_params(&mlp);
}

#[test]
fn network_lm_fits_a_teacher_and_reuses_linearisations() {
    use itlin::solve::{NetworkLm, NetworkTermination};
    // Student = teacher architecture, different init: a zero-residual problem.
    for loss in [Loss::Mse, Loss::CrossEntropy] {
        let mlp = Mlp::new(&[3, 8, 2], Activation::Tanh).unwrap();
        let teacher: Vec<f64> = mlp.init(
            Init::Ntk {
                sigma_w: 1.5,
                sigma_b: 0.5,
            },
            100,
        );
        let x: Mat<f64> = rand_mat(&mut rng(101), 20, 3);
        let ft = mlp.forward(&teacher, x.as_ref());
        let y = match loss {
            Loss::Mse => ft,
            Loss::CrossEntropy => Mat::from_fn(20, 2, |i, k| {
                f64::from(u8::from((ft[(i, 0)] > ft[(i, 1)]) == (k == 0)))
            }),
        };
        for spectral_limit in [0, 10_000] {
            let mut theta: Vec<f64> = mlp.init(Init::Standard, 7);
            let rep = NetworkLm::new(loss)
                .with_initial_lambda(1e-6)
                .with_max_iterations(30)
                .with_spectral_limit(spectral_limit)
                .minimize(&mlp, &mut theta, x.as_ref(), y.as_ref());
            assert_ne!(rep.termination, NetworkTermination::NonFinite);
            assert!(
                rep.loss_history.windows(2).all(|w| w[1] < w[0]),
                "accepted steps decrease the loss: {:?}",
                rep.loss_history
            );
            assert!(
                rep.loss < 0.05 * rep.loss_history[0],
                "{loss:?} limit {spectral_limit}: {} -> {}",
                rep.loss_history[0],
                rep.loss
            );
            assert!(
                rep.linearisations <= rep.iterations + 1,
                "one linearisation per accepted step"
            );
            assert_eq!(rep.lambda_history.len(), rep.iterations + rep.rejected);
        }
    }
}
