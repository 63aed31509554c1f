//! The damped Gauss-Newton inner step of a data-parallel run: the rows of each solve are
//! sharded across ranks and the dual system is solved by preconditioned CG over them
//! ([`dual_cg_step_sharded`]).

use super::config::TrainConfig;
use super::inner::{f_lin_on, finish_gn_step, gather, subset_rows};
use super::loss::loss_value;
use super::state::{DataRef, TrainState};
use crate::dist::{Comm, Shard, sum_scalar};
use crate::solve::{ShardedCg, dual_cg_step_sharded};
use crate::{Model, Real, Result};
use faer::{Mat, MatRef};

/// `Σ_r n_r · L_r / Σ_r n_r`: the mean loss over every rank's rows from each rank's mean
/// `L_r` over its `n_r` rows (one reduction).
fn global_loss<T: Real>(
    comm: &dyn Comm,
    loss: super::loss::Loss,
    f: MatRef<'_, T>,
    y: MatRef<'_, T>,
    total: usize,
) -> Result<f64> {
    let local = if f.nrows() > 0 {
        loss_value(loss, f, y) * f.nrows() as f64
    } else {
        0.0
    };
    Ok(sum_scalar(comm, local)? / total as f64)
}

/// One damped Gauss-Newton step on `f_lin` (MSE) over rows sharded across the ranks of
/// `comm`: the same step as the one-process inner step (`(JᵀJ + NλI) δ = −Jᵀ r` with
/// `J = J(θ̃)`, `r = f_lin(θ) − y` on the solve's `N` rows; `θ ← θ + δ`; adaptive: the step is
/// kept only when the linearised loss over the solve's rows does not rise, and `λ` is divided
/// by 3 after a kept step, multiplied by 10 after a rejected one), solved in its dual form by
/// CG with kernel products `J(Σ_r J_rᵀ v_r)` and the landmark preconditioner of the rank of
/// `cfg`'s Nyström preconditioner (none for any other).
///
/// The solve's rows are drawn from all `N` rows as in one process; rank `r` takes those its
/// `shard` holds, which are contiguous among the (sorted) drawn rows. Every rank takes the
/// same step. Returns `None` when the step was taken (or rejected), else the first
/// non-finite quantity and its value (θ unchanged).
///
/// # Errors
/// [`crate::Error::Comm`] from a collective.
pub(crate) fn gn_inner_step_sharded<T: Real, M: Model<T>>(
    comm: &dyn Comm,
    shard: Shard,
    model: &M,
    st: &mut TrainState<T>,
    cfg: &TrainConfig,
    train: DataRef<'_, T>,
    adaptive: bool,
) -> Result<Option<(&'static str, f64)>> {
    let rows = subset_rows(shard.total, cfg.gn_batch, cfg.seed, st.step);
    // this rank's drawn rows: contiguous positions of the sorted draw
    let first = rows.partition_point(|&i| i < shard.offset);
    let local: Vec<usize> = rows[first..]
        .iter()
        .take_while(|&&i| i < shard.offset + shard.len)
        .map(|&i| i - shard.offset)
        .collect();
    let solve_shard = Shard {
        offset: first,
        len: local.len(),
        total: rows.len(),
    };
    let (x, y) = (gather(train.x, &local), gather(train.y, &local));
    let c = model.n_outputs();
    let (_, flin) = f_lin_on(model, st, x.as_ref());
    let before = global_loss(comm, cfg.loss, flin.as_ref(), y.as_ref(), rows.len())?;
    if !before.is_finite() {
        return Ok(Some(("loss of f_lin on the solve's rows", before)));
    }
    // g = r = f_lin(θ) − y, sample-major
    let g: Vec<T> = (0..local.len())
        .flat_map(|i| (0..c).map(move |k| (i, k)))
        .map(|(i, k)| flin[(i, k)] - y[(i, k)])
        .collect();
    let opts = ShardedCg {
        landmarks: cfg.gn_solver.preconditioner.nystrom_rank().unwrap_or(0),
        seed: cfg.seed ^ st.relinearisations.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        ..ShardedCg::default()
    };
    let shift = rows.len() as f64 * st.damping;
    let (delta, _report) = dual_cg_step_sharded(
        comm,
        model,
        &st.theta_tilde,
        x.as_ref(),
        solve_shard,
        &g,
        shift,
        &opts,
    )?;
    finish_gn_step(st, &delta, adaptive, before, |theta_tilde, delta| {
        let (_, jd) = model.jvp(theta_tilde, x.as_ref(), delta);
        let fnew: Mat<T> = &flin + &jd;
        global_loss(comm, cfg.loss, fnew.as_ref(), y.as_ref(), rows.len())
    })
}
