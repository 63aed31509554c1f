//! Thin helpers over faer for the dense symmetric work of the solvers: Gram matrices
//! (lower half only, then mirrored), in-place Cholesky with a pivot report, and solves.

use crate::Real;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatMut, MatRef, Par};

pub(crate) fn par() -> Par {
    faer::get_global_parallelism()
}

/// `dst ← α A Aᵀ + β dst` on the lower triangle (diagonal included); the upper triangle is
/// not touched. Half the flops of a full product.
///
/// # Panics
/// If `dst` is not `m × m` for `A` of `m` rows.
#[track_caller]
pub fn gram_lower<T: Real>(dst: MatMut<'_, T>, a: MatRef<'_, T>, alpha: T, accumulate: bool) {
    assert!(
        dst.nrows() == a.nrows() && dst.ncols() == a.nrows(),
        "gram_lower: dst is {}×{}, A has {} rows",
        dst.nrows(),
        dst.ncols(),
        a.nrows()
    );
    triangular::matmul(
        dst,
        BlockStructure::TriangularLower,
        if accumulate {
            Accum::Add
        } else {
            Accum::Replace
        },
        a,
        BlockStructure::Rectangular,
        a.transpose(),
        BlockStructure::Rectangular,
        alpha,
        par(),
    );
}

/// Copies the strict lower triangle onto the upper one.
pub fn mirror_lower<T: Real>(mut m: MatMut<'_, T>) {
    let n = m.nrows();
    for j in 0..n {
        for i in 0..j {
            m[(i, j)] = m[(j, i)];
        }
    }
}

/// Adds `shift` to the diagonal.
pub fn add_diagonal<T: Real>(mut m: MatMut<'_, T>, shift: T) {
    for i in 0..m.nrows().min(m.ncols()) {
        m[(i, i)] += shift;
    }
}

/// In-place Cholesky `A = L Lᵀ` of the lower triangle. On failure returns the index of the
/// first non-positive pivot (the matrix is then partially overwritten).
pub fn cholesky_in_place<T: Real>(a: MatMut<'_, T>) -> Result<(), usize> {
    let n = a.nrows();
    let par = par();
    let mut mem = MemBuffer::new(llt::factor::cholesky_in_place_scratch::<T>(
        n,
        par,
        Default::default(),
    ));
    let stack = MemStack::new(&mut mem);
    match llt::factor::cholesky_in_place(a, Default::default(), par, stack, Default::default()) {
        Ok(_) => Ok(()),
        Err(llt::factor::LltError::NonPositivePivot { index }) => Err(index),
    }
}

/// Solves `L Lᵀ X = B` in place given the factor from [`cholesky_in_place`].
pub fn cholesky_solve_in_place<T: Real>(l: MatRef<'_, T>, rhs: MatMut<'_, T>) {
    let par = par();
    let mut mem = MemBuffer::new(llt::solve::solve_in_place_scratch::<T>(
        l.nrows(),
        rhs.ncols(),
        par,
    ));
    let stack = MemStack::new(&mut mem);
    llt::solve::solve_in_place_with_conj(l, faer::Conj::No, rhs, par, stack);
}

/// A column vector from a slice.
pub fn col_from<T: Real>(v: &[T]) -> Mat<T> {
    Mat::from_fn(v.len(), 1, |i, _| v[i])
}

/// Frobenius inner product and norms in f64: `(⟨A,B⟩, ‖A‖, ‖B‖)`.
pub fn frobenius<T: Real>(a: MatRef<'_, T>, b: MatRef<'_, T>) -> (f64, f64, f64) {
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            let (x, y) = (a[(i, j)].to_f64(), b[(i, j)].to_f64());
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
    }
    (ab, aa.sqrt(), bb.sqrt())
}
