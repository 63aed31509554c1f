//! The host first-order step's batch: row indices, and the rows of `X` and `Y` gathered into
//! reused buffers. A column-major `X` is first copied row-major once per fit, so that a
//! gather reads `B` contiguous rows instead of `B·d` scattered entries (one cache line per
//! entry for a column-major `X`).

use super::state::DataRef;
use crate::Real;
use faer::{Mat, MatRef};

/// Gathered mini-batch buffers of the host first-order step.
#[derive(Debug)]
pub(crate) struct HostBatch<T> {
    /// The training set's `X` row-major (`N × d`), or empty when `X` itself has unit
    /// column stride (rows contiguous).
    x_rows: Vec<T>,
    /// Row indices of the current batch.
    pub rows: Vec<usize>,
    /// `X_b` (`B × d`, column-major as [`Mat`] is).
    pub xb: Mat<T>,
    /// `Y_b` (`B × C`).
    pub yb: Mat<T>,
}

impl<T: Real> HostBatch<T> {
    /// Empty buffers.
    pub fn new() -> Self {
        Self {
            x_rows: Vec::new(),
            rows: Vec::new(),
            xb: Mat::zeros(0, 0),
            yb: Mat::zeros(0, 0),
        }
    }

    /// Prepares for a fit on `train`: the row-major copy of `X` when its rows are not
    /// contiguous.
    pub fn prepare(&mut self, train: DataRef<'_, T>) {
        let (n, d) = (train.x.nrows(), train.x.ncols());
        self.x_rows.clear();
        if train.x.col_stride() != 1 && d > 1 {
            self.x_rows.resize(n * d, T::zero_impl());
            for (i, row) in self.x_rows.chunks_exact_mut(d).enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = train.x[(i, j)];
                }
            }
        }
    }

    /// Gathers the rows `self.rows` of `train` into `xb` and `yb` (resized only when the
    /// batch shape changes). `train` must be the set given to [`prepare`](Self::prepare).
    pub fn gather(&mut self, train: DataRef<'_, T>) {
        let b = self.rows.len();
        let (d, c) = (train.x.ncols(), train.y.ncols());
        if self.xb.nrows() != b || self.xb.ncols() != d {
            self.xb = Mat::zeros(b, d);
        }
        if self.yb.nrows() != b || self.yb.ncols() != c {
            self.yb = Mat::zeros(b, c);
        }
        if self.x_rows.is_empty() {
            gather_view(train.x, &self.rows, &mut self.xb);
        } else {
            let src = &self.x_rows;
            for j in 0..d {
                let col = self
                    .xb
                    .col_mut(j)
                    .try_as_col_major_mut()
                    .expect("a Mat column is contiguous")
                    .as_slice_mut();
                for (dst, &r) in col.iter_mut().zip(&self.rows) {
                    *dst = src[r * d + j];
                }
            }
        }
        gather_view(train.y, &self.rows, &mut self.yb);
    }
}

/// `dst ← m[rows, :]` for any layout of `m`, column by column.
fn gather_view<T: Real>(m: MatRef<'_, T>, rows: &[usize], dst: &mut Mat<T>) {
    for j in 0..m.ncols() {
        let src = m.col(j);
        let col = dst
            .col_mut(j)
            .try_as_col_major_mut()
            .expect("a Mat column is contiguous")
            .as_slice_mut();
        for (v, &r) in col.iter_mut().zip(rows) {
            *v = src[r];
        }
    }
}
