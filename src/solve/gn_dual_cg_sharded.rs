//! The damped Gauss-Newton step (MSE) by preconditioned CG on the dual system, over
//! training rows sharded across ranks ([`crate::dist`]).
//!
//! # The system
//! `(Θ + μI) α = g`, `δ = −Jᵀα`, `μ = Nλ`, with `Θ = J Jᵀ`. Rank `r` holds its rows `X_r`, the
//! matching rows `α_r`, `g_r` of the dual vectors and `J_r` implicitly. A kernel-vector
//! product is
//!
//! ```text
//! (Θ v)_r = J_r (Σ_s J_sᵀ v_s)
//! ```
//!
//! — one local VJP, **one all-reduce of a `P`-vector**, one local JVP. Inner products are
//! local dots summed across ranks (scalar all-reduces), so every rank takes the same CG
//! decisions; `δ = −Σ_r J_rᵀ α_r` is one more `P`-vector all-reduce.
//!
//! # The preconditioner
//! A Nyström preconditioner from `s = ⌈M/C⌉` landmark samples `S` (drawn uniformly from all
//! `N` rows with a seeded stream, the same on every rank): with `K_nS = Θ[:, S]` and
//! `K_SS = Θ[S, S]`,
//!
//! ```text
//! P = μI + K_nS K_SS⁻¹ K_Sn,   P⁻¹ = μ⁻¹ (I − K_nS A⁻¹ K_Sn),   A = μ K_SS + K_Sn K_nS
//! ```
//!
//! (Woodbury; `0 ⪯ K_nS K_SS⁻¹ K_Sn ⪯ Θ`, so `P ⪯ Θ + μI`). The landmark inputs are shared by
//! one sum (each rank contributes the rows it holds), each rank computes its block
//! `K_rS = Θ(X_r, X_S)`, `A = μ K_SS + Σ_r K_rSᵀ K_rS` is one all-reduce of an `M × M`
//! matrix, and rank 0 factorises `A` (Cholesky, f64; a jitter of `M·ε·max_i A_ii` on the
//! diagonal) and broadcasts the factor. Applying `P⁻¹` costs one all-reduce of an
//! `M`-vector (`Σ_r K_rSᵀ r_r`). It holds `(n_r·C) × M` numbers per rank and one `M × M`
//! factor, never `(N·C)²`.

use super::cg::{CgConfig, CgOutcome, Precond, preconditioned_cg_with};
use super::gn_dual_cg::KernelOp;
use crate::dist::{Comm, Shard, sum, sum_scalar};
use crate::kernels::cpu::CpuKernels;
use crate::linalg::{cholesky_in_place, cholesky_solve_in_place};
use crate::{Error, Model, Real, Result};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;

/// The landmark factor of the sharded Nyström preconditioner on one rank: `K_rS` (f64) and
/// the Cholesky factor of `A = μ K_SS + K_Sn K_nS` (see the module docs).
struct Landmarks {
    k_rs: Mat<f64>,
    chol: Mat<f64>,
}

/// Settings of [`dual_cg_step_sharded`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShardedCg {
    /// The rank `M` of the landmark preconditioner (`⌈M/C⌉` samples; 0: none).
    pub landmarks: usize,
    /// The seed of the landmark draw.
    pub seed: u64,
    /// `Some(tol)`: stop at `‖g − (Θ+μI)α‖ ≤ tol ‖g‖`; `None`: at a backward error of `8ε`
    /// (as the one-process CG forms).
    pub rtol: Option<f64>,
    /// CG iterations at most (over all restarts).
    pub max_iterations: usize,
}

impl Default for ShardedCg {
    fn default() -> Self {
        Self {
            landmarks: 0,
            seed: 0,
            rtol: None,
            max_iterations: 2000,
        }
    }
}

/// What the sharded dual CG step reports.
#[derive(Clone, Debug)]
pub struct ShardedCgReport {
    /// The CG outcome (iterations, residual and backward error of the dual system, over all
    /// ranks).
    pub outcome: CgOutcome,
    /// The rank `M` of the preconditioner actually used (landmark samples × C; 0: none).
    pub preconditioner_rank: usize,
    /// Seconds building the preconditioner (landmarks, kernel columns, `A`, its factor).
    pub seconds_precond: f64,
    /// Seconds in CG.
    pub seconds_solve: f64,
}

/// The damped dual Gauss-Newton step for MSE over sharded rows (see the module docs):
/// returns `δ = −Jᵀα` with `(Θ + μI) α = g` (the same `δ` on every rank) and the report.
///
/// `x` holds this rank's rows (`shard`), `g` its rows of the dual right-hand side
/// (`shard.len·C`, sample-major; for MSE the residual `g = r = f − y`, so that `δ` minimises
/// `½‖r + Jδ‖² + ½μ‖δ‖²`), `shift = μ = Nλ > 0`, `opts` the preconditioner's rank and seed
/// and the stopping rule. Every rank must call it with the same `θ`, `shift` and `opts`. With one
/// rank ([`crate::dist::Solo`], `shard` the whole set) it is a one-process matrix-free step.
///
/// # Errors
/// [`Error::Comm`] when a collective fails; [`Error::Config`] if `shift ≤ 0` or the sizes
/// do not fit.
#[allow(clippy::too_many_arguments)]
pub fn dual_cg_step_sharded<T: Real, M: Model<T> + ?Sized>(
    comm: &dyn Comm,
    model: &M,
    theta: &[T],
    x: MatRef<'_, T>,
    shard: Shard,
    g: &[T],
    shift: f64,
    opts: &ShardedCg,
) -> Result<(Vec<T>, ShardedCgReport)> {
    let c = model.n_outputs();
    if !(shift > 0.0 && shift.is_finite()) {
        return Err(Error::config(format!(
            "the sharded dual CG step needs a positive damping (μ = Nλ = {shift})"
        )));
    }
    if x.nrows() != shard.len || g.len() != shard.len * c || theta.len() != model.n_params() {
        return Err(Error::config(format!(
            "sharded dual CG: {} rows, {} right-hand-side entries and θ of {} for a shard of {} rows, {c} outputs and {} parameters",
            x.nrows(),
            g.len(),
            theta.len(),
            shard.len,
            model.n_params()
        )));
    }
    let t = std::time::Instant::now();
    let lm = if opts.landmarks > 0 {
        landmarks(
            comm,
            model,
            theta,
            x,
            shard,
            shift,
            opts.landmarks,
            opts.seed,
        )?
    } else {
        None
    };
    let seconds_precond = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();

    // The first collective error; the closures report NaN after it, which ends CG.
    let failed: RefCell<Option<Error>> = RefCell::new(None);
    let fail = |e: Error| {
        failed.borrow_mut().get_or_insert(e);
    };
    let dot = |a: &[f64], b: &[f64]| -> f64 {
        if failed.borrow().is_some() {
            return f64::NAN;
        }
        sum_scalar(comm, f64::dot(a, b)).unwrap_or_else(|e| {
            fail(e);
            f64::NAN
        })
    };
    let mut kop = KernelOp::new(model, theta, x);
    let shift_t = T::from_f64(shift);
    let op = |v: &[T], out: &mut [T]| {
        kop.jt(v);
        if failed.borrow().is_none()
            && let Err(e) = sum(comm, &mut kop.grad)
        {
            fail(e);
        }
        if failed.borrow().is_some() {
            out.fill(T::from_f64(f64::NAN));
            return;
        }
        kop.j_grad(out);
        T::axpy(shift_t, v, out);
    };
    let m = lm.as_ref().map_or(0, |l| l.chol.nrows());
    let scratch = RefCell::new((vec![0.0; m], Mat::<f64>::zeros(m, 1)));
    let pre_fn = |r: &[f64], z: &mut [f64]| {
        let lm = lm.as_ref().expect("only used with landmarks");
        let (w, y) = &mut *scratch.borrow_mut();
        // w = Σ_r K_rSᵀ r_r
        let rv = MatRef::from_column_major_slice(r, r.len(), 1);
        let mut wm = faer::MatMut::from_column_major_slice_mut(w, m, 1);
        matmul(
            wm.as_mut(),
            Accum::Replace,
            lm.k_rs.transpose(),
            rv,
            1.0,
            Par::Seq,
        );
        if failed.borrow().is_none()
            && let Err(e) = comm.sum_f64(w)
        {
            fail(e);
        }
        if failed.borrow().is_some() {
            z.fill(f64::NAN);
            return;
        }
        // y = A⁻¹ w; z = (r − K_rS y) / μ
        y.col_mut(0)
            .iter_mut()
            .zip(w.iter())
            .for_each(|(a, &b)| *a = b);
        cholesky_solve_in_place(lm.chol.as_ref(), y.as_mut());
        z.copy_from_slice(r);
        let mut zm = faer::MatMut::from_column_major_slice_mut(z, r.len(), 1);
        matmul(
            zm.as_mut(),
            Accum::Add,
            lm.k_rs.as_ref(),
            y.as_ref(),
            -1.0,
            Par::Seq,
        );
        z.iter_mut().for_each(|v| *v /= shift);
    };
    let pre = if lm.is_some() {
        Precond::Apply(&pre_fn)
    } else {
        Precond::Identity
    };
    let cg_cfg = CgConfig {
        rtol: opts.rtol,
        max_iterations: opts.max_iterations,
        progress_tol: None,
        preconditioner: super::cg::Preconditioner::None,
    };
    let (alpha, outcome, _) = preconditioned_cg_with(op, g, &pre, shift, None, &cg_cfg, &dot);
    if let Some(e) = failed.into_inner() {
        return Err(e);
    }
    // δ = −Σ_r J_rᵀ α_r
    kop.jt(&alpha);
    sum(comm, &mut kop.grad)?;
    let delta = kop.grad.iter().map(|&v| -v).collect();
    Ok((
        delta,
        ShardedCgReport {
            outcome,
            preconditioner_rank: m,
            seconds_precond,
            seconds_solve: t.elapsed().as_secs_f64(),
        },
    ))
}

/// Builds this rank's part of the landmark preconditioner (module docs), or `None` when
/// `A` cannot be factorised even with its jitter (then CG runs unpreconditioned; the same
/// on every rank, since rank 0 decides).
#[allow(clippy::too_many_arguments)]
fn landmarks<T: Real, M: Model<T> + ?Sized>(
    comm: &dyn Comm,
    model: &M,
    theta: &[T],
    x: MatRef<'_, T>,
    shard: Shard,
    shift: f64,
    rank: usize,
    seed: u64,
) -> Result<Option<Landmarks>> {
    let (c, d) = (model.n_outputs(), x.ncols());
    let s = rank.div_ceil(c).min(shard.total);
    let mut picked = sample(&mut ChaCha8Rng::seed_from_u64(seed), shard.total, s).into_vec();
    picked.sort_unstable();
    // The landmark inputs on every rank: each contributes the rows it holds.
    let nr = x.nrows();
    let mut z = Mat::<T>::zeros(nr + s, d);
    z.as_mut().subrows_mut(0, nr).copy_from(x);
    let mut xs = vec![T::zero_impl(); s * d];
    for (j, &i) in picked.iter().enumerate() {
        if let Some(l) = shard.local(i) {
            for k in 0..d {
                xs[j * d + k] = x[(l, k)];
            }
        }
    }
    sum(comm, &mut xs)?;
    for j in 0..s {
        for k in 0..d {
            z[(nr + j, k)] = xs[j * d + k];
        }
    }
    // Θ([X_r; X_S], X_S): K_rS on top, K_SS below.
    let cols: Vec<usize> = (nr..nr + s).collect();
    let kz = model.ntk_columns(theta, z.as_ref(), &cols);
    let m = s * c;
    let k_rs = Mat::<f64>::from_fn(nr * c, m, |i, j| kz[(i, j)].to_f64());
    // A = μ K_SS (rank 0's) + Σ_r K_rSᵀ K_rS
    let mut a = Mat::<f64>::zeros(m, m);
    matmul(
        a.as_mut(),
        Accum::Replace,
        k_rs.transpose(),
        k_rs.as_ref(),
        1.0,
        crate::linalg::par(),
    );
    if comm.rank() == 0 {
        for i in 0..m {
            for j in 0..m {
                a[(i, j)] += shift * kz[(nr * c + i, j)].to_f64();
            }
        }
    }
    let mut flat: Vec<f64> = (0..m * m).map(|k| a[(k % m, k / m)]).collect();
    comm.sum_f64(&mut flat)?;
    // Rank 0 factorises and broadcasts (an empty message: no factor).
    let mut bytes = Vec::new();
    if comm.rank() == 0 {
        let mut a = Mat::<f64>::from_fn(m, m, |i, j| 0.5 * (flat[i + j * m] + flat[j + i * m]));
        let top = (0..m).map(|i| a[(i, i)]).fold(0.0, f64::max);
        let jitter = m as f64 * f64::EPSILON * top;
        (0..m).for_each(|i| a[(i, i)] += jitter);
        if top > 0.0 && cholesky_in_place(a.as_mut()).is_ok() {
            bytes = (0..m * m)
                .flat_map(|k| a[(k % m, k / m)].to_le_bytes())
                .collect();
        }
    }
    comm.broadcast(0, &mut bytes)?;
    if bytes.len() != m * m * 8 {
        return Ok(None);
    }
    let chol = Mat::<f64>::from_fn(m, m, |i, j| {
        let k = (i + j * m) * 8;
        f64::from_le_bytes(bytes[k..k + 8].try_into().expect("8 bytes"))
    });
    Ok(Some(Landmarks { k_rs, chol }))
}
