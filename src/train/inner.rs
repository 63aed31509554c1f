//! The second-order inner steps on `f_lin`: damped Gauss-Newton (optionally adaptive, LM) and
//! the spectral closed form of `K` gradient-descent steps, plus row gathering and subset
//! sampling shared with the trainer.

use super::config::{Period, TrainConfig};
use super::loss::{Loss, loss_value};
use super::trainer::{DataRef, TrainState};
use crate::{Error, Model, Real, Result};
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

/// One damped Gauss-Newton step on `f_lin` (dual form):
/// `δ = −Jᵀα`, `(HΘ + NλI) α = g` with `J = J(θ̃)`, `Θ = JJᵀ`, `g = N ∂L/∂f` and `H` the
/// output Hessian (identity for MSE, `diag(p) − ppᵀ` per sample for cross-entropy), both at
/// `f_lin(θ)`. Adaptive: rejects a step that does not lower the linearised subset loss.
/// Returns whether the loss stayed finite.
pub(crate) fn gn_inner_step<T: Real, M: Model<T>>(
    model: &M,
    st: &mut TrainState<T>,
    cfg: &TrainConfig,
    train: DataRef<'_, T>,
    adaptive: bool,
) -> Result<bool> {
    let rows = subset_rows(train.len(), cfg.gn_batch, cfg.seed, st.step);
    let (x, y) = (gather(train.x, &rows), gather(train.y, &rows));
    let (n, c) = (x.nrows(), model.n_outputs());
    let v: Vec<T> = st
        .theta
        .iter()
        .zip(&st.theta_tilde)
        .map(|(&a, &b)| a - b)
        .collect();
    let (f0, jv) = model.jvp(&st.theta_tilde, x.as_ref(), &v);
    let flin = f0 + jv;
    let before = loss_value(cfg.loss, flin.as_ref(), y.as_ref());
    if !before.is_finite() {
        return Ok(false);
    }
    let theta_k = ntk(model, &st.theta_tilde, x.as_ref())?;
    let m = n * c;
    let lambda = st.damping;
    // g (without the 1/N) and H Θ.
    let mut g = vec![T::zero_impl(); m];
    let mut a = theta_k;
    let mut p = vec![0.0; c];
    for s in 0..n {
        match cfg.loss {
            Loss::Mse => {
                for k in 0..c {
                    g[s * c + k] = flin[(s, k)] - y[(s, k)];
                }
            }
            Loss::CrossEntropy => {
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
                // rows s·C..s·C+C of HΘ = H_s · Θ[block rows]
                let block: Mat<T> = a.as_ref().subrows(s * c, c).to_owned();
                for k in 0..c {
                    for col in 0..m {
                        let mut acc = p[k] * block[(k, col)].to_f64();
                        for (l, &pl) in p.iter().enumerate() {
                            acc -= p[k] * pl * block[(l, col)].to_f64();
                        }
                        a[(s * c + k, col)] = T::from_f64(acc);
                    }
                }
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
    let delta = neg_jt(model, &st.theta_tilde, x.as_ref(), alpha.as_ref());
    if delta.iter().any(|d| !d.is_finite()) {
        return Ok(false);
    }
    let accept = if adaptive {
        let (_, jd) = model.jvp(&st.theta_tilde, x.as_ref(), &delta);
        let fnew = &flin + &jd;
        let after = loss_value(cfg.loss, fnew.as_ref(), y.as_ref());
        after <= before
    } else {
        true
    };
    if accept {
        for (t, d) in st.theta.iter_mut().zip(&delta) {
            *t += *d;
        }
        if adaptive {
            st.damping = (st.damping / 3.0).max(1e-12);
        }
    } else {
        st.rejected += 1;
        st.damping = (st.damping * 10.0).min(1e12);
    }
    Ok(true)
}

/// The spectral filter of `K` gradient-descent steps of size `η` on the linearised mean MSE
/// over `N` rows: `φ_K(s) = (1 − (1 − ηs/N)^K)/s` (limit `ηK/N` as `s → 0`), so that
/// `δ_K = −Jᵀ U diag(φ_K(s)) Uᵀ r` for `Θ = U diag(s) Uᵀ` (DESIGN §1). Damped Gauss-Newton has
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
/// `K` (or by what remains of the run). Returns whether `δ` is finite.
pub(crate) fn spectral_inner_step<T: Real, M: Model<T>>(
    model: &M,
    st: &mut TrainState<T>,
    cfg: &TrainConfig,
    train: DataRef<'_, T>,
    lr: f64,
) -> Result<bool> {
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
    let delta =
        gradient_descent_closed_form_local(model, &st.theta_tilde, x.as_ref(), y.as_ref(), lr, k)?;
    if delta.iter().any(|d| !d.is_finite()) {
        return Ok(false);
    }
    for (t, d) in st.theta.iter_mut().zip(&delta) {
        *t += *d;
    }
    st.step += k;
    st.since_relin += k;
    Ok(true)
}

/// TEMPORARY local twin of `itlin::solve::gradient_descent_closed_form` (explicit J).
fn gradient_descent_closed_form_local<T: Real, M: Model<T>>(
    model: &M,
    theta: &[T],
    x: MatRef<'_, T>,
    y: MatRef<'_, T>,
    lr: f64,
    k: u64,
) -> Result<Vec<T>> {
    let (n, c) = (x.nrows(), model.n_outputs());
    let f = model.forward(theta, x);
    let r: Vec<T> = (0..n * c)
        .map(|i| f[(i / c, i % c)] - y[(i / c, i % c)])
        .collect();
    let kmat = ntk(model, theta, x)?;
    let eig = kmat
        .self_adjoint_eigen(faer::Side::Lower)
        .map_err(|e| Error::data(format!("eigendecomposition of the NTK failed: {e:?}")))?;
    let u = eig.U();
    let s = eig.S();
    let rm = Mat::from_fn(n * c, 1, |i, _| r[i]);
    let mut ur = u.transpose() * &rm;
    for i in 0..n * c {
        let si = s[i].to_f64().max(0.0);
        ur[(i, 0)] *= T::from_f64(phi_k(si, lr, n as f64, k as f64));
    }
    let alpha = u * &ur;
    let alpha = Mat::from_fn(n, c, |s, k| alpha[(s * c + k, 0)]);
    Ok(neg_jt(model, theta, x, alpha.as_ref()))
}
