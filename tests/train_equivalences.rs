//! The trainer against its definitions: K = 1 is SGD, K = ∞ is the linear model,
//! the spectral inner solver is K explicit GD steps, GN on the linear model solves it.

mod common;

use common::{assert_close, rand_mat, rng};
use faer::Mat;
use itlin::train::{Batcher, DataRef, Inner, Loss, Period, TrainConfig, Trainer, loss_gradient};
use itlin::{Activation, Init, Mlp, Model};

fn data(n: usize, d: usize, c: usize, seed: u64) -> (Mat<f64>, Mat<f64>, Vec<u32>) {
    let mut r = rng(seed);
    let x = rand_mat::<f64>(&mut r, n, d);
    let labels: Vec<u32> = (0..n)
        .map(|i| {
            // a learnable rule: the arg-max of the first c features
            (0..c)
                .max_by(|&a, &b| x[(i, a)].partial_cmp(&x[(i, b)]).unwrap())
                .unwrap() as u32
        })
        .collect();
    let y = Mat::from_fn(n, c, |i, k| if labels[i] as usize == k { 1.0 } else { 0.0 });
    (x, y, labels)
}

fn quiet(cfg: TrainConfig) -> TrainConfig {
    cfg.with_probe(0)
        .with_kernel_distance(false)
        .with_eval_every(1_000_000)
}

fn gather(m: &Mat<f64>, rows: &[usize]) -> Mat<f64> {
    Mat::from_fn(rows.len(), m.ncols(), |i, j| m[(rows[i], j)])
}

/// K = 1 with SGD is plain mini-batch SGD on the network (same batches), to rounding.
#[test]
fn k1_is_plain_sgd() {
    for loss in [Loss::Mse, Loss::CrossEntropy] {
        let (x, y, labels) = data(40, 5, 3, 1);
        let mlp = Mlp::new(&[5, 8, 3], Activation::Tanh).unwrap();
        let theta0 = mlp.init::<f64>(Init::Standard, 7);
        let (lr, batch, steps, seed) = (0.3, 8, 30, 11);
        let cfg = quiet(TrainConfig::new())
            .with_period(Period::Steps(1))
            .with_inner(Inner::sgd(lr))
            .with_loss(loss)
            .with_batch(batch)
            .with_steps(steps)
            .with_seed(seed);
        let mut tr = Trainer::new(&mlp, theta0.clone(), cfg).unwrap();
        let rep = tr
            .fit(
                DataRef::new(x.as_ref(), y.as_ref(), Some(&labels)),
                None,
                &mut (),
            )
            .unwrap();
        assert_eq!(rep.steps, steps);
        assert_eq!(rep.relinearisations, steps - 1);

        // reference: forward + VJP of the network itself
        let mut theta = theta0.clone();
        let mut b = Batcher::new(40, batch, seed);
        for _ in 0..steps {
            let rows = b.next_batch();
            let (xb, yb) = (gather(&x, &rows), gather(&y, &rows));
            let f = mlp.forward(&theta, xb.as_ref());
            let g = loss_gradient(loss, f.as_ref(), yb.as_ref());
            let grad = mlp.vjp(&theta, xb.as_ref(), g.as_ref());
            for (t, gi) in theta.iter_mut().zip(&grad) {
                *t -= lr * gi;
            }
        }
        assert_close("K=1 trainer vs plain SGD", tr.theta(), &theta, 1e-12);
        assert!(
            common::rel_err(&theta, &theta0) > 1e-3,
            "SGD must have moved θ"
        );
    }
}

/// K = ∞ never re-linearises; its predictions are the linear model's, and full-batch GD on it
/// is GD on the explicit linear least-squares problem.
#[test]
fn k_inf_is_the_linear_model() {
    let (x, y, labels) = data(24, 4, 2, 2);
    let mlp = Mlp::new(&[4, 6, 2], Activation::Tanh).unwrap();
    let theta0 = mlp.init::<f64>(Init::Standard, 3);
    let (lr, steps) = (0.5, 25);
    let cfg = quiet(TrainConfig::new())
        .with_period(Period::Never)
        .with_inner(Inner::sgd(lr))
        .with_loss(Loss::Mse)
        .with_batch(24)
        .with_steps(steps);
    let mut tr = Trainer::new(&mlp, theta0.clone(), cfg).unwrap();
    let rep = tr
        .fit(
            DataRef::new(x.as_ref(), y.as_ref(), Some(&labels)),
            None,
            &mut (),
        )
        .unwrap();
    assert_eq!(rep.relinearisations, 0);
    assert_eq!(tr.theta_tilde(), &theta0[..]);

    // explicit linear model f0 + J (θ − θ0)
    let j = mlp.jacobian(&theta0, x.as_ref());
    let f0 = mlp.forward(&theta0, x.as_ref());
    let lin = |theta: &[f64]| -> Vec<f64> {
        let d: Vec<f64> = theta.iter().zip(&theta0).map(|(a, b)| a - b).collect();
        let jd = j.mul_vec(&d);
        (0..48).map(|i| f0[(i / 2, i % 2)] + jd[i]).collect()
    };
    let pred = tr.predict(x.as_ref());
    let pred: Vec<f64> = (0..48).map(|i| pred[(i / 2, i % 2)]).collect();
    assert_close("predict vs f0 + J(θ−θ0)", &pred, &lin(tr.theta()), 1e-10);
    let net = mlp.forward(tr.theta(), x.as_ref());
    let net: Vec<f64> = (0..48).map(|i| net[(i / 2, i % 2)]).collect();
    assert!(
        common::rel_err(&net, &pred) > 1e-6,
        "the network must differ from its linearisation after training"
    );

    // GD on the explicit linear least squares (1/2N)‖f_lin − y‖²
    let mut theta = theta0.clone();
    for _ in 0..steps {
        let r: Vec<f64> = lin(&theta)
            .iter()
            .enumerate()
            .map(|(i, v)| (v - y[(i / 2, i % 2)]) / 24.0)
            .collect();
        let g = j.tmul_vec(&r);
        for (t, gi) in theta.iter_mut().zip(&g) {
            *t -= lr * gi;
        }
    }
    assert_close(
        "K=∞ trainer vs explicit linear GD",
        tr.theta(),
        &theta,
        1e-10,
    );
}

/// The spectral inner solver equals K explicit full-batch GD steps on f_lin, also across a
/// re-linearisation.
#[test]
fn spectral_equals_k_gd_steps() {
    let (x, y, labels) = data(12, 3, 2, 4);
    let mlp = Mlp::new(&[3, 10, 2], Activation::Tanh).unwrap();
    let theta0 = mlp.init::<f64>(Init::Standard, 5);
    let (lr, k) = (0.4, 7);
    for steps in [k, 2 * k] {
        let base = quiet(TrainConfig::new())
            .with_period(Period::Steps(k))
            .with_loss(Loss::Mse)
            .with_batch(12)
            .with_steps(steps);
        let mut gd = Trainer::new(
            &mlp,
            theta0.clone(),
            base.clone().with_inner(Inner::sgd(lr)),
        )
        .unwrap();
        let mut sp = Trainer::new(
            &mlp,
            theta0.clone(),
            base.with_inner(Inner::Spectral { lr }),
        )
        .unwrap();
        let d = DataRef::new(x.as_ref(), y.as_ref(), Some(&labels));
        let r1 = gd.fit(d, None, &mut ()).unwrap();
        let r2 = sp.fit(d, None, &mut ()).unwrap();
        assert_eq!(r1.steps, r2.steps);
        assert_eq!(r1.relinearisations, r2.relinearisations);
        assert_close("spectral vs K GD steps", sp.theta(), gd.theta(), 1e-9);
    }
}

/// One Gauss-Newton step on the linear model with tiny damping interpolates the batch when
/// P > N·C (the linear least-squares problem is solved), for MSE.
#[test]
fn gn_step_solves_the_linear_problem() {
    let (x, y, labels) = data(6, 3, 2, 6);
    let mlp = Mlp::new(&[3, 12, 2], Activation::Tanh).unwrap();
    let theta0 = mlp.init::<f64>(Init::Standard, 8);
    let cfg = quiet(TrainConfig::new())
        .with_period(Period::Never)
        .with_loss(Loss::Mse)
        .with_inner(Inner::GaussNewton {
            damping: 1e-12,
            adaptive: false,
        })
        .with_steps(1);
    let mut tr = Trainer::new(&mlp, theta0, cfg).unwrap();
    tr.fit(
        DataRef::new(x.as_ref(), y.as_ref(), Some(&labels)),
        None,
        &mut (),
    )
    .unwrap();
    let pred = tr.predict(x.as_ref());
    let p: Vec<f64> = (0..12).map(|i| pred[(i / 2, i % 2)]).collect();
    let t: Vec<f64> = (0..12).map(|i| y[(i / 2, i % 2)]).collect();
    assert_close("f_lin after one undamped GN step vs targets", &p, &t, 1e-8);
}

/// Adaptive damping lowers the linearised loss at every accepted step (cross-entropy).
#[test]
fn adaptive_gn_decreases_loss() {
    let (x, y, labels) = data(30, 4, 3, 9);
    let mlp = Mlp::new(&[4, 8, 3], Activation::Relu).unwrap();
    let theta0 = mlp.init::<f64>(Init::Standard, 1);
    let cfg = TrainConfig::new()
        .with_probe(4)
        .with_period(Period::Never)
        .with_loss(Loss::CrossEntropy)
        .with_inner(Inner::GaussNewton {
            damping: 1.0,
            adaptive: true,
        })
        .with_eval_every(1)
        .with_steps(12);
    let mut tr = Trainer::new(&mlp, theta0, cfg).unwrap();
    let rep = tr
        .fit(
            DataRef::new(x.as_ref(), y.as_ref(), Some(&labels)),
            None,
            &mut (),
        )
        .unwrap();
    let losses: Vec<f64> = rep.history.iter().map(|m| m.train_loss).collect();
    assert_eq!(losses.len(), 12);
    for w in losses.windows(2) {
        assert!(w[1] <= w[0] + 1e-12, "linearised loss went up: {losses:?}");
    }
    assert!(
        losses[11] < 0.7 * losses[0],
        "GN made no progress: {losses:?}"
    );
    let m = rep.last().unwrap();
    assert!(m.kernel_distance.unwrap() >= 0.0 && m.lin_error.unwrap() >= 0.0);
    assert_eq!(m.relinearisations, 0);
}

/// A width mismatch between data and model is an error, not a panic.
#[test]
fn data_width_mismatch_is_an_error() {
    let (x, y, labels) = data(10, 4, 2, 1);
    let mlp = Mlp::new(&[5, 4, 2], Activation::Tanh).unwrap();
    let theta0 = mlp.init::<f64>(Init::Standard, 1);
    let mut tr = Trainer::new(&mlp, theta0, TrainConfig::new()).unwrap();
    let err = tr
        .fit(
            DataRef::new(x.as_ref(), y.as_ref(), Some(&labels)),
            None,
            &mut (),
        )
        .unwrap_err();
    assert!(err.to_string().contains("4 features"), "{err}");
    assert_eq!(Model::<f64>::n_inputs(&mlp), 5);
}

/// Gauss-Newton inner steps on the linearised cross-entropy equal the dense primal reference
/// `(JᵀHJ + NλI) δ = −Jᵀ(p − y)` with `J = J(θ̃)` and `p = softmax(f_lin(θ))`, also away
/// from the linearisation point.
#[test]
fn gn_cross_entropy_matches_dense_primal() {
    use faer::linalg::solvers::Solve;
    let (x, y, labels) = data(6, 3, 2, 12);
    let mlp = Mlp::new(&[3, 5, 2], Activation::Tanh).unwrap();
    let theta0 = mlp.init::<f64>(Init::Standard, 4);
    let lambda = 0.05;
    let cfg = quiet(TrainConfig::new())
        .with_period(Period::Never)
        .with_loss(Loss::CrossEntropy)
        .with_inner(Inner::GaussNewton {
            damping: lambda,
            adaptive: false,
        })
        .with_steps(3);
    let mut tr = Trainer::new(&mlp, theta0.clone(), cfg).unwrap();
    tr.fit(
        DataRef::new(x.as_ref(), y.as_ref(), Some(&labels)),
        None,
        &mut (),
    )
    .unwrap();

    let (n, c, p) = (6, 2, Model::<f64>::n_params(&mlp));
    let j = mlp.jacobian(&theta0, x.as_ref()).to_mat();
    let f0 = mlp.forward(&theta0, x.as_ref());
    let mut theta = theta0.clone();
    for _ in 0..3 {
        let d: Vec<f64> = theta.iter().zip(&theta0).map(|(a, b)| a - b).collect();
        let dm = Mat::from_fn(p, 1, |i, _| d[i]);
        let jd = &j * &dm;
        let mut h = Mat::<f64>::zeros(n * c, n * c);
        let mut g = Mat::<f64>::zeros(n * c, 1);
        for s in 0..n {
            let fl: Vec<f64> = (0..c).map(|k| f0[(s, k)] + jd[(s * c + k, 0)]).collect();
            let mx = fl.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = fl.iter().map(|v| (v - mx).exp()).sum();
            let pr: Vec<f64> = fl.iter().map(|v| (v - mx).exp() / z).collect();
            for a in 0..c {
                g[(s * c + a, 0)] = pr[a] - y[(s, a)];
                for b in 0..c {
                    h[(s * c + a, s * c + b)] = if a == b { pr[a] } else { 0.0 } - pr[a] * pr[b];
                }
            }
        }
        let mut a = j.transpose() * &h * &j;
        for i in 0..p {
            a[(i, i)] += n as f64 * lambda;
        }
        let rhs = -(j.transpose() * &g);
        let delta = a.partial_piv_lu().solve(&rhs);
        for i in 0..p {
            theta[i] += delta[(i, 0)];
        }
    }
    assert_close(
        "GN on linearised CE vs dense primal",
        tr.theta(),
        &theta,
        1e-8,
    );
}

/// A diverging run stops with `Termination::Diverged` and leaves θ finite.
#[test]
fn divergence_is_reported_not_propagated() {
    use itlin::train::Termination;
    let (x, y, labels) = data(20, 4, 2, 3);
    let mlp = Mlp::new(&[4, 16, 2], Activation::Relu).unwrap();
    let cfg = TrainConfig::new()
        .with_probe(2)
        .with_period(Period::Steps(5))
        .with_loss(Loss::Mse)
        .with_inner(Inner::sgd(1e6))
        .with_eval_every(1)
        .with_steps(200);
    let mut tr = Trainer::new(&mlp, mlp.init::<f64>(Init::Standard, 0), cfg).unwrap();
    let rep = tr
        .fit(
            DataRef::new(x.as_ref(), y.as_ref(), Some(&labels)),
            None,
            &mut (),
        )
        .unwrap();
    assert_eq!(rep.termination, Termination::Diverged, "{:?}", rep.last());
    assert!(rep.steps < 200);
    assert!(tr.theta().iter().all(|t| t.is_finite()));
}
