//! The host first-order step's batch: row indices, and the rows of `X` and `Y` gathered into
//! reused buffers. A column-major `X` is first copied row-major once per fit (when the copy
//! takes at most a quarter of the memory budget), so that a gather reads `B` contiguous rows
//! instead of `B·d` scattered entries (one cache line per entry for a column-major `X`).

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
    /// Two `(X_b, Y_b)` buffers (`B × d` and `B × C`, column-major as [`Mat`] is), one per
    /// batch size: a run has at most two (the batch size and the smaller last batch of an
    /// epoch), so neither is reallocated after both have been seen.
    slots: [(Mat<T>, Mat<T>); 2],
    /// The slot of the current batch.
    cur: usize,
}

impl<T: Real> HostBatch<T> {
    /// Empty buffers.
    pub fn new() -> Self {
        Self {
            x_rows: Vec::new(),
            rows: Vec::new(),
            slots: [
                (Mat::zeros(0, 0), Mat::zeros(0, 0)),
                (Mat::zeros(0, 0), Mat::zeros(0, 0)),
            ],
            cur: 0,
        }
    }

    /// Prepares for a fit on `train` in batches of `batch` rows: the row-major copy of `X`
    /// when its rows are not contiguous, and the buffers of both batch sizes (`batch` and
    /// the last batch of an epoch, `N mod batch`).
    pub fn prepare(&mut self, train: DataRef<'_, T>, batch: usize) {
        let (n, d) = (train.x.nrows(), train.x.ncols());
        let c = train.y.ncols();
        let batch = batch.clamp(1, n.max(1));
        let tail = n % batch;
        self.slots[0] = (Mat::zeros(batch, d), Mat::zeros(batch, c));
        self.slots[1] = (Mat::zeros(tail, d), Mat::zeros(tail, c));
        self.cur = 0;
        self.x_rows.clear();
        // the copy is worth it unless it would take more than a quarter of the memory budget
        let copy_fits =
            crate::memory::dense_bytes::<T>(n, d) <= crate::memory::default_budget() / 4;
        if train.x.col_stride() != 1 && d > 1 && copy_fits {
            self.x_rows.resize(n * d, T::zero_impl());
            for (i, row) in self.x_rows.chunks_exact_mut(d).enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = train.x[(i, j)];
                }
            }
        }
    }

    /// `X_b` of the last [`gather`](Self::gather).
    pub fn xb(&self) -> MatRef<'_, T> {
        self.slots[self.cur].0.as_ref()
    }

    /// `Y_b` of the last [`gather`](Self::gather).
    pub fn yb(&self) -> MatRef<'_, T> {
        self.slots[self.cur].1.as_ref()
    }

    /// Gathers the rows `self.rows` of `train` into the slot of their batch size
    /// (allocated when that size is first seen). `train` must be the set given to
    /// [`prepare`](Self::prepare).
    pub fn gather(&mut self, train: DataRef<'_, T>) {
        let b = self.rows.len();
        let (d, c) = (train.x.ncols(), train.y.ncols());
        let fits = |s: &(Mat<T>, Mat<T>)| {
            s.0.nrows() == b && s.0.ncols() == d && s.1.nrows() == b && s.1.ncols() == c
        };
        self.cur = if fits(&self.slots[0]) {
            0
        } else if fits(&self.slots[1]) {
            1
        } else {
            let k = usize::from(self.slots[0].0.nrows() != 0 && self.slots[1].0.nrows() == 0);
            self.slots[k] = (Mat::zeros(b, d), Mat::zeros(b, c));
            k
        };
        let (xb, yb) = &mut self.slots[self.cur];
        if self.x_rows.is_empty() {
            gather_view(train.x, &self.rows, xb);
        } else {
            let src = &self.x_rows;
            for j in 0..d {
                let col = xb
                    .col_mut(j)
                    .try_as_col_major_mut()
                    .expect("a Mat column is contiguous")
                    .as_slice_mut();
                for (dst, &r) in col.iter_mut().zip(&self.rows) {
                    *dst = src[r * d + j];
                }
            }
        }
        gather_view(train.y, &self.rows, yb);
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
