//! The second-order inner steps on `f_lin`: damped Gauss-Newton (optionally adaptive, LM) and
//! the spectral closed form of `K` gradient-descent steps, plus row gathering and subset
//! sampling shared with the trainer.

use super::config::{Period, TrainConfig};
use super::loss::{Loss, loss_value};
use super::state::{DataRef, TrainState};
use crate::solve::{Form, GaussNewtonStep, NtkNystrom, gradient_descent_closed_form};
use crate::{Model, Real, Result};
use faer::linalg::solvers::Solve;
use faer::{Mat, MatRef};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;

/// The rows `rows` of `m`, in that order.
pub(crate) fn gather<T: Real>(m: MatRef<'_, T>, rows: &[usize]) -> Mat<T> {
    Mat::from_fn(rows.len(), m.ncols(), |i, j| m[(rows[i], j)])
}

/// The rows used by a solve at `step`: all of them when `gn_batch` is `None` or ≥ N, else a
/// sample without replacement from a ChaCha8 stream seeded by `(seed, step)` (stateless, so a
/// resumed run draws the same subsets).
pub(crate) fn subset_rows(n: usize, gn_batch: Option<usize>, seed: u64, step: u64) -> Vec<usize> {
    match gn_batch {
        Some(b) if b < n => {
            let mut rng = ChaCha8Rng::seed_from_u64(
                seed.wrapping_add(0xA076_1D64_78BD_642F) ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            let mut rows = sample(&mut rng, n, b).into_vec();
            rows.sort_unstable();
            rows
        }
        _ => (0..n).collect(),
    }
}

/// The empirical NTK `Θ = J Jᵀ` at `θ` on `x` (see [`super::probe::ntk`]).
fn ntk<T: Real, M: Model<T>>(model: &M, theta: &[T], x: MatRef<'_, T>) -> Result<Mat<T>> {
    super::probe::ntk_checked(model, theta, x)
}

/// `−Jᵀ α` (one VJP at `θ`) with `α` an `N × C` matrix.
fn neg_jt<T: Real, M: Model<T>>(
    model: &M,
    theta: &[T],
    x: MatRef<'_, T>,
    alpha: MatRef<'_, T>,
) -> Vec<T> {
    let mut d = model.vjp(theta, x, alpha);
    for v in &mut d {
        *v = -*v;
    }
    d
}

/// One damped Gauss-Newton step on `f_lin`: minimise over `δ`
/// `L(f_lin(θ) + J(θ̃)δ) ` in its Gauss-Newton model plus `(λ/2)‖δ‖²`, i.e.
/// `(JᵀHJ + NλI) δ = −Jᵀg` with `J = J(θ̃)` and `H, g` (output Hessian and `N·∂L/∂f`) at
/// `f_lin(θ)`. For MSE this is [`gauss_newton_step`] at `θ̃` with the targets shifted by
/// `J(θ − θ̃)` (exact, since `H = I`); for cross-entropy at `θ = θ̃` it is
/// [`gauss_newton_step`] itself, and otherwise the dual system `(HΘ + NλI) α = g`,
/// `δ = −Jᵀα` with `H, g` at `f_lin` (solved here: the solver knows only the network's
/// outputs). Adaptive: rejects a step that does not lower the linearised subset loss.
/// Returns `None` when the step was taken (or rejected), else the first non-finite quantity
/// and its value; then θ is left unchanged.
pub(crate) fn gn_inner_step<T: Real, M: Model<T>>(
    model: &M,
    st: &mut TrainState<T>,
    cfg: &TrainConfig,
    train: DataRef<'_, T>,
    adaptive: bool,
    nystrom: &mut Option<(u64, NtkNystrom)>,
) -> Result<Option<(&'static str, f64)>> {
    let rows = subset_rows(train.len(), cfg.gn_batch, cfg.seed, st.step);
    let (x, y) = (gather(train.x, &rows), gather(train.y, &rows));
    let at_tilde = st.since_relin == 0;
    let (jv, flin) = f_lin_on(model, st, x.as_ref());
    let before = loss_value(cfg.loss, flin.as_ref(), y.as_ref());
    if !before.is_finite() {
        return Ok(Some(("loss of f_lin on the solve's rows", before)));
    }
    let lambda = st.damping;
    let solver = cfg.gn_solver;
    let gn = GaussNewtonStep::new(cfg.loss)
        .with_damping(lambda)
        .with_form(solver.form)
        .with_cg_preconditioner(solver.preconditioner)
        .with_nystrom_seed(cfg.seed ^ st.relinearisations.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let dual_cg = solver.form == Form::Cg && gn.cg_is_dual();
    // The Nyström factor of Θ(θ̃) on these rows: reused while θ̃ and the rows stay the same
    // (every row in each solve), else rebuilt for this step.
    let full = rows.len() == train.len();
    let key = st.relinearisations;
    if dual_cg && !(full && nystrom.as_ref().is_some_and(|(k, _)| *k == key)) {
        *nystrom = NtkNystrom::for_preconditioner(
            model,
            &st.theta_tilde,
            x.as_ref(),
            solver.preconditioner,
            cfg.seed ^ key.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        )
        .map(|f| (key, f));
    }
    let factor = if dual_cg {
        nystrom.as_ref().map(|(_, f)| f)
    } else {
        None
    };
    let solve = |y: MatRef<'_, T>| match factor {
        Some(f) => {
            gn.solve_with_nystrom(model, &st.theta_tilde, x.as_ref(), y, f)
                .0
        }
        None => gn.solve(model, &st.theta_tilde, x.as_ref(), y).0,
    };
    let delta = match cfg.loss {
        Loss::Mse => {
            // r = f(θ̃) − (y − J v) = f_lin(θ) − y
            let y_shift = &y - &jv;
            solve(y_shift.as_ref())
        }
        Loss::CrossEntropy if at_tilde => solve(y.as_ref()),
        // H and g at f_lin: the matrix-free dual CG step takes them as given outputs
        Loss::CrossEntropy if dual_cg => {
            gn.solve_at_outputs(
                model,
                &st.theta_tilde,
                x.as_ref(),
                y.as_ref(),
                flin.as_ref(),
                factor,
            )
            .0
        }
        Loss::CrossEntropy => linearised_ce_step(
            model,
            &st.theta_tilde,
            x.as_ref(),
            y.as_ref(),
            flin.as_ref(),
            lambda,
        )?,
    };
    finish_gn_step(st, &delta, adaptive, before, |theta_tilde, delta| {
        let (_, jd) = model.jvp(theta_tilde, x.as_ref(), delta);
        let fnew = &flin + &jd;
        Ok(loss_value(cfg.loss, fnew.as_ref(), y.as_ref()))
    })
}

/// Ends a Gauss-Newton inner step with the step `delta`: a non-finite `δ` is reported; when
/// `adaptive`, the step is kept only if the linearised loss with it, `after(θ̃, δ)`, is at most
/// `before` (then `λ ← max(λ/3, 1e-12)`), else rejected (`λ ← min(10λ, 1e12)`, θ unchanged);
/// a kept step sets `θ ← θ + δ` unless some entry would not be finite (then that value is
/// reported and θ is unchanged).
pub(crate) fn finish_gn_step<T: Real>(
    st: &mut TrainState<T>,
    delta: &[T],
    adaptive: bool,
    before: f64,
    after: impl FnOnce(&[T], &[T]) -> Result<f64>,
) -> Result<Option<(&'static str, f64)>> {
    if let Some(v) = first_non_finite(delta) {
        return Ok(Some(("Gauss-Newton step δ", v)));
    }
    let accept = !adaptive || after(&st.theta_tilde, delta)? <= before;
    if accept {
        if let Some(v) = apply_checked(&mut st.theta, delta) {
            return Ok(Some(("θ after the update", v)));
        }
        if adaptive {
            st.damping = (st.damping / 3.0).max(1e-12);
        }
    } else {
        st.rejected += 1;
        st.damping = (st.damping * 10.0).min(1e12);
    }
    Ok(None)
}

/// `(J v, f_lin)` on `x` with `v = θ − θ̃`: `f_lin = f(x; θ̃) + J(x; θ̃) v` (one JVP at θ̃).
pub(crate) fn f_lin_on<T: Real, M: Model<T>>(
    model: &M,
    st: &TrainState<T>,
    x: MatRef<'_, T>,
) -> (Mat<T>, Mat<T>) {
    let v: Vec<T> = st
        .theta
        .iter()
        .zip(&st.theta_tilde)
        .map(|(&a, &b)| a - b)
        .collect();
    let (f0, jv) = model.jvp(&st.theta_tilde, x, &v);
    let flin = &f0 + &jv;
    (jv, flin)
}

/// The first entry of `v` that is not finite, as `f64`.
pub(crate) fn first_non_finite<T: Real>(v: &[T]) -> Option<f64> {
    v.iter().find(|x| !x.is_finite()).map(|x| x.to_f64())
}

/// `θ ← θ + δ` unless some `θᵢ + δᵢ` is not finite (then θ is unchanged and that value is
/// returned). The check computes the same sums as the update, so it is exact.
fn apply_checked<T: Real>(theta: &mut [T], delta: &[T]) -> Option<f64> {
    if let Some((&t, &d)) = theta
        .iter()
        .zip(delta)
        .find(|&(&t, &d)| !(t + d).is_finite())
    {
        return Some((t + d).to_f64());
    }
    for (t, d) in theta.iter_mut().zip(delta) {
        *t += *d;
    }
    None
}

/// The dual cross-entropy GGN step with `H, g` at the linearised outputs `flin`:
/// `(HΘ + NλI) α = p − y`, `δ = −J(θ̃)ᵀ α`.
fn linearised_ce_step<T: Real, M: Model<T>>(
    model: &M,
    theta_tilde: &[T],
    x: MatRef<'_, T>,
    y: MatRef<'_, T>,
    flin: MatRef<'_, T>,
    lambda: f64,
) -> Result<Vec<T>> {
    let (n, c) = (x.nrows(), model.n_outputs());
    let m = n * c;
    let mut a = ntk(model, theta_tilde, x)?;
    let mut g = vec![T::zero_impl(); m];
    let mut p = vec![0.0; c];
    for s in 0..n {
        let mx = (0..c).fold(f64::NEG_INFINITY, |a, k| a.max(flin[(s, k)].to_f64()));
        let mut z = 0.0;
        for (k, pk) in p.iter_mut().enumerate() {
            *pk = (flin[(s, k)].to_f64() - mx).exp();
            z += *pk;
        }
        p.iter_mut().for_each(|pk| *pk /= z);
        for k in 0..c {
            g[s * c + k] = T::from_f64(p[k] - y[(s, k)].to_f64());
        }
        // rows s·C..s·C+C of HΘ = H_s · Θ[block rows], H_s = diag(p) − p pᵀ
        let block: Mat<T> = a.as_ref().subrows(s * c, c).to_owned();
        for col in 0..m {
            let pb: f64 = (0..c).map(|l| p[l] * block[(l, col)].to_f64()).sum();
            for k in 0..c {
                a[(s * c + k, col)] = T::from_f64(p[k] * (block[(k, col)].to_f64() - pb));
            }
        }
    }
    let shift = T::from_f64(n as f64 * lambda);
    for i in 0..m {
        a[(i, i)] += shift;
    }
    let rhs = Mat::from_fn(m, 1, |i, _| g[i]);
    let alpha = a.partial_piv_lu().solve(&rhs);
    let alpha = Mat::from_fn(n, c, |s, k| alpha[(s * c + k, 0)]);
    Ok(neg_jt(model, theta_tilde, x, alpha.as_ref()))
}

/// The spectral filter of `K` gradient-descent steps of size `η` on the linearised mean MSE
/// over `N` rows: `φ_K(s) = (1 − (1 − ηs/N)^K)/s` (limit `ηK/N` as `s → 0`), so that
/// `δ_K = −Jᵀ U diag(φ_K(s)) Uᵀ r` for `Θ = U diag(s) Uᵀ` ([closed
/// form](crate::maths#k-gradient-steps-in-closed-form)). Damped Gauss-Newton has
/// the filter `1/(s + Nλ)`; both agree for small and large `s` when `λ = 1/(ηK)`.
pub fn phi_k(s: f64, lr: f64, n: f64, k: f64) -> f64 {
    let a = lr * s / n;
    if a.abs() < 1e-12 {
        return lr * k / n;
    }
    let one_minus_pow = if a < 1.0 {
        -((k * (-a).ln_1p()).exp_m1())
    } else {
        1.0 - (1.0 - a).powf(k)
    };
    one_minus_pow / s
}

/// `K` full-batch GD steps of size `lr` on the linearised mean MSE at `θ̃ = θ`, in closed form
/// (`δ_K = −Jᵀ U diag(φ_K(s)) Uᵀ r`), on the subset of the step. Advances the step counter by
/// `K` (or by what remains of the run). Returns `None` when the step was taken, else the
/// first non-finite quantity and its value (θ and the step counter then unchanged).
pub(crate) fn spectral_inner_step<T: Real, M: Model<T>>(
    model: &M,
    st: &mut TrainState<T>,
    cfg: &TrainConfig,
    train: DataRef<'_, T>,
    lr: f64,
) -> Result<Option<(&'static str, f64)>> {
    let remaining = cfg.steps - st.step;
    let k = match cfg.period {
        Period::Steps(k) => k.min(remaining),
        Period::Never => remaining,
    };
    // Spectral rounds always start at the linearisation point.
    if st.theta != st.theta_tilde {
        st.theta_tilde.copy_from_slice(&st.theta);
        st.relinearisations += 1;
        st.since_relin = 0;
    }
    let rows = subset_rows(train.len(), cfg.gn_batch, cfg.seed, st.step);
    let (x, y) = (gather(train.x, &rows), gather(train.y, &rows));
    let delta = gradient_descent_closed_form(model, &st.theta_tilde, x.as_ref(), y.as_ref(), lr, k);
    if let Some(v) = first_non_finite(&delta) {
        return Ok(Some(("spectral step δ", v)));
    }
    if let Some(v) = apply_checked(&mut st.theta, &delta) {
        return Ok(Some(("θ after the update", v)));
    }
    st.step += k;
    st.since_relin += k;
    Ok(None)
}
