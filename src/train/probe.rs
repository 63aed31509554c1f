//! Probe-subset NTKs and the kernel distance used by the trainer's evaluations.
//!
//! TEMPORARY: `itlin::ntk` (lead engineer, on main) will provide the structured NTK and
//! `kernel_distance`; until then this computes `Θ = J Jᵀ` from the explicit Jacobian.

use crate::{Error, Model, Real, Result};

/// Memory budget of the explicit Jacobian behind one NTK (bytes).
const J_BUDGET: u64 = 2 << 30;

/// The empirical NTK `Θ = J Jᵀ` at `θ` on `x`, refusing plans over the memory budget.
pub(crate) fn ntk_checked<T: Real, M: Model<T>>(
    model: &M,
    theta: &[T],
    x: MatRef<'_, T>,
) -> Result<Mat<T>> {
    let need = (x.nrows() * model.n_outputs() * model.n_params() * size_of::<T>()) as u64;
    if need > J_BUDGET {
        return Err(Error::OutOfMemory {
            what: format!(
                "the NTK of a {}-row solve ({} outputs, {} parameters)",
                x.nrows(),
                model.n_outputs(),
                model.n_params()
            ),
            needed: need,
            budget: J_BUDGET,
            hint: "lower --gn-batch (rows per solve) or the widths of --arch".into(),
        });
    }
    Ok(probe_ntk(model, theta, x))
}
use faer::{Mat, MatRef};

/// The empirical NTK `Θ(X) = J Jᵀ` (`(N·C) × (N·C)`) at `θ` on the probe rows `x`.
pub(crate) fn probe_ntk<T: Real, M: Model<T>>(model: &M, theta: &[T], x: MatRef<'_, T>) -> Mat<T> {
    let j = model.jacobian(theta, x);
    let jr = j.as_ref();
    jr * jr.transpose()
}

/// `d(A, B) = 1 − ⟨A, B⟩_F / (‖A‖_F ‖B‖_F)` (accumulated in `f64`; 0 for two zero kernels).
///
/// # Panics
/// If the shapes differ.
#[track_caller]
pub(crate) fn kernel_distance<T: Real>(a: MatRef<'_, T>, b: MatRef<'_, T>) -> f64 {
    assert!(
        a.nrows() == b.nrows() && a.ncols() == b.ncols(),
        "kernel_distance: {}×{} and {}×{}",
        a.nrows(),
        a.ncols(),
        b.nrows(),
        b.ncols()
    );
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            let (x, y) = (a[(i, j)].to_f64(), b[(i, j)].to_f64());
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
    }
    if aa == 0.0 || bb == 0.0 {
        return if aa == bb { 0.0 } else { 1.0 };
    }
    1.0 - ab / (aa.sqrt() * bb.sqrt())
}
