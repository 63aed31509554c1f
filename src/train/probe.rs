//! NTKs for the trainer: on the probe subset (kernel distances) and inside the linearised
//! cross-entropy Gauss-Newton step. Structured (no `J` in memory) for [`crate::Mlp`], explicit
//! `J Jᵀ` for other models ([`crate::ntk::Method::Auto`]).

use crate::memory::{default_budget, dense_bytes};
use crate::ntk::{self, Method};
use crate::{Error, Model, Real, Result};
use faer::{Mat, MatRef};

/// The empirical NTK `Θ = J Jᵀ` at `θ` on `x`, refusing plans over the memory budget (the
/// kernel itself, and for non-MLP models the explicit Jacobian behind it).
pub(crate) fn ntk_checked<T: Real, M: Model<T>>(
    model: &M,
    theta: &[T],
    x: MatRef<'_, T>,
) -> Result<Mat<T>> {
    let m = x.nrows() * model.n_outputs();
    let need = 3 * dense_bytes::<T>(m, m);
    let budget = default_budget();
    if need > budget {
        return Err(Error::OutOfMemory {
            what: format!("the {m}×{m} NTK of a {}-row solve", x.nrows()),
            needed: need,
            budget,
            hint: "lower --gn-batch (rows per solve) or --probe".into(),
        });
    }
    Ok(probe_ntk(model, theta, x))
}

/// The empirical NTK (`(N·C) × (N·C)`) at `θ` on the probe rows `x`.
pub(crate) fn probe_ntk<T: Real, M: Model<T>>(model: &M, theta: &[T], x: MatRef<'_, T>) -> Mat<T> {
    ntk::empirical(model, theta, x, Method::Auto)
}

/// `d(A, B) = 1 − ⟨A, B⟩_F / (‖A‖_F ‖B‖_F)`.
pub(crate) fn kernel_distance<T: Real>(a: MatRef<'_, T>, b: MatRef<'_, T>) -> f64 {
    ntk::kernel_distance(a, b)
}
