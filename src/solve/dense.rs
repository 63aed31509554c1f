//! Dense damped solves with automatic damping increase when a factorisation fails.

use crate::Real;
use crate::linalg::{add_diagonal, cholesky_in_place, cholesky_solve_in_place};
use faer::{Mat, MatRef};

/// Result of a damped SPD solve.
pub(crate) struct DampedSolve<T> {
    pub x: Mat<T>,
    /// The diagonal shift actually used (`N λ_used`).
    pub shift: f64,
    pub retries: usize,
}

/// Largest number of times the shift is raised before giving up.
pub(crate) const MAX_DAMPING_RETRIES: usize = 12;

/// Solves `(A + shift·I) X = B` for symmetric PSD `A` given by its lower triangle, with a
/// Cholesky factorisation; if it fails the shift is raised (×10, at least
/// `√ε · mean diag(A)`) and the factorisation retried. `None` if it never succeeds or the
/// result is not finite.
pub(crate) fn damped_cholesky_solve<T: Real>(
    a_lower: MatRef<'_, T>,
    shift: f64,
    b: MatRef<'_, T>,
) -> Option<DampedSolve<T>> {
    let n = a_lower.nrows();
    let mean_diag = (0..n).map(|i| a_lower[(i, i)].to_f64().abs()).sum::<f64>() / n.max(1) as f64;
    let floor = T::EPSILON.to_f64().sqrt() * mean_diag.max(f64::MIN_POSITIVE);
    let mut shift = shift;
    for retries in 0..=MAX_DAMPING_RETRIES {
        let mut f = a_lower.to_owned();
        add_diagonal(f.as_mut(), T::from_f64(shift));
        if cholesky_in_place(f.as_mut()).is_ok() {
            let mut x = b.to_owned();
            cholesky_solve_in_place(f.as_ref(), x.as_mut());
            if all_finite(x.as_ref()) {
                return Some(DampedSolve { x, shift, retries });
            }
        }
        shift = (shift * 10.0).max(floor);
    }
    None
}

/// Solves `(A + shift·I) X = B` for a general square `A` with partial-pivoting LU, raising
/// the shift like [`damped_cholesky_solve`] if the result is not finite.
pub(crate) fn damped_lu_solve<T: Real>(
    a: MatRef<'_, T>,
    shift: f64,
    b: MatRef<'_, T>,
) -> Option<DampedSolve<T>> {
    use faer::linalg::solvers::Solve;
    let n = a.nrows();
    let mean_diag = (0..n).map(|i| a[(i, i)].to_f64().abs()).sum::<f64>() / n.max(1) as f64;
    let floor = T::EPSILON.to_f64().sqrt() * mean_diag.max(f64::MIN_POSITIVE);
    let mut shift = shift;
    for retries in 0..=MAX_DAMPING_RETRIES {
        let mut f = a.to_owned();
        add_diagonal(f.as_mut(), T::from_f64(shift));
        let lu = f.partial_piv_lu();
        let x = lu.solve(b);
        if all_finite(x.as_ref()) {
            return Some(DampedSolve { x, shift, retries });
        }
        shift = (shift * 10.0).max(floor);
    }
    None
}

pub(crate) fn all_finite<T: Real>(m: MatRef<'_, T>) -> bool {
    (0..m.ncols()).all(|j| (0..m.nrows()).all(|i| m[(i, j)].is_finite()))
}
