//! The CPU backend: faer GEMMs (threads from faer's global parallelism), the crate's pulp
//! SIMD element-wise kernels (each with a scalar twin, capped by `ITLIN_SIMD`), rayon for
//! the large element-wise passes. Buffers are `Vec<T>`; views are slices and faer views, so
//! an input may have any strides. No verb fails.

use super::cpu_ntk::structured_lower_into;
use super::optim::{Update, adam_host, sgd_host};
use super::{Activation, Backend, Layer, row_major};
use crate::linalg::{add_diagonal, cholesky_in_place, cholesky_solve_in_place, mirror_lower, par};
use crate::loss::{Loss, loss_gradient_into};
use crate::{Real, Result};
use faer::linalg::matmul::matmul;
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::{Accum, MatMut, MatRef};
use rayon::prelude::*;
use std::ops::Range;

/// The CPU backend: faer GEMMs on any strided views, the crate's pulp SIMD element-wise
/// kernels (each with a scalar twin, capped by `ITLIN_SIMD`), rayon for large passes;
/// buffers are `Vec<T>` and no verb fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cpu;

/// `x ← x ⊙ d` with the SIMD kernel, split across threads only when large enough to pay
/// for waking the pool.
pub(crate) fn mul_elementwise_par<T: Real>(x: &mut [T], d: &[T]) {
    const SERIAL_BELOW: usize = 1 << 16;
    if x.len() < SERIAL_BELOW {
        T::mul_elementwise(x, d);
    } else {
        x.par_chunks_mut(SERIAL_BELOW / 4)
            .zip(d.par_chunks(SERIAL_BELOW / 4))
            .for_each(|(xc, dc)| T::mul_elementwise(xc, dc));
    }
}

impl<T: Real> Backend<T> for Cpu {
    type Buf = Vec<T>;
    type Slice<'a> = &'a [T];
    type SliceMut<'a> = &'a mut [T];
    type Mat<'a> = MatRef<'a, T>;
    type MatMut<'a> = MatMut<'a, T>;

    fn buf_len(buf: &Vec<T>) -> usize {
        buf.len()
    }
    fn resize(&self, buf: &mut Vec<T>, len: usize) -> Result<()> {
        buf.resize(len, T::zero_impl());
        Ok(())
    }
    fn upload(&self, data: &[T]) -> Result<Vec<T>> {
        Ok(data.to_vec())
    }
    #[track_caller]
    fn upload_into(&self, data: &[T], dst: &mut [T]) -> Result<()> {
        dst.copy_from_slice(data);
        Ok(())
    }
    #[track_caller]
    fn download(&self, buf: &Vec<T>, range: Range<usize>, out: &mut [T]) -> Result<()> {
        out.copy_from_slice(&buf[range]);
        Ok(())
    }

    fn slice(buf: &Self::Buf, range: Range<usize>) -> Self::Slice<'_> {
        &buf[range]
    }
    fn slice_mut(buf: &mut Self::Buf, range: Range<usize>) -> Self::SliceMut<'_> {
        &mut buf[range]
    }
    fn sub<'a>(s: &Self::Slice<'a>, range: Range<usize>) -> Self::Slice<'a> {
        &s[range]
    }
    fn slice_len(s: &&[T]) -> usize {
        s.len()
    }
    fn slice_mut_len(s: &&mut [T]) -> usize {
        s.len()
    }
    fn reborrow<'b>(s: &'b mut Self::SliceMut<'_>) -> Self::SliceMut<'b> {
        s
    }
    fn sub_mut<'b>(s: &'b mut Self::SliceMut<'_>, range: Range<usize>) -> Self::SliceMut<'b> {
        &mut s[range]
    }

    #[track_caller]
    fn mat(s: Self::Slice<'_>, rows: usize, cols: usize) -> Self::Mat<'_> {
        MatRef::from_row_major_slice(s, rows, cols)
    }
    #[track_caller]
    fn mat_mut(s: Self::SliceMut<'_>, rows: usize, cols: usize) -> Self::MatMut<'_> {
        MatMut::from_row_major_slice_mut(s, rows, cols)
    }
    fn mat_rb<'b>(m: &'b Self::Mat<'_>) -> Self::Mat<'b> {
        m.as_ref()
    }
    fn t(m: Self::Mat<'_>) -> Self::Mat<'_> {
        m.transpose()
    }
    fn shape(m: &MatRef<'_, T>) -> (usize, usize) {
        (m.nrows(), m.ncols())
    }

    #[track_caller]
    fn gemm(
        &self,
        d: MatMut<'_, T>,
        accumulate: bool,
        a: &MatRef<'_, T>,
        b: &MatRef<'_, T>,
        alpha: T,
    ) -> Result<()> {
        let accum = if accumulate {
            Accum::Add
        } else {
            Accum::Replace
        };
        matmul(d, accum, *a, *b, alpha, par());
        Ok(())
    }

    #[track_caller]
    fn dense(
        &self,
        mut z: MatMut<'_, T>,
        a: &MatRef<'_, T>,
        w: &MatRef<'_, T>,
        b: &&[T],
        s_w: T,
        s_b: T,
    ) -> Result<()> {
        assert_eq!(
            b.len(),
            z.ncols(),
            "Cpu::dense: b has length {}, Z has {} columns",
            b.len(),
            z.ncols()
        );
        for i in 0..z.nrows() {
            match z.as_mut().row_mut(i).try_as_row_major_mut() {
                Some(row) => {
                    for (zk, &bk) in row.as_slice_mut().iter_mut().zip(b.iter()) {
                        *zk = s_b * bk;
                    }
                }
                None => {
                    for (k, &bk) in b.iter().enumerate() {
                        z[(i, k)] = s_b * bk;
                    }
                }
            }
        }
        matmul(z, Accum::Add, *a, w.transpose(), s_w, par());
        Ok(())
    }

    #[track_caller]
    fn activate(&self, act: Activation, z: &&[T], a: &mut [T], d: Option<&mut [T]>) -> Result<()> {
        act.apply_slice(z, a, d);
        Ok(())
    }

    #[track_caller]
    fn mul_elementwise(&self, x: &mut [T], d: &&[T]) -> Result<()> {
        mul_elementwise_par(x, d);
        Ok(())
    }

    #[track_caller]
    fn mul_rows_bcast(&self, g: &mut [T], d: &&[T], h: usize, c: usize) -> Result<()> {
        assert!(
            c > 0 && h > 0 && g.len().is_multiple_of(h * c),
            "Cpu::mul_rows_bcast: G has {} entries, not a multiple of h·C = {h}·{c}",
            g.len()
        );
        assert_eq!(
            d.len() * c,
            g.len(),
            "Cpu::mul_rows_bcast: d has {} entries, G has {} (C = {c})",
            d.len(),
            g.len()
        );
        g.par_chunks_mut(h).enumerate().for_each(|(r, row)| {
            T::mul_elementwise(row, &d[(r / c) * h..(r / c + 1) * h]);
        });
        Ok(())
    }

    #[track_caller]
    fn col_sum(&self, out: &mut [T], m: &MatRef<'_, T>, s: T) -> Result<()> {
        assert_eq!(
            out.len(),
            m.ncols(),
            "Cpu::col_sum: out has length {}, M has {} columns",
            out.len(),
            m.ncols()
        );
        out.fill(T::zero_impl());
        for i in 0..m.nrows() {
            match m.row(i).try_as_row_major() {
                Some(row) => T::axpy(s, row.as_slice(), out),
                None => {
                    for (j, o) in out.iter_mut().enumerate() {
                        *o += s * m[(i, j)];
                    }
                }
            }
        }
        Ok(())
    }

    #[track_caller]
    fn copy(&self, mut d: MatMut<'_, T>, s: &MatRef<'_, T>) -> Result<()> {
        d.copy_from(*s);
        Ok(())
    }

    #[track_caller]
    fn eye_rows(&self, g: &mut [T], m: usize, c: usize) -> Result<()> {
        assert_eq!(
            g.len(),
            m * c,
            "Cpu::eye_rows: G has {} entries, expected m·C = {m}·{c}",
            g.len()
        );
        g.fill(T::zero_impl());
        for r in 0..m {
            g[r * c + r % c] = T::one_impl();
        }
        Ok(())
    }

    type Rows = Vec<usize>;
    type Flag = ();

    fn upload_mat(&self, m: MatRef<'_, T>) -> Result<Vec<T>> {
        Ok(row_major(m))
    }
    fn set_rows(&self, rows: &[usize], idx: &mut Vec<usize>) -> Result<()> {
        idx.clear();
        idx.extend_from_slice(rows);
        Ok(())
    }
    #[track_caller]
    fn gather_rows(&self, d: &mut [T], s: &&[T], cols: usize, idx: &Vec<usize>) -> Result<()> {
        assert_eq!(
            d.len(),
            idx.len() * cols,
            "Cpu::gather_rows: D has {} entries, expected {}×{cols}",
            d.len(),
            idx.len()
        );
        if cols == 0 {
            return Ok(());
        }
        for (dst, &r) in d.chunks_exact_mut(cols).zip(idx) {
            dst.copy_from_slice(&s[r * cols..(r + 1) * cols]);
        }
        Ok(())
    }
    #[track_caller]
    fn axpby(&self, out: &mut [T], a: T, x: &&[T], b: T, y: &&[T]) -> Result<()> {
        assert!(
            x.len() == out.len() && y.len() == out.len(),
            "Cpu::axpby: lengths {}, {} and {}",
            x.len(),
            y.len(),
            out.len()
        );
        for ((o, &xi), &yi) in out.iter_mut().zip(x.iter()).zip(y.iter()) {
            *o = a * xi + b * yi;
        }
        Ok(())
    }
    #[track_caller]
    fn loss_grad(
        &self,
        u: MatMut<'_, T>,
        loss: Loss,
        f: &MatRef<'_, T>,
        y: &MatRef<'_, T>,
        scratch: &mut Vec<f64>,
    ) -> Result<()> {
        loss_gradient_into(loss, *f, *y, u, scratch);
        Ok(())
    }
    #[track_caller]
    fn update(
        &self,
        theta: &mut [T],
        g: &mut [T],
        m: Option<&mut [T]>,
        v: Option<&mut [T]>,
        rule: Update<T>,
        wd: Option<T>,
        _flag: &mut (),
    ) -> Result<bool> {
        if !g.iter().fold(true, |ok, x| ok & x.is_finite()) {
            return Ok(false);
        }
        if let Some(wd) = wd {
            T::axpy(wd, theta, g);
        }
        match rule {
            Update::Sgd { mode, eta, mu } => sgd_host(theta, g, m, mode, eta, mu),
            Update::Adam(s) => {
                let (Some(m), Some(v)) = (m, v) else {
                    panic!("Cpu::update: Adam needs both moments")
                };
                adam_host(theta, g, m, v, s);
            }
        }
        Ok(true)
    }
    #[track_caller]
    fn copy_slice(&self, d: &mut [T], s: &&[T]) -> Result<()> {
        d.copy_from_slice(s);
        Ok(())
    }
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    #[track_caller]
    fn ntk(
        &self,
        mut theta: MatMut<'_, T>,
        acts: &[Vec<T>],
        grads: &[Vec<T>],
        layers: &[Layer],
        n: usize,
        c: usize,
    ) -> Result<()> {
        // The structured assembly writes the lower half of a column-major matrix: the
        // transpose of a row-major Θ is one (its lower half is Θ's upper half, Θ being
        // symmetric), then the other half is mirrored.
        theta.fill(T::zero_impl());
        structured_lower_into(theta.rb_mut().transpose_mut(), acts, grads, layers, n, c);
        mirror_lower(theta.transpose_mut());
        Ok(())
    }
    #[track_caller]
    fn add_diag(&self, a: MatMut<'_, T>, s: T) -> Result<()> {
        assert_eq!(a.nrows(), a.ncols(), "Cpu::add_diag: A is not square");
        add_diagonal(a, s);
        Ok(())
    }
    #[track_caller]
    fn cholesky_solve(&self, mut a: MatMut<'_, T>, b: &mut [T]) -> Result<Option<usize>> {
        let n = a.nrows();
        assert!(
            a.ncols() == n && b.len() == n,
            "Cpu::cholesky_solve: A is {}×{}, b has {} entries",
            n,
            a.ncols(),
            b.len()
        );
        // Factor the column-major transpose of a row-major A (the same symmetric matrix).
        let mut at = a.rb_mut().transpose_mut();
        if let Err(k) = cholesky_in_place(at.rb_mut()) {
            return Ok(Some(k + 1));
        }
        cholesky_solve_in_place(at.rb(), MatMut::from_column_major_slice_mut(b, n, 1));
        Ok(None)
    }
}
