//! Property tests of the empirical NTK, the linearisation and the Gauss-Newton solvers over
//! random architectures (1–4 layers, widths 1–9, every activation, both parameterisations)
//! and batch sizes 1–9, against dense f64 oracles built from the explicit Jacobian with
//! plain loops (`common::reference`):
//! - structured / explicit / auto NTK = `J Jᵀ`, symmetric; `Θ v`, diagonal, trace, cross;
//! - every Gauss-Newton form = the dense solve of `(JᵀHJ + NλI) δ = −Jᵀg`, λ ∈ [1e-4, 1];
//! - the closed-form K-step gradient descent = K explicit steps on the linearised MSE;
//! - the spectral cache's predicted loss and step norm; explicit and matrix-free
//!   linearisations agree.
//!
//! The runner is deterministic (ChaCha, fixed seed, see `common::strategies::config`).

mod common;
use common::reference::{gauss_solve, gn_system, j_jt_naive, jtu_naive, jv_naive};
use common::strategies::{Arch, arch, config, theta};
use common::*;
use faer::{Mat, Side};
use itlin::linearise::Linearisation;
use itlin::ntk::{self, Method};
use itlin::solve::{
    Filter, Form, GaussNewtonStep, Loss, SpectralCache, StepStatus, gradient_descent_closed_form,
};
use itlin::{Mlp, Model};
use proptest::prelude::*;

/// A problem: the network, θ, X (`N × d`, entries in [-1, 1)) and Y (`N × C`): uniform
/// targets for MSE, one-hot rows of random labels for cross-entropy.
fn problem(arch: &Arch, n: usize, seed: u64, loss: Loss) -> (Mlp, Vec<f64>, Mat<f64>, Mat<f64>) {
    let mlp = arch.mlp();
    let theta: Vec<f64> = theta(&mlp, seed);
    let mut r = rng(seed ^ 0x5eed);
    let x: Mat<f64> = rand_mat(&mut r, n, arch.d());
    let c = arch.c();
    let y = match loss {
        Loss::Mse => rand_mat(&mut r, n, c),
        Loss::CrossEntropy => {
            let labels: Vec<f64> = rand_vec(&mut r, n);
            // labels in [-1, 1) → class in 0..C
            Mat::from_fn(n, c, |i, k| {
                let class = (((labels[i] + 1.0) / 2.0 * c as f64) as usize).min(c - 1);
                f64::from(u8::from(class == k))
            })
        }
    };
    (mlp, theta, x, y)
}

/// `vec(f − y)` in sample-major order.
fn residual(f: &Mat<f64>, y: &Mat<f64>) -> Vec<f64> {
    let f = mat_to_row_major(f.as_ref());
    let y = mat_to_row_major(y.as_ref());
    f.iter().zip(&y).map(|(a, b)| a - b).collect()
}

proptest! {
    #![proptest_config(config(48, 0x00C0_FFEE_0002))]

    /// Θ by every method = `J Jᵀ` from plain loops (1e-12), exactly symmetric; `Θ v` (one
    /// VJP + one JVP), the diagonal and the trace agree with the same dense Θ.
    #[test]
    fn ntk_equals_j_jt(arch in arch(), n in 1usize..=9, seed in any::<u64>()) {
        let (mlp, theta, x, _) = problem(&arch, n, seed, Loss::Mse);
        let m = n * arch.c();
        let j = mlp.jacobian(&theta, x.as_ref());
        let want = j_jt_naive(&j, &j);
        for method in [Method::Structured, Method::Explicit, Method::Auto] {
            let k = ntk::empirical(&mlp, &theta, x.as_ref(), method);
            prop_assert_eq!((k.nrows(), k.ncols()), (m, m));
            assert_close(&format!("{method:?} vs J Jᵀ"), &mat_to_vec(k.as_ref()), &want, 1e-12);
            for a in 0..m {
                for b in 0..a {
                    prop_assert_eq!(k[(a, b)], k[(b, a)], "{:?} not symmetric at ({}, {})", method, a, b);
                }
            }
        }
        let v: Vec<f64> = rand_vec(&mut rng(seed ^ 7), m);
        let kv: Vec<f64> = (0..m).map(|a| (0..m).map(|b| want[b * m + a] * v[b]).sum()).collect();
        assert_close("Θ v", &ntk::ntk_vector_product(&mlp, &theta, x.as_ref(), &v), &kv, 1e-12);
        let s = mlp.signals(&theta, x.as_ref());
        let diag: Vec<f64> = (0..m).map(|a| want[a * m + a]).collect();
        assert_close("diagonal", &ntk::diagonal(&s), &diag, 1e-12);
        let tr: f64 = diag.iter().sum();
        prop_assert!((ntk::trace(&s) - tr).abs() <= 1e-12 * tr, "trace {} vs {}", ntk::trace(&s), tr);
    }

    /// The cross-kernel `Θ(X₁, X₂) = J(X₁) J(X₂)ᵀ`.
    #[test]
    fn cross_kernel_equals_j1_j2t(
        arch in arch(),
        n1 in 1usize..=9,
        n2 in 1usize..=9,
        seed in any::<u64>(),
    ) {
        let (mlp, theta, x1, _) = problem(&arch, n1, seed, Loss::Mse);
        let x2: Mat<f64> = rand_mat(&mut rng(seed ^ 9), n2, arch.d());
        let j1 = mlp.jacobian(&theta, x1.as_ref());
        let j2 = mlp.jacobian(&theta, x2.as_ref());
        let k = ntk::cross(&mlp, &theta, x1.as_ref(), x2.as_ref());
        prop_assert_eq!((k.nrows(), k.ncols()), (j1.nrows(), j2.nrows()));
        assert_close("cross", &mat_to_vec(k.as_ref()), &j_jt_naive(&j1, &j2), 1e-12);
    }

    /// Every damped GN form (MSE: primal, dual, CG on explicit J, Hessian-free CG, spectral,
    /// auto; cross-entropy: primal, dual, both CGs, auto) solves `A δ = b`,
    /// `A = JᵀHJ + NλI`, `b = −Jᵀg`, for λ ∈ [1e-4, 1], against the dense f64 reference
    /// (Gaussian elimination on `A` assembled from the explicit J with plain loops):
    /// - the factorisation forms agree with it to 1e-8 (seen over 2,000 cases: ≤ 1.2e-9,
    ///   κ(A) up to 5.6e6);
    /// - CG with its defaults (aim: backward error 8ε, see `Form::Cg`) reaches a normwise
    ///   backward error `‖Aδ − b‖∞ / (‖A‖∞‖δ‖∞ + ‖b‖∞) ≤ 2e-14` (seen ≤ 2.6e-15 over 2,000
    ///   cases) and agrees with the reference to `max(1e-10, 2e-14·κ(A))`: a backward error
    ///   η bounds the forward error only by about `2κη` (largest error / (1e-14·κ) over
    ///   2,000 cases: 0.38; largest error 7.7e-10).
    #[test]
    fn every_gn_form_matches_the_dense_reference(
        arch in arch(),
        n in 1usize..=9,
        seed in any::<u64>(),
        log_lambda in -4.0f64..=0.0,
        cross_entropy in any::<bool>(),
    ) {
        let loss = if cross_entropy { Loss::CrossEntropy } else { Loss::Mse };
        let lambda = 10f64.powf(log_lambda);
        let (mlp, theta, x, y) = problem(&arch, n, seed, loss);
        let system = gn_system(&mlp, &theta, x.as_ref(), y.as_ref(), loss, lambda);
        let p = theta.len();
        let a = Mat::from_fn(p, p, |i, k| system[i][k]);
        let b: Vec<f64> = system.iter().map(|row| row[p]).collect();
        let want = gauss_solve(system);
        let eig = a.self_adjoint_eigenvalues(Side::Lower).unwrap();
        let kappa = eig[p - 1] / eig[0];
        // Normwise backward error ‖Aδ − b‖∞ / (‖A‖∞ ‖δ‖∞ + ‖b‖∞).
        let a_norm = (0..p)
            .map(|i| (0..p).map(|k| a[(i, k)].abs()).sum::<f64>())
            .fold(0f64, f64::max);
        let inf = |v: &[f64]| v.iter().fold(0f64, |m, x| m.max(x.abs()));
        let backward_error = |d: &[f64]| {
            let r: Vec<f64> = (0..p)
                .map(|i| (0..p).map(|k| a[(i, k)] * d[k]).sum::<f64>() - b[i])
                .collect();
            inf(&r) / (a_norm * inf(d) + inf(&b)).max(f64::MIN_POSITIVE)
        };
        let mut forms = vec![
            (Form::Primal, u64::MAX),
            (Form::Dual, u64::MAX),
            (Form::Cg, u64::MAX),
            (Form::Cg, 0), // no room for J: Hessian-free (JVP + VJP per iteration)
            (Form::Auto, u64::MAX),
        ];
        if loss == Loss::Mse {
            forms.push((Form::Spectral, u64::MAX));
        }
        for (form, budget) in forms {
            let (d, rep) = GaussNewtonStep::new(loss)
                .with_damping(lambda)
                .with_form(form)
                .with_memory_budget(budget)
                .solve(&mlp, &theta, x.as_ref(), y.as_ref());
            prop_assert_eq!(rep.status, StepStatus::Solved, "{:?} {:?}: {:?}", form, loss, rep);
            let what = format!(
                "{form:?} (budget {budget}) {loss:?} {:?} {} λ={lambda:e} κ={kappa:e}, CG {:?}",
                arch.widths, arch.act, rep.cg
            );
            let tol = if form == Form::Cg {
                let eta = backward_error(&d);
                prop_assert!(eta <= 2e-14, "{}: backward error {:e}", what, eta);
                1e-10f64.max(2e-14 * kappa)
            } else {
                1e-8
            };
            assert_close(&what, &d, &want, tol);
        }
    }

    /// `gradient_descent_closed_form` (φ_K) = K explicit full-batch GD steps
    /// `δ ← δ − (η/N) Jᵀ(r + J δ)` on the linearised mean MSE, K ∈ 1..50, for step sizes
    /// `η = ρ N / λ_max(Θ)` with ρ ∈ [0.05, 1.9] (monotone for ρ < 1, oscillating but stable
    /// above).
    #[test]
    fn closed_form_gd_equals_k_explicit_steps(
        arch in arch(),
        n in 1usize..=9,
        seed in any::<u64>(),
        k in 1u64..50,
        rho in 0.05f64..1.9,
    ) {
        let (mlp, theta, x, y) = problem(&arch, n, seed, Loss::Mse);
        let m = n * arch.c();
        let j = mlp.jacobian(&theta, x.as_ref());
        let kern = j_jt_naive(&j, &j);
        let kmat = Mat::from_fn(m, m, |a, b| kern[b * m + a]);
        let s_max = kmat
            .self_adjoint_eigenvalues(Side::Lower)
            .unwrap()
            .into_iter()
            .fold(0f64, f64::max);
        prop_assume!(s_max > 0.0, "Θ = 0");
        let lr = rho * n as f64 / s_max;
        let r = residual(&mlp.forward(&theta, x.as_ref()), &y);
        let mut delta = vec![0.0; theta.len()];
        for _ in 0..k {
            let jd = jv_naive(&j, &delta);
            let res: Vec<f64> = r.iter().zip(&jd).map(|(a, b)| a + b).collect();
            let g = jtu_naive(&j, &res);
            for (d, gi) in delta.iter_mut().zip(&g) {
                *d -= lr / n as f64 * gi;
            }
        }
        let closed = gradient_descent_closed_form(&mlp, &theta, x.as_ref(), y.as_ref(), lr, k);
        assert_close(&format!("φ_K, K = {k}, ρ = {rho}"), &closed, &delta, 1e-8);
    }

    /// The spectral cache predicts the linearised MSE after the step and `‖δ‖²` exactly,
    /// for damping, K-step GD and gradient-flow filters.
    #[test]
    fn spectral_cache_predictions(
        arch in arch(),
        n in 1usize..=9,
        seed in any::<u64>(),
        which in 0usize..3,
        log_lambda in -4.0f64..=0.0,
        k in 1u64..1000,
    ) {
        let (mlp, theta, x, y) = problem(&arch, n, seed, Loss::Mse);
        let cache = SpectralCache::new(&mlp, &theta, x.as_ref(), y.as_ref()).unwrap();
        let s_max = cache.s.iter().copied().fold(0f64, f64::max).max(1e-300);
        let lr = 0.5 * n as f64 / s_max;
        let filter = match which {
            0 => Filter::Damping { lambda: 10f64.powf(log_lambda) },
            1 => Filter::GradientDescent { lr, steps: k },
            _ => Filter::GradientFlow { lr, time: k as f64 },
        };
        let d = cache.delta(&mlp, &theta, x.as_ref(), filter);
        let (pred_loss, pred_norm) = cache.predicted(filter);
        let j = mlp.jacobian(&theta, x.as_ref());
        let r = residual(&mlp.forward(&theta, x.as_ref()), &y);
        let lin: Vec<f64> = r.iter().zip(jv_naive(&j, &d)).map(|(a, b)| a + b).collect();
        let loss = lin.iter().map(|e| e * e).sum::<f64>() / (2.0 * n as f64);
        let norm: f64 = d.iter().map(|v| v * v).sum();
        let loss0 = r.iter().map(|e| e * e).sum::<f64>() / (2.0 * n as f64);
        let r2: f64 = r.iter().map(|e| e * e).sum();
        let phi0 = filter.phi(0.0, n);
        // The loss is measured on the scale of the loss before the step. ‖δ‖² = Σ s φ(s)² w²
        // is ill-conditioned where φ is large: an eigenvalue error of ε·s_max (backward
        // stable eigensolver) moves it by about ε·s_max·φ(0)²·‖w‖², with ‖w‖ = ‖r‖ and
        // φ(0) = max φ (1/(Nλ) for damping).
        prop_assert!(
            (pred_loss - loss).abs() <= 1e-10 * loss0,
            "{:?}: loss {:e} vs {:e}", filter, pred_loss, loss
        );
        let norm_tol = 1e-10 * norm + 16.0 * f64::EPSILON * s_max * phi0 * phi0 * r2;
        prop_assert!(
            (pred_norm - norm).abs() <= norm_tol,
            "{:?}: ‖δ‖² {:e} vs {:e} (tolerance {:e})", filter, pred_norm, norm, norm_tol
        );
    }

    /// An explicit-J linearisation and a matrix-free one give the same `J v`, `Jᵀ u`,
    /// `Jᵀ J v` and `f_lin(θ) = f(θ̃) + J(θ − θ̃)`, and `f_lin(θ̃) = f(θ̃)`.
    #[test]
    fn linearisation_explicit_equals_matrix_free(
        arch in arch(),
        n in 1usize..=9,
        seed in any::<u64>(),
    ) {
        let (mlp, t0, x, _) = problem(&arch, n, seed, Loss::Mse);
        let c = arch.c();
        let mut r = rng(seed ^ 11);
        let v: Vec<f64> = rand_vec(&mut r, t0.len());
        let u: Mat<f64> = rand_mat(&mut r, n, c);
        let theta: Vec<f64> = t0.iter().zip(&v).map(|(a, b)| a + 1e-2 * b).collect();
        let exp = Linearisation::with_budget(&mlp, &t0, x.as_ref(), u64::MAX);
        let mf = Linearisation::with_budget(&mlp, &t0, x.as_ref(), 0);
        prop_assert!(exp.is_explicit() && !mf.is_explicit());
        let j = mlp.jacobian(&t0, x.as_ref());
        let jv = jv_naive(&j, &v);
        let jtu = jtu_naive(&j, &mat_to_row_major(u.as_ref()));
        let jtjv = jtu_naive(&j, &jv);
        for (name, lin) in [("explicit", &exp), ("matrix-free", &mf)] {
            assert_close(&format!("{name} jvp"), &mat_to_row_major(lin.jvp(&v).as_ref()), &jv, 1e-12);
            assert_close(&format!("{name} vjp"), &lin.vjp(u.as_ref()), &jtu, 1e-12);
            assert_close(&format!("{name} gn"), &lin.gn_mul_vec(&v), &jtjv, 1e-12);
            let f0 = mat_to_row_major(mlp.forward(&t0, x.as_ref()).as_ref());
            assert_close(&format!("{name} f_lin(θ̃)"), &mat_to_row_major(lin.predict(&t0).as_ref()), &f0, 1e-15);
            let want: Vec<f64> = f0.iter().zip(&jv).map(|(a, b)| a + 1e-2 * b).collect();
            assert_close(&format!("{name} f_lin(θ)"), &mat_to_row_major(lin.predict(&theta).as_ref()), &want, 1e-12);
        }
    }
}

proptest! {
    #![proptest_config(config(6, 0x00C0_FFEE_0003))]

    /// N·C above the structured assembly's 256-column panel: structured Θ = `J Jᵀ`.
    #[test]
    fn structured_ntk_across_panels(
        arch in arch().prop_filter("C ≥ 3", |a| a.c() >= 3),
        n in 30usize..=120,
        seed in any::<u64>(),
    ) {
        let (mlp, theta, x, _) = problem(&arch, n, seed, Loss::Mse);
        let j = mlp.jacobian(&theta, x.as_ref());
        let k = ntk::empirical(&mlp, &theta, x.as_ref(), Method::Structured);
        assert_close("structured, panels", &mat_to_vec(k.as_ref()), &j_jt_naive(&j, &j), 1e-12);
    }
}

proptest! {
    #![proptest_config(config(32, 0x00C0_FFEE_0004))]

    /// Kernel distance: 0 against itself and any positive multiple, symmetric, and in
    /// [0, 1] for two PSD kernels (`⟨Θ₁, Θ₂⟩_F = tr(Θ₁Θ₂) ≥ 0`).
    #[test]
    fn kernel_distance_properties(arch in arch(), n in 1usize..=9, seed in any::<u64>(), scale in 0.01f64..100.0) {
        let (mlp, theta, x, _) = problem(&arch, n, seed, Loss::Mse);
        let (_, theta2, _, _) = problem(&arch, n, seed ^ 13, Loss::Mse);
        let k1 = ntk::empirical(&mlp, &theta, x.as_ref(), Method::Auto);
        let k2 = ntk::empirical(&mlp, &theta2, x.as_ref(), Method::Auto);
        prop_assume!(ntk::trace(&mlp.signals(&theta, x.as_ref())) > 0.0, "Θ₁ = 0");
        prop_assume!(ntk::trace(&mlp.signals(&theta2, x.as_ref())) > 0.0, "Θ₂ = 0");
        let k1s = Mat::from_fn(k1.nrows(), k1.ncols(), |a, b| scale * k1[(a, b)]);
        // Rounding: the Frobenius sums over (N·C)² entries are accurate to (N·C)²·ε.
        let tol = (k1.nrows() * k1.nrows()) as f64 * f64::EPSILON;
        let d11 = ntk::kernel_distance(k1.as_ref(), k1.as_ref());
        prop_assert!(d11.abs() <= tol, "d(Θ, Θ) = {:e}", d11);
        let d1s = ntk::kernel_distance(k1.as_ref(), k1s.as_ref());
        prop_assert!(d1s.abs() <= tol, "d(Θ, {}Θ) = {:e}", scale, d1s);
        let d12 = ntk::kernel_distance(k1.as_ref(), k2.as_ref());
        let d21 = ntk::kernel_distance(k2.as_ref(), k1.as_ref());
        prop_assert!((d12 - d21).abs() <= tol, "{d12} vs {d21}");
        prop_assert!((-tol..=1.0 + tol).contains(&d12), "{d12}");
    }
}
