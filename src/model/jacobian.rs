//! The explicit Jacobian `J` (`(N·C) × P`), stored row-major so that one output's row is
//! contiguous: the Jacobian assembly writes rows, and the fused Gauss-Newton product
//! `Jᵀ(J v)` reads each row once.

use crate::Real;
use crate::kernels::cpu;
use faer::{Mat, MatMut, MatRef};
use std::ops::{Index, IndexMut};

/// An explicit Jacobian, `nrows × ncols`, row-major.
///
/// `as_ref()` gives a faer [`MatRef`] view (row stride `ncols`, column stride 1), so `J` works
/// with every faer routine; [`mul_vec`](Jacobian::mul_vec), [`tmul_vec`](Jacobian::tmul_vec)
/// and [`gn_mul_vec`](Jacobian::gn_mul_vec) use the crate's SIMD/parallel kernels.
#[derive(Clone, Debug, PartialEq)]
pub struct Jacobian<T> {
    data: Vec<T>,
    nrows: usize,
    ncols: usize,
}

impl<T: Real> Jacobian<T> {
    /// A zero matrix of the given shape.
    pub fn zeros(nrows: usize, ncols: usize) -> Self {
        Self {
            data: cpu::zeroed_vec(nrows * ncols),
            nrows,
            ncols,
        }
    }

    /// Wraps row-major data.
    ///
    /// # Panics
    /// If `data.len() != nrows·ncols`.
    #[track_caller]
    pub fn from_row_major(data: Vec<T>, nrows: usize, ncols: usize) -> Self {
        assert_eq!(
            data.len(),
            nrows * ncols,
            "Jacobian: {} entries for a {nrows}×{ncols} matrix",
            data.len()
        );
        Self { data, nrows, ncols }
    }

    /// Number of rows `N·C`.
    pub fn nrows(&self) -> usize {
        self.nrows
    }
    /// Number of columns `P`.
    pub fn ncols(&self) -> usize {
        self.ncols
    }
    /// Size in bytes of the stored entries.
    pub fn bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<T>()
    }
    /// The entries, row-major.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }
    /// The entries, row-major, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }
    /// Row `i` (the gradient of output `i` with respect to θ).
    pub fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.ncols..(i + 1) * self.ncols]
    }
    /// Row `i`, mutable.
    pub fn row_mut(&mut self, i: usize) -> &mut [T] {
        &mut self.data[i * self.ncols..(i + 1) * self.ncols]
    }
    /// A faer view of `J`.
    pub fn as_ref(&self) -> MatRef<'_, T> {
        MatRef::from_row_major_slice(&self.data, self.nrows, self.ncols)
    }
    /// A mutable faer view of `J`.
    pub fn as_mut(&mut self) -> MatMut<'_, T> {
        MatMut::from_row_major_slice_mut(&mut self.data, self.nrows, self.ncols)
    }
    /// The entries, row-major, without a copy (for handing `J` to another owner, such as a
    /// NumPy array).
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }
    /// A column-major copy.
    pub fn to_mat(&self) -> Mat<T> {
        self.as_ref().to_owned()
    }

    /// `J v`.
    ///
    /// # Panics
    /// If `v.len() != ncols`.
    #[track_caller]
    pub fn mul_vec(&self, v: &[T]) -> Vec<T> {
        let mut out = vec![T::zero_impl(); self.nrows];
        cpu::j_v(&self.data, self.nrows, self.ncols, v, &mut out);
        out
    }
    /// `Jᵀ u`.
    ///
    /// # Panics
    /// If `u.len() != nrows`.
    #[track_caller]
    pub fn tmul_vec(&self, u: &[T]) -> Vec<T> {
        let mut out = vec![T::zero_impl(); self.ncols];
        cpu::jt_u(&self.data, self.nrows, self.ncols, u, &mut out);
        out
    }
    /// The Gauss-Newton product `Jᵀ (J v)`, reading `J` once.
    ///
    /// # Panics
    /// If `v.len() != ncols`.
    #[track_caller]
    pub fn gn_mul_vec(&self, v: &[T]) -> Vec<T> {
        let mut out = vec![T::zero_impl(); self.ncols];
        cpu::jt_j_v(&self.data, self.nrows, self.ncols, v, &mut out);
        out
    }
}

impl<T> Index<(usize, usize)> for Jacobian<T> {
    type Output = T;
    #[track_caller]
    fn index(&self, (i, j): (usize, usize)) -> &T {
        assert!(
            i < self.nrows && j < self.ncols,
            "Jacobian index ({i}, {j}) out of {}×{}",
            self.nrows,
            self.ncols
        );
        &self.data[i * self.ncols + j]
    }
}

impl<T> IndexMut<(usize, usize)> for Jacobian<T> {
    #[track_caller]
    fn index_mut(&mut self, (i, j): (usize, usize)) -> &mut T {
        assert!(
            i < self.nrows && j < self.ncols,
            "Jacobian index ({i}, {j}) out of {}×{}",
            self.nrows,
            self.ncols
        );
        &mut self.data[i * self.ncols + j]
    }
}
