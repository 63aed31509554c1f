//! The trainer's divergence guard and the plan of a second-order inner step: an update that
//! would make θ non-finite is undone and reported, an exploding loss crosses the documented
//! limit, a healthy run is never flagged, and the step plan names the system, its bytes and
//! what fits.

use faer::Mat;
use itlin::train::{
    DataRef, DivergenceKind, DivergenceRule, Inner, Loss, Period, Schedule, Termination,
    TrainConfig, Trainer, inner_step_plan,
};
use itlin::{Activation, Init, Mlp, Model};

/// 40 rows, 4 features, 2 classes (the sign of x₀ + x₁), deterministic.
fn data() -> (Mat<f64>, Mat<f64>, Vec<u32>) {
    let x = Mat::from_fn(40, 4, |i, j| ((i * 4 + j) as f64 * 0.61).sin());
    let labels: Vec<u32> = (0..40)
        .map(|i| u32::from(x[(i, 0)] + x[(i, 1)] > 0.0))
        .collect();
    let y = Mat::from_fn(40, 2, |i, k| f64::from(labels[i] as usize == k));
    (x, y, labels)
}

fn cfg(inner: Inner, loss: Loss) -> TrainConfig {
    TrainConfig::new()
        .with_inner(inner)
        .with_loss(loss)
        .with_period(Period::Steps(3))
        .with_schedule(Schedule::Constant)
        .with_batch(8)
        .with_steps(30)
        .with_eval_every(5)
        .with_probe(4)
}

/// In f32 a step size of 1e308 is infinite: the first update would make θ non-finite, so
/// it is undone, θ₀ kept and evaluated.
#[test]
fn an_update_to_infinity_is_undone_and_reported() {
    let (x, y, labels) = data();
    let (x, y) = (
        Mat::from_fn(40, 4, |i, j| x[(i, j)] as f32),
        Mat::from_fn(40, 2, |i, k| y[(i, k)] as f32),
    );
    let d = DataRef::new(x.as_ref(), y.as_ref(), Some(&labels));
    let mlp = Mlp::new(&[4, 6, 2], Activation::Tanh).unwrap();
    let theta0 = mlp.init::<f32>(Init::Standard, 2);
    let mut tr = Trainer::new(&mlp, theta0.clone(), cfg(Inner::sgd(1e308), Loss::Mse)).unwrap();
    let rep = tr.fit(d, None, &mut ()).unwrap();
    assert_eq!(rep.termination, Termination::Diverged);
    let dv = rep.divergence.clone().expect("a divergence record");
    assert_eq!(
        (dv.step, dv.kept_step, dv.kind),
        (1, 0, DivergenceKind::NonFinite)
    );
    assert_eq!(dv.quantity, "θ after the update");
    assert!(!dv.value.unwrap().is_finite());
    assert_eq!(rep.steps, 0);
    assert_eq!(tr.theta(), &theta0[..], "θ₀ is kept");
    // the kept state was evaluated: a real measurement, not a placeholder
    let last = rep.last().expect("the kept state is evaluated");
    assert_eq!(last.step, 0);
    assert!(last.train_loss.is_finite() && last.train_loss > 0.0);
    assert!(dv.to_string().contains("step 1"), "{dv}");
}

#[test]
fn an_exploding_loss_crosses_the_limit() {
    let (x, y, labels) = data();
    let d = DataRef::new(x.as_ref(), y.as_ref(), Some(&labels));
    let mlp = Mlp::new(&[4, 6, 2], Activation::Tanh).unwrap();
    let theta0 = mlp.init::<f64>(Init::Standard, 2);
    let mut tr = Trainer::new(&mlp, theta0, cfg(Inner::adam(1e6), Loss::CrossEntropy)).unwrap();
    let rep = tr.fit(d, None, &mut ()).unwrap();
    assert_eq!(rep.termination, Termination::Diverged);
    let dv = rep.divergence.clone().expect("a divergence record");
    assert!(rep.steps < 30);
    assert!(tr.theta().iter().all(|v| v.is_finite()));
    match dv.kind {
        DivergenceKind::Exploded => {
            let limit = dv.limit.unwrap();
            assert!(dv.value.unwrap() > limit, "{dv}");
            // the limit is 1e4 × max(L(θ₀), ln 2) on these rows
            assert!(limit >= 1e4 * 2f64.ln() * 0.999, "{dv}");
            let last = rep.last().unwrap();
            assert_eq!(last.step, dv.step);
        }
        DivergenceKind::NonFinite => {}
    }
}

/// Runs that learn are never flagged: with the default rule, and for SGD and Adam even with
/// the strictest loss factor allowed (1: no evaluation above the reference loss).
#[test]
fn a_healthy_run_is_not_flagged() {
    let (x, y, labels) = data();
    let d = DataRef::new(x.as_ref(), y.as_ref(), Some(&labels));
    let mlp = Mlp::new(&[4, 6, 2], Activation::Tanh).unwrap();
    let strict = DivergenceRule {
        loss_factor: 1.0,
        theta_factor: 1e6,
    };
    let gn = Inner::GaussNewton {
        damping: 0.1,
        adaptive: true,
    };
    for (inner, rule) in [
        (Inner::sgd(0.1), strict),
        (Inner::adam(0.01), strict),
        (gn, DivergenceRule::default()),
    ] {
        let c = cfg(inner, Loss::CrossEntropy).with_divergence(rule);
        let mut tr = Trainer::new(&mlp, mlp.init::<f64>(Init::Standard, 2), c).unwrap();
        let rep = tr.fit(d, None, &mut ()).unwrap();
        assert_eq!(
            rep.termination,
            Termination::Completed,
            "{inner:?}: {:?}",
            rep.divergence
        );
        assert_eq!(rep.divergence, None);
    }
    let bad = cfg(Inner::sgd(0.1), Loss::Mse).with_divergence(DivergenceRule {
        loss_factor: 0.5,
        theta_factor: 1e6,
    });
    assert!(bad.validate().is_err());
}

/// The probe's case: cross-entropy with 1500 rows per solve and 10 outputs is an LU of a
/// 15000² system; the plan says so, flags it as heavy and says how many rows fit.
#[test]
fn the_step_plan_names_the_system_and_what_fits() {
    let mlp = Mlp::new(&[784, 256, 10], Activation::Relu).unwrap();
    let p = Model::<f32>::n_params(&mlp);
    let gn = Inner::GaussNewton {
        damping: 1e-3,
        adaptive: false,
    };
    let c = TrainConfig::new()
        .with_inner(gn)
        .with_loss(Loss::CrossEntropy)
        .with_period(Period::Steps(20))
        .with_gn_batch(Some(1500));
    let plan = inner_step_plan::<f32>(&c, 8000, 10, p).unwrap();
    assert_eq!((plan.rows, plan.dim), (1500, 15000));
    assert!(plan.what.contains("LU of the 15000×15000"), "{}", plan.what);
    assert_eq!(plan.bytes, 3 * 4 * 15000 * 15000);
    assert!(plan.is_heavy());
    let budget = 1u64 << 30;
    let e = plan.check(budget).unwrap_err().to_string();
    let r = plan.max_rows(budget).unwrap();
    assert!(e.contains(&format!("at most {r}")), "{e}");
    let fits = |rows: usize| {
        let c = c.clone().with_gn_batch(Some(rows));
        inner_step_plan::<f32>(&c, 8000, 10, p).unwrap().bytes <= budget
    };
    assert!(fits(r) && !fits(r + 1), "{r} rows");
    // more rows than the data: every row, once
    let all = inner_step_plan::<f32>(&c.clone().with_gn_batch(Some(10_000)), 60, 10, p).unwrap();
    assert_eq!(all.rows, 60);
    // small solves are neither refused nor announced; first-order inners have no plan
    let small = inner_step_plan::<f32>(&c.clone().with_gn_batch(Some(32)), 8000, 10, p).unwrap();
    assert!(!small.is_heavy() && small.check(budget).is_ok());
    assert!(inner_step_plan::<f32>(&TrainConfig::new(), 8000, 10, p).is_none());
}
