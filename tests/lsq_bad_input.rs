//! Bad input and numerical trouble never panic or hang: the outcome is in the `Report`.

use faer::MatMut;
use itlin::solve::{
    GaussNewton, IterationInfo, LeastSquares, LevenbergMarquardt, Report, Termination,
    test_problems,
};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

/// A problem given by closures, for the odd cases below.
struct Closure<R, J> {
    n: usize,
    m: usize,
    r: R,
    j: J,
}
impl<R, J> LeastSquares<f64> for Closure<R, J>
where
    R: Fn(&[f64], &mut [f64]),
    J: Fn(&[f64], MatMut<'_, f64>),
{
    fn n_params(&self) -> usize {
        self.n
    }
    fn n_residuals(&self) -> usize {
        self.m
    }
    fn residuals(&self, x: &[f64], r: &mut [f64]) {
        (self.r)(x, r)
    }
    fn jacobian(&self, x: &[f64], j: MatMut<'_, f64>) {
        (self.j)(x, j)
    }
}

fn both(p: &impl LeastSquares<f64>, theta: &[f64]) -> (Report, Report) {
    let mut a = theta.to_vec();
    let mut b = theta.to_vec();
    (
        LevenbergMarquardt::new().minimize(p, &mut a),
        GaussNewton::new().minimize(p, &mut b),
    )
}

#[test]
fn theta_of_the_wrong_length_is_bad_input() {
    let p = test_problems::by_name("rosenbrock").unwrap();
    for theta in [vec![], vec![1.0], vec![1.0, 2.0, 3.0]] {
        let (lm, gn) = both(&p, &theta);
        for r in [lm, gn] {
            match &r.termination {
                Termination::BadInput(msg) => {
                    assert!(msg.contains(&theta.len().to_string()) && msg.contains("n_params = 2"));
                }
                t => panic!("expected BadInput, got {t:?}"),
            }
            assert_eq!(r.evaluations, 0);
        }
    }
}

#[test]
fn non_finite_residuals_at_the_start() {
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let p = Closure {
            n: 2,
            m: 3,
            r: move |x: &[f64], r: &mut [f64]| {
                r[0] = x[0];
                r[1] = bad;
                r[2] = x[1];
            },
            j: |_: &[f64], _: MatMut<'_, f64>| {},
        };
        let (lm, gn) = both(&p, &[1.0, 1.0]);
        for r in [lm, gn] {
            assert_eq!(r.termination, Termination::NonFinite);
            assert_eq!((r.evaluations, r.jacobian_evaluations), (1, 0));
        }
    }
    // A NaN start makes NaN residuals.
    let p = test_problems::by_name("rosenbrock").unwrap();
    let (lm, gn) = both(&p, &[f64::NAN, 1.0]);
    assert_eq!(lm.termination, Termination::NonFinite);
    assert_eq!(gn.termination, Termination::NonFinite);
}

#[test]
fn non_finite_jacobian_at_the_start() {
    let p = Closure {
        n: 1,
        m: 1,
        r: |x: &[f64], r: &mut [f64]| r[0] = x[0] - 1.0,
        j: |_: &[f64], mut j: MatMut<'_, f64>| j[(0, 0)] = f64::NAN,
    };
    let (lm, gn) = both(&p, &[3.0]);
    assert_eq!(lm.termination, Termination::NonFinite);
    assert_eq!(gn.termination, Termination::NonFinite);
    assert_eq!(lm.cost, 2.0);
}

/// Residuals that are NaN for `x ≥ 2`: trial steps that land there are rejected (λ goes up),
/// and the solve still reaches the minimum at `x = 1.9`.
#[test]
fn nan_during_a_trial_step_is_a_rejection() {
    let p = Closure {
        n: 1,
        m: 2,
        r: |x: &[f64], r: &mut [f64]| {
            if x[0] >= 2.0 {
                r.fill(f64::NAN);
            } else {
                // atan makes the first Gauss-Newton step overshoot far into the NaN region.
                r[0] = (x[0] - 1.9).atan();
                r[1] = 1e-3 * (x[0] - 1.9);
            }
        },
        j: |x: &[f64], mut j: MatMut<'_, f64>| {
            j[(0, 0)] = 1.0 / (1.0 + (x[0] - 1.9).powi(2));
            j[(1, 0)] = 1e-3;
        },
    };
    let mut theta = vec![-40.0];
    let report = LevenbergMarquardt::new().minimize(&p, &mut theta);
    assert!(report.termination.is_converged(), "{report}");
    assert!((theta[0] - 1.9).abs() < 1e-6, "{theta:?}");
    // At least one trial overshot into the NaN region and was rejected with a larger λ.
    let h = &report.lambda_history;
    assert!(report.iterations > report.accepted_steps, "{report}");
    assert!(h.windows(2).any(|w| w[1] > w[0]), "{h:?}");
    let mut theta = vec![-40.0];
    let gn = GaussNewton::new().minimize(&p, &mut theta);
    assert!(gn.termination.is_converged(), "{gn}");
    assert!((theta[0] - 1.9).abs() < 1e-6, "{theta:?}");
}

/// Residuals that are NaN everywhere except at the start: the solve ends (Stalled or out of
/// evaluations), keeps the start, and does not hang.
#[test]
fn nan_everywhere_but_the_start_terminates() {
    let p = Closure {
        n: 2,
        m: 2,
        r: |x: &[f64], r: &mut [f64]| {
            if x == [1.0, 1.0] {
                r[0] = 1.0;
                r[1] = 2.0;
            } else {
                r.fill(f64::NAN);
            }
        },
        j: |_: &[f64], mut j: MatMut<'_, f64>| {
            j[(0, 0)] = 1.0;
            j[(1, 1)] = 1.0;
        },
    };
    let (lm, gn) = both(&p, &[1.0, 1.0]);
    for r in [lm, gn] {
        assert!(
            matches!(
                r.termination,
                Termination::Stalled | Termination::MaxEvaluations
            ),
            "{}",
            r.termination
        );
        assert_eq!(r.cost, 2.5);
        assert!(r.evaluations <= 300);
    }
}

/// A Jacobian that is NaN away from the start: the step that led there is undone.
#[test]
fn nan_jacobian_after_a_step_is_undone() {
    let p = Closure {
        n: 1,
        m: 1,
        r: |x: &[f64], r: &mut [f64]| r[0] = x[0] * x[0] - 4.0,
        j: |x: &[f64], mut j: MatMut<'_, f64>| {
            j[(0, 0)] = if x[0] == 3.0 { 2.0 * x[0] } else { f64::NAN }
        },
    };
    let mut theta = vec![3.0];
    let r = LevenbergMarquardt::new()
        .with_max_evaluations(50)
        .minimize(&p, &mut theta);
    // Every accepted step is undone, so θ stays at a point whose Jacobian was finite.
    assert_eq!(theta, vec![3.0]);
    assert_eq!(r.cost, 12.5);
    assert!(matches!(
        r.termination,
        Termination::Stalled | Termination::MaxEvaluations
    ));
}

#[test]
fn zero_residual_at_the_start() {
    let p = test_problems::by_name("rosenbrock").unwrap();
    let (lm, gn) = both(&p, &[1.0, 1.0]);
    for r in [lm, gn] {
        assert_eq!(
            r.termination,
            Termination::Converged {
                ftol: false,
                xtol: false,
                gtol: false,
                cost: true
            }
        );
        assert_eq!((r.cost, r.evaluations, r.jacobian_evaluations), (0.0, 1, 0));
    }
}

/// Fewer residuals than parameters (m < n): the circle `x² + y² = 1` from (2, 1).
#[test]
fn underdetermined_problem() {
    let p = Closure {
        n: 2,
        m: 1,
        r: |x: &[f64], r: &mut [f64]| r[0] = x[0] * x[0] + x[1] * x[1] - 1.0,
        j: |x: &[f64], mut j: MatMut<'_, f64>| {
            j[(0, 0)] = 2.0 * x[0];
            j[(0, 1)] = 2.0 * x[1];
        },
    };
    let (lm, gn) = both(&p, &[2.0, 1.0]);
    for r in [lm, gn] {
        assert!(r.cost < 1e-20, "{r}");
    }
}

#[test]
fn no_parameters_and_no_residuals() {
    let none = Closure {
        n: 0,
        m: 2,
        r: |_: &[f64], r: &mut [f64]| r.fill(3.0),
        j: |_: &[f64], _: MatMut<'_, f64>| {},
    };
    let (lm, gn) = both(&none, &[]);
    for r in [lm, gn] {
        assert!(r.termination.is_converged());
        assert_eq!(r.cost, 9.0);
    }
    let empty = Closure {
        n: 2,
        m: 0,
        r: |_: &[f64], _: &mut [f64]| {},
        j: |_: &[f64], _: MatMut<'_, f64>| {},
    };
    let (lm, gn) = both(&empty, &[1.0, 2.0]);
    for r in [lm, gn] {
        assert!(r.termination.is_converged());
        assert_eq!(r.cost, 0.0);
    }
}

/// A Jacobian with the wrong sign: no step can reduce the cost; the solve ends without a hang.
#[test]
fn wrong_jacobian_terminates() {
    let p = Closure {
        n: 1,
        m: 1,
        r: |x: &[f64], r: &mut [f64]| r[0] = x[0] - 1.0,
        j: |_: &[f64], mut j: MatMut<'_, f64>| j[(0, 0)] = -1.0,
    };
    let (lm, gn) = both(&p, &[3.0]);
    for r in [lm, gn] {
        assert_eq!(r.cost, 2.0, "{r}");
        assert!(!r.termination.is_converged() || r.accepted_steps == 0);
        assert!(r.evaluations <= 200, "{r}");
    }
}

#[test]
fn evaluation_budget_is_respected() {
    let p = test_problems::by_name("meyer").unwrap();
    for budget in [1, 2, 5, 17] {
        let mut theta = p.start();
        let r = LevenbergMarquardt::new()
            .with_max_evaluations(budget)
            .minimize(&p, &mut theta);
        assert_eq!(r.termination, Termination::MaxEvaluations);
        assert_eq!(r.evaluations, budget);
        assert!(r.cost <= r.initial_cost);
    }
}

#[test]
fn observer_sees_every_trial_and_can_stop() {
    let p = test_problems::by_name("bard").unwrap();
    let seen: Arc<Mutex<Vec<(usize, f64, bool)>>> = Arc::default();
    let log = seen.clone();
    let mut theta = p.start();
    let r = LevenbergMarquardt::new()
        .with_observer(move |info: &IterationInfo<'_, f64>| {
            log.lock()
                .unwrap()
                .push((info.iteration, info.lambda, info.accepted));
            ControlFlow::Continue(())
        })
        .minimize(&p, &mut theta);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), r.iterations);
    assert_eq!(
        seen.iter().map(|s| s.1).collect::<Vec<_>>(),
        r.lambda_history
    );
    assert_eq!(seen.iter().filter(|s| s.2).count(), r.accepted_steps);

    let mut theta = p.start();
    let r = LevenbergMarquardt::new()
        .with_observer(|info: &IterationInfo<'_, f64>| {
            if info.iteration == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .minimize(&p, &mut theta);
    assert_eq!(r.termination, Termination::User);
    assert_eq!(r.iterations, 3);
}

#[test]
fn report_time_split_adds_up() {
    let p = test_problems::by_name("osborne2").unwrap();
    let mut theta = p.start();
    let r = LevenbergMarquardt::new().minimize(&p, &mut theta);
    let t = r.timings;
    assert!(t.residuals + t.jacobian + t.linear_solve <= t.total);
    assert!(t.linear_solve > std::time::Duration::ZERO);
    let text = r.to_string();
    assert!(text.contains("residual evaluations") && text.contains("linear solve"));
}
