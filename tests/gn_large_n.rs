//! The matrix-free dual Gauss-Newton step by preconditioned CG (`Form::Cg` with a Nyström or
//! pivoted-Cholesky preconditioner): the same δ as the dense dual step, fewer iterations than
//! unpreconditioned CG on a kernel with fast spectral decay, one or two iterations when the
//! rank covers the kernel, and the kernel pieces it is built from (columns, diagonal) against
//! the full kernel.

mod common;
use common::*;
use faer::{Mat, MatRef};
use itlin::solve::{
    Form, GaussNewtonStep, Loss, NtkNystrom, Preconditioner, Sampling, StepReport, StepStatus,
};
use itlin::{Activation, Init, Mlp, Model};

/// An `Mlp` seen only through the three required `Model` methods (every default in play).
struct Plain(Mlp);

impl Model<f64> for Plain {
    fn n_params(&self) -> usize {
        Model::<f64>::n_params(&self.0)
    }
    fn n_inputs(&self) -> usize {
        Model::<f64>::n_inputs(&self.0)
    }
    fn n_outputs(&self) -> usize {
        Model::<f64>::n_outputs(&self.0)
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

#[allow(clippy::too_many_arguments)]
fn step(
    model: &dyn Model<f64>,
    theta: &[f64],
    x: &Mat<f64>,
    y: &Mat<f64>,
    loss: Loss,
    lambda: f64,
    form: Form,
    pre: Preconditioner,
) -> (Vec<f64>, StepReport) {
    GaussNewtonStep::new(loss)
        .with_damping(lambda)
        .with_form(form)
        .with_cg_preconditioner(pre)
        .with_nystrom_seed(7)
        .solve(model, theta, x.as_ref(), y.as_ref())
}

/// ‖a − b‖₂ / ‖b‖₂.
fn rel2(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let n: f64 = b.iter().map(|y| y * y).sum();
    (d / n).sqrt()
}

#[test]
fn kernel_columns_and_diagonal_match_the_full_kernel() {
    let (mlp, theta, x, _) = problem(&[4, 9, 7, 3], 11, 3, false);
    let full = itlin::ntk::empirical(&mlp, &theta, x.as_ref(), itlin::ntk::Method::Explicit);
    let samples = [0usize, 4, 10];
    let plain = Plain(mlp.clone());
    for (name, cols, diag) in [
        (
            "structured",
            mlp.ntk_columns(&theta, x.as_ref(), &samples),
            Model::<f64>::ntk_diagonal(&mlp, &theta, x.as_ref()),
        ),
        (
            "by products",
            plain.ntk_columns(&theta, x.as_ref(), &samples),
            plain.ntk_diagonal(&theta, x.as_ref()),
        ),
    ] {
        let c = 3;
        assert_eq!((cols.nrows(), cols.ncols()), (33, 9), "{name}");
        let want: Vec<f64> = (0..9)
            .flat_map(|jj| {
                let col = samples[jj / c] * c + jj % c;
                (0..33).map(move |i| (i, col))
            })
            .map(|(i, col)| full[(i, col)])
            .collect();
        assert_close(
            &format!("{name} columns"),
            &mat_to_vec(cols.as_ref()),
            &want,
            1e-12,
        );
        let dwant: Vec<f64> = (0..33).map(|i| full[(i, i)]).collect();
        assert_close(&format!("{name} diagonal"), &diag, &dwant, 1e-12);
    }
}

#[test]
fn nystrom_of_every_column_is_the_kernel() {
    let (mlp, theta, x, _) = problem(&[3, 10, 2], 9, 4, false);
    let full = itlin::ntk::empirical(&mlp, &theta, x.as_ref(), itlin::ntk::Method::Explicit);
    for sampling in [Sampling::Uniform { seed: 2 }, Sampling::Greedy] {
        let ny = NtkNystrom::new(&mlp, &theta, x.as_ref(), 18, sampling);
        assert_eq!(ny.samples().len(), 9);
        let (u, l) = (ny.eigenvectors(), ny.eigenvalues());
        let approx = Mat::from_fn(18, 18, |i, j| {
            (0..l.len())
                .map(|k| u[(i, k)] * l[k] * u[(j, k)])
                .sum::<f64>()
        });
        assert_close(
            &format!("{sampling:?}"),
            &mat_to_vec(approx.as_ref()),
            &mat_to_vec(full.as_ref()),
            1e-11,
        );
    }
}

#[test]
fn pcg_dual_step_equals_the_dense_dual_step() {
    // P = 219 > N·C = 120: the dual is the small system.
    let (widths, n) = (&[5usize, 24, 3][..], 40);
    for loss in [Loss::Mse, Loss::CrossEntropy] {
        let (mlp, theta, x, y) = problem(widths, n, 11, loss == Loss::CrossEntropy);
        let lambda = 1e-2;
        let (dense, rep) = step(
            &mlp,
            &theta,
            &x,
            &y,
            loss,
            lambda,
            Form::Dual,
            Preconditioner::Auto,
        );
        assert_eq!(rep.status, StepStatus::Solved);
        // κ of the dual system, for the tolerance: the dense and the CG solve each have a
        // forward error of about κ·ε (backward errors of 8ε-64ε), so 1e-10 holds for
        // κ ≲ 1e4 (checked here).
        let k = itlin::ntk::empirical(&mlp, &theta, x.as_ref(), itlin::ntk::Method::Explicit);
        let ev = k.self_adjoint_eigenvalues(faer::Side::Lower).unwrap();
        let mu = n as f64 * lambda;
        let kappa = (ev[ev.len() - 1] + mu) / (ev[0].max(0.0) + mu);
        assert!(kappa < 1e4, "κ = {kappa:e}");
        for pre in [
            Preconditioner::Nystrom { rank: 0 },
            Preconditioner::Nystrom { rank: 30 },
            Preconditioner::PivotedCholesky { rank: 30 },
            Preconditioner::Nystrom { rank: 120 },
        ] {
            let (d, rep) = step(&mlp, &theta, &x, &y, loss, lambda, Form::Cg, pre);
            let cg = rep.cg.expect("CG outcome");
            assert_eq!(rep.status, StepStatus::Solved, "{loss:?} {pre}: {rep:?}");
            assert!(
                cg.backward_error <= 64.0 * f64::EPSILON,
                "{loss:?} {pre}: {cg:?}"
            );
            let e = rel2(&d, &dense);
            assert!(
                e <= 1e-10,
                "{loss:?} {pre}: ‖δ − δ_dense‖/‖δ_dense‖ = {e:e}, {cg:?}"
            );
        }
        // the same through a model with only the required methods (default columns,
        // diagonal and Jacobian)
        let plain = Plain(mlp.clone());
        let (d, rep) = step(
            &plain,
            &theta,
            &x,
            &y,
            loss,
            lambda,
            Form::Cg,
            Preconditioner::PivotedCholesky { rank: 30 },
        );
        assert_eq!(rep.status, StepStatus::Solved, "{loss:?} plain: {rep:?}");
        let e = rel2(&d, &dense);
        assert!(e <= 1e-10, "{loss:?} plain model: {e:e}");
    }
}

/// Inputs in a few tight clusters: the kernel has a few large eigenvalues (one group per
/// cluster) and a fast-decaying tail, and with a small damping the dual system is
/// ill-conditioned.
fn clustered(n: usize, d: usize, clusters: usize, seed: u64) -> Mat<f64> {
    let mut r = rng(seed);
    let centres: Mat<f64> = rand_mat(&mut r, clusters, d);
    let noise: Mat<f64> = rand_mat(&mut r, n, d);
    Mat::from_fn(n, d, |i, j| {
        2.0 * centres[(i % clusters, j)] + 0.05 * noise[(i, j)]
    })
}

#[test]
fn nystrom_preconditioner_cuts_iterations_on_an_ill_conditioned_kernel() {
    let widths = [6usize, 64, 4];
    let n = 90; // N·C = 360 < P = 708
    let mlp = Mlp::new(&widths, Activation::Tanh).unwrap();
    let theta: Vec<f64> = mlp.init(Init::Standard, 5);
    let x = clustered(n, 6, 6, 8);
    let y: Mat<f64> = rand_mat(&mut rng(9), n, 4);
    let lambda = 1e-7;
    let k = itlin::ntk::empirical(&mlp, &theta, x.as_ref(), itlin::ntk::Method::Explicit);
    let ev = k.self_adjoint_eigenvalues(faer::Side::Lower).unwrap();
    let mu = n as f64 * lambda;
    let kappa = (ev[ev.len() - 1] + mu) / (ev[0].max(0.0) + mu);
    assert!(
        kappa > 1e5,
        "the test problem should be ill-conditioned: κ = {kappa:e}"
    );
    let run = |pre| {
        let (d, rep) = step(&mlp, &theta, &x, &y, Loss::Mse, lambda, Form::Cg, pre);
        (d, rep.cg.expect("CG outcome"))
    };
    let (d0, plain) = run(Preconditioner::Nystrom { rank: 0 });
    for pre in [
        Preconditioner::Nystrom { rank: 80 },
        Preconditioner::PivotedCholesky { rank: 80 },
    ] {
        let (d, with) = run(pre);
        assert!(with.converged, "{pre}: {with:?}");
        // an invariant of a good preconditioner on this spectrum (measured: several times
        // fewer), not a timing
        assert!(
            2 * with.iterations < plain.iterations,
            "{pre}: {with:?} against none: {plain:?}"
        );
        if plain.converged {
            let e = rel2(&d, &d0);
            assert!(e < 1e-6, "{pre}: {e:e}");
        }
    }
}

#[test]
fn full_rank_preconditioner_is_exact() {
    for loss in [Loss::Mse, Loss::CrossEntropy] {
        let (mlp, theta, x, y) = problem(&[4, 20, 3], 15, 21, loss == Loss::CrossEntropy);
        for pre in [
            Preconditioner::Nystrom { rank: 45 },
            Preconditioner::PivotedCholesky { rank: 1000 },
        ] {
            let (_, rep) = step(&mlp, &theta, &x, &y, loss, 1e-4, Form::Cg, pre);
            let cg = rep.cg.expect("CG outcome");
            assert!(cg.converged, "{loss:?} {pre}: {cg:?}");
            // MSE: one CG run of 1-2 iterations; cross-entropy: at most 2 refinement rounds
            // of 1-2 each
            let most = if loss == Loss::Mse { 2 } else { 4 };
            assert!(cg.iterations <= most, "{loss:?} {pre}: {cg:?}");
        }
    }
}

#[test]
fn reused_factor_serves_every_damping() {
    let (mlp, theta, x, y) = problem(&[5, 16, 2], 30, 2, false);
    let ny = NtkNystrom::new(&mlp, &theta, x.as_ref(), 20, Sampling::Greedy);
    for lambda in [1e-1, 1e-3, 1e-5] {
        let (dense, _) = step(
            &mlp,
            &theta,
            &x,
            &y,
            Loss::Mse,
            lambda,
            Form::Dual,
            Preconditioner::Auto,
        );
        let (d, rep) = GaussNewtonStep::new(Loss::Mse)
            .with_damping(lambda)
            .with_form(Form::Cg)
            .solve_with_nystrom(&mlp, &theta, x.as_ref(), y.as_ref(), &ny);
        assert_eq!(rep.status, StepStatus::Solved, "λ = {lambda}: {rep:?}");
        let e = rel2(&d, &dense);
        assert!(e <= 1e-8, "λ = {lambda}: {e:e}");
    }
}

#[test]
fn preconditioner_spellings_round_trip_and_bad_ones_are_refused() {
    for p in [
        Preconditioner::Auto,
        Preconditioner::Jacobi,
        Preconditioner::None,
        Preconditioner::Nystrom { rank: 512 },
        Preconditioner::PivotedCholesky { rank: 3 },
    ] {
        assert_eq!(p.to_string().parse::<Preconditioner>(), Ok(p));
    }
    for bad in [
        "nystrom",
        "nystrom:",
        "nystrom:-1",
        "nystrom:1e3",
        "chol:4",
        "",
        "jacobi:2",
    ] {
        let e = bad.parse::<Preconditioner>().unwrap_err();
        assert!(!e.contains('\n'), "{bad:?}: {e}");
    }
}

#[test]
fn memory_plan_of_the_matrix_free_step_fits_where_the_dense_one_does_not() {
    use itlin::train::{GnSolver, Inner, TrainConfig, inner_step_plan};
    let gn = |form, preconditioner| {
        TrainConfig::new()
            .with_inner(Inner::GaussNewton {
                damping: 1e-3,
                adaptive: false,
            })
            .with_loss(Loss::CrossEntropy)
            .with_gn_solver(GnSolver {
                form,
                preconditioner,
            })
    };
    // N·C = 10⁵, P = 203,530 (MNIST, 784-256-10), f64, a 4 GiB budget
    let budget = 4u64 << 30;
    let free = gn(Form::Cg, Preconditioner::Nystrom { rank: 1000 });
    free.validate().unwrap();
    let plan = inner_step_plan::<f64>(&free, 10_000, 10, 203_530).unwrap();
    assert!(
        plan.what.contains("dual") && plan.what.contains("1000"),
        "{plan:?}"
    );
    assert!(plan.check(budget).is_ok(), "{plan:?}");
    let dense = inner_step_plan::<f64>(&gn(Form::Dual, Preconditioner::Auto), 10_000, 10, 203_530);
    assert!(dense.unwrap().check(budget).is_err());
    // a preconditioner without the CG form is refused
    assert!(
        gn(Form::Dual, Preconditioner::Nystrom { rank: 8 })
            .validate()
            .is_err()
    );
}
