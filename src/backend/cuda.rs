//! The CUDA backend (cargo feature `cuda`): the [`Backend`] verbs on device buffers, by
//! cuBLAS GEMMs ([`ops::gemm_rm`]) and the crate's NVRTC kernels (`kernels/*.cu`, one safe
//! wrapper each in [`ops`]). Buffers are [`DeviceBuf`]s in device memory; views are cudarc
//! views with a row-major shape, and a transposed view is a flag that the GEMM passes on to
//! cuBLAS. Every verb is queued on the backend's stream; device failures are
//! [`crate::Error::Device`] with the driver's message.

use super::optim::Update;
use super::{Activation, Backend, Layer, row_major};
use crate::kernels::cuda::ops::{self, DevicePtrMutDyn};
use crate::kernels::cuda::{CudaBackend, CudaReal};
use crate::loss::Loss;
use crate::{Error, Result};
use cudarc::driver::{CudaSlice, CudaView, CudaViewMut};
use faer::MatRef;
use std::ops::Range;

/// A buffer in device memory: empty until first [`resize`](Backend::resize)d, then exactly
/// as long as asked (a new allocation only when the length changes, so steps on batches of
/// one shape allocate nothing).
#[derive(Debug)]
pub struct DeviceBuf<T>(Option<CudaSlice<T>>);

impl<T> Default for DeviceBuf<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<T> DeviceBuf<T> {
    /// Wraps a device buffer.
    pub fn new(s: CudaSlice<T>) -> Self {
        Self(Some(s))
    }
    /// The device buffer.
    ///
    /// # Panics
    /// If the buffer was never sized.
    #[track_caller]
    pub fn get(&self) -> &CudaSlice<T> {
        self.0
            .as_ref()
            .expect("DeviceBuf: used before it was sized (Backend::resize)")
    }
    /// The device buffer, writable.
    ///
    /// # Panics
    /// If the buffer was never sized.
    #[track_caller]
    pub fn get_mut(&mut self) -> &mut CudaSlice<T> {
        self.0
            .as_mut()
            .expect("DeviceBuf: used before it was sized (Backend::resize)")
    }
    /// The device buffer, taken out (`None` if never sized).
    pub fn into_inner(self) -> Option<CudaSlice<T>> {
        self.0
    }
    /// Number of elements (0 if never sized).
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |s| s.len())
    }
    /// Whether the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Row indices on the device (`u32`), with the host copy they were made from.
#[derive(Debug, Default)]
pub struct DeviceRows {
    host: Vec<u32>,
    dev: Option<CudaSlice<u32>>,
}

/// The 4-byte finiteness flag of an update, in device memory.
#[derive(Debug, Default)]
pub struct DeviceFlag(Option<CudaSlice<u32>>);

/// A read-only device view (a cudarc view that can be copied).
#[derive(Debug)]
pub struct DevSlice<'a, T>(pub CudaView<'a, T>);

impl<T> Clone for DevSlice<'_, T> {
    fn clone(&self) -> Self {
        Self(self.0.slice(..))
    }
}

/// A read-only device matrix: `rows × cols` over a row-major view, or (when `trans`) the
/// transpose of the row-major `cols × rows` matrix over it.
#[derive(Debug)]
pub struct DevMat<'a, T> {
    /// The entries.
    pub view: CudaView<'a, T>,
    /// Rows of the matrix this view stands for.
    pub rows: usize,
    /// Columns of the matrix this view stands for.
    pub cols: usize,
    /// Whether the stored row-major matrix is the transpose (`cols × rows`).
    pub trans: bool,
}

impl<T> Clone for DevMat<'_, T> {
    fn clone(&self) -> Self {
        Self {
            view: self.view.slice(..),
            rows: self.rows,
            cols: self.cols,
            trans: self.trans,
        }
    }
}

/// A writable row-major device matrix `rows × cols`.
#[derive(Debug)]
pub struct DevMatMut<'a, T> {
    /// The entries.
    pub view: CudaViewMut<'a, T>,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

/// The entries of a view that is not transposed (the element-wise verbs and copies take
/// plain row-major views only).
#[track_caller]
fn plain<'m, 'a, T>(what: &str, m: &'m DevMat<'a, T>) -> &'m CudaView<'a, T> {
    assert!(
        !m.trans,
        "CudaBackend::{what}: a transposed view is taken by gemm only"
    );
    &m.view
}

impl<T: CudaReal> Backend<T> for CudaBackend {
    type Buf = DeviceBuf<T>;
    type Slice<'a> = DevSlice<'a, T>;
    type SliceMut<'a> = CudaViewMut<'a, T>;
    type Mat<'a> = DevMat<'a, T>;
    type MatMut<'a> = DevMatMut<'a, T>;

    fn buf_len(buf: &Self::Buf) -> usize {
        buf.len()
    }
    fn resize(&self, buf: &mut Self::Buf, len: usize) -> Result<()> {
        if buf.0.as_ref().is_none_or(|s| s.len() != len) {
            // Every verb writes all of its output before anything reads it.
            buf.0 = Some(self.alloc_uninit::<T>(len)?);
        }
        Ok(())
    }
    fn upload(&self, data: &[T]) -> Result<Self::Buf> {
        Ok(DeviceBuf(Some(CudaBackend::upload(self, data)?)))
    }
    #[track_caller]
    fn upload_into(&self, data: &[T], mut dst: Self::SliceMut<'_>) -> Result<()> {
        assert_eq!(
            data.len(),
            dst.len(),
            "CudaBackend::upload_into: {} entries into a view of {}",
            data.len(),
            dst.len()
        );
        if data.is_empty() {
            return Ok(());
        }
        self.stream()
            .memcpy_htod(data, &mut dst)
            .map_err(crate::kernels::cuda::dev_err("copying host to device"))
    }
    #[track_caller]
    fn download(&self, buf: &Self::Buf, range: Range<usize>, out: &mut [T]) -> Result<()> {
        assert_eq!(
            out.len(),
            range.len(),
            "CudaBackend::download: {} entries into a host slice of {}",
            range.len(),
            out.len()
        );
        if out.is_empty() {
            return Ok(());
        }
        self.stream()
            .memcpy_dtoh(&buf.get().slice(range), out)
            .map_err(crate::kernels::cuda::dev_err("copying device to host"))
    }

    #[track_caller]
    fn slice(buf: &Self::Buf, range: Range<usize>) -> Self::Slice<'_> {
        DevSlice(buf.get().slice(range))
    }
    #[track_caller]
    fn slice_mut(buf: &mut Self::Buf, range: Range<usize>) -> Self::SliceMut<'_> {
        buf.get_mut().slice_mut(range)
    }
    #[track_caller]
    fn sub<'a>(s: &Self::Slice<'a>, range: Range<usize>) -> Self::Slice<'a> {
        DevSlice(s.0.slice(range))
    }
    fn slice_len(s: &Self::Slice<'_>) -> usize {
        s.0.len()
    }
    fn slice_mut_len(s: &Self::SliceMut<'_>) -> usize {
        s.len()
    }
    fn reborrow<'b>(s: &'b mut Self::SliceMut<'_>) -> Self::SliceMut<'b> {
        s.slice_mut(..)
    }
    #[track_caller]
    fn sub_mut<'b>(s: &'b mut Self::SliceMut<'_>, range: Range<usize>) -> Self::SliceMut<'b> {
        s.slice_mut(range)
    }

    #[track_caller]
    fn mat(s: Self::Slice<'_>, rows: usize, cols: usize) -> Self::Mat<'_> {
        assert_eq!(
            s.0.len(),
            rows * cols,
            "CudaBackend::mat: {} entries for a {rows}×{cols} matrix",
            s.0.len()
        );
        DevMat {
            view: s.0,
            rows,
            cols,
            trans: false,
        }
    }
    #[track_caller]
    fn mat_mut(s: Self::SliceMut<'_>, rows: usize, cols: usize) -> Self::MatMut<'_> {
        assert_eq!(
            s.len(),
            rows * cols,
            "CudaBackend::mat_mut: {} entries for a {rows}×{cols} matrix",
            s.len()
        );
        DevMatMut {
            view: s,
            rows,
            cols,
        }
    }
    fn mat_rb<'b>(m: &'b Self::Mat<'_>) -> Self::Mat<'b> {
        m.clone()
    }
    fn t(m: Self::Mat<'_>) -> Self::Mat<'_> {
        DevMat {
            view: m.view,
            rows: m.cols,
            cols: m.rows,
            trans: !m.trans,
        }
    }
    fn shape(m: &Self::Mat<'_>) -> (usize, usize) {
        (m.rows, m.cols)
    }

    #[track_caller]
    fn gemm(
        &self,
        mut d: Self::MatMut<'_>,
        accumulate: bool,
        a: &Self::Mat<'_>,
        b: &Self::Mat<'_>,
        alpha: T,
    ) -> Result<()> {
        assert!(
            a.cols == b.rows && d.rows == a.rows && d.cols == b.cols,
            "CudaBackend::gemm: D {}×{} ← A {}×{} · B {}×{}",
            d.rows,
            d.cols,
            a.rows,
            a.cols,
            b.rows,
            b.cols
        );
        let beta = if accumulate {
            T::one_impl()
        } else {
            T::zero_impl()
        };
        ops::gemm_rm(
            self,
            a.trans,
            b.trans,
            a.rows,
            b.cols,
            a.cols,
            alpha,
            &a.view,
            &b.view,
            beta,
            &mut d.view,
        )
    }

    #[track_caller]
    fn dense(
        &self,
        mut z: Self::MatMut<'_>,
        a: &Self::Mat<'_>,
        w: &Self::Mat<'_>,
        b: &Self::Slice<'_>,
        s_w: T,
        s_b: T,
    ) -> Result<()> {
        let (rows, cols) = (z.rows, z.cols);
        let zr = DevMatMut {
            view: z.view.slice_mut(..),
            rows,
            cols,
        };
        Backend::<T>::gemm(self, zr, false, a, &Self::t(Self::mat_rb(w)), s_w)?;
        ops::bias_mul(self, &mut z.view, Some(&b.0), s_b, rows, cols, None)
    }

    #[track_caller]
    fn activate(
        &self,
        act: Activation,
        z: &Self::Slice<'_>,
        mut a: Self::SliceMut<'_>,
        mut d: Option<Self::SliceMut<'_>>,
    ) -> Result<()> {
        let n = z.0.len();
        let dref: Option<&mut dyn DevicePtrMutDyn<T>> = match d.as_mut() {
            Some(d) => Some(d),
            None => None,
        };
        ops::bias_act(self, act, &z.0, None, T::zero_impl(), 1, n, &mut a, dref)
    }

    #[track_caller]
    fn mul_elementwise(&self, mut x: Self::SliceMut<'_>, d: &Self::Slice<'_>) -> Result<()> {
        let n = x.len();
        ops::bias_mul(self, &mut x, None, T::zero_impl(), 1, n, Some(&d.0))
    }

    #[track_caller]
    fn mul_rows_bcast(
        &self,
        mut g: Self::SliceMut<'_>,
        d: &Self::Slice<'_>,
        h: usize,
        c: usize,
    ) -> Result<()> {
        assert!(
            h > 0 && g.len().is_multiple_of(h),
            "CudaBackend::mul_rows_bcast: G has {} entries, not a multiple of h = {h}",
            g.len()
        );
        let m = g.len() / h;
        ops::mul_bcast_rows(self, &mut g, &d.0, m, h, c)
    }

    #[track_caller]
    fn col_sum(&self, mut out: Self::SliceMut<'_>, m: &Self::Mat<'_>, s: T) -> Result<()> {
        let v = plain("col_sum", m);
        ops::col_sum(self, v, m.rows, m.cols, s, &mut out)
    }

    #[track_caller]
    fn copy(&self, mut d: Self::MatMut<'_>, s: &Self::Mat<'_>) -> Result<()> {
        let v = plain("copy", s);
        assert!(
            d.rows == s.rows && d.cols == s.cols,
            "CudaBackend::copy: {}×{} into {}×{}",
            s.rows,
            s.cols,
            d.rows,
            d.cols
        );
        if d.view.is_empty() {
            return Ok(());
        }
        self.stream()
            .memcpy_dtod(v, &mut d.view)
            .map_err(crate::kernels::cuda::dev_err("copying on the device"))
    }

    #[track_caller]
    fn eye_rows(&self, mut g: Self::SliceMut<'_>, m: usize, c: usize) -> Result<()> {
        ops::eye_rows(self, &mut g, m, c)
    }

    type Rows = DeviceRows;
    type Flag = DeviceFlag;

    fn upload_mat(&self, m: MatRef<'_, T>) -> Result<Self::Buf> {
        Ok(DeviceBuf(Some(CudaBackend::upload(self, &row_major(m))?)))
    }
    fn set_rows(&self, rows: &[usize], idx: &mut DeviceRows) -> Result<()> {
        idx.host.clear();
        for &r in rows {
            let r = u32::try_from(r).map_err(|_| {
                Error::Device(format!("row index {r} exceeds the device's 32-bit indices"))
            })?;
            idx.host.push(r);
        }
        if idx.dev.as_ref().is_none_or(|d| d.len() != rows.len()) {
            idx.dev = Some(self.alloc_uninit::<u32>(rows.len())?);
        }
        if rows.is_empty() {
            return Ok(());
        }
        let dev = idx
            .dev
            .as_mut()
            .unwrap_or_else(|| unreachable!("allocated above"));
        self.stream()
            .memcpy_htod(&idx.host, dev)
            .map_err(crate::kernels::cuda::dev_err("uploading the batch rows"))
    }
    #[track_caller]
    fn gather_rows(
        &self,
        mut d: Self::SliceMut<'_>,
        s: &Self::Slice<'_>,
        cols: usize,
        idx: &DeviceRows,
    ) -> Result<()> {
        let Some(dev) = idx.dev.as_ref() else {
            assert_eq!(d.len(), 0, "CudaBackend::gather_rows: no rows were set");
            return Ok(());
        };
        assert!(
            cols > 0 && s.0.len().is_multiple_of(cols),
            "CudaBackend::gather_rows: source of {} entries with {cols} columns",
            s.0.len()
        );
        ops::gather_rows(self, &s.0, s.0.len() / cols, cols, dev, &mut d)
    }
    #[track_caller]
    fn axpby(
        &self,
        mut out: Self::SliceMut<'_>,
        a: T,
        x: &Self::Slice<'_>,
        b: T,
        y: &Self::Slice<'_>,
    ) -> Result<()> {
        ops::axpby(self, a, &x.0, b, &y.0, &mut out)
    }
    #[track_caller]
    fn loss_grad(
        &self,
        mut u: Self::MatMut<'_>,
        loss: Loss,
        f: &Self::Mat<'_>,
        y: &Self::Mat<'_>,
        _scratch: &mut Vec<f64>,
    ) -> Result<()> {
        let (fv, yv) = (plain("loss_grad", f), plain("loss_grad", y));
        assert!(
            f.rows == y.rows && f.cols == y.cols && u.rows == f.rows && u.cols == f.cols,
            "CudaBackend::loss_grad: F {}×{}, Y {}×{}, U {}×{}",
            f.rows,
            f.cols,
            y.rows,
            y.cols,
            u.rows,
            u.cols
        );
        let inv_n = T::from_f64(1.0 / f.rows.max(1) as f64);
        ops::loss_grad(self, loss, fv, None, yv, f.rows, f.cols, inv_n, &mut u.view)
    }
    #[track_caller]
    fn update(
        &self,
        mut theta: Self::SliceMut<'_>,
        g: Self::SliceMut<'_>,
        m: Option<Self::SliceMut<'_>>,
        v: Option<Self::SliceMut<'_>>,
        rule: Update<T>,
        wd: Option<T>,
        flag: &mut DeviceFlag,
    ) -> Result<bool> {
        if flag.0.is_none() {
            flag.0 = Some(self.zeros::<u32>(1)?);
        }
        let fl = flag
            .0
            .as_mut()
            .unwrap_or_else(|| unreachable!("allocated above"));
        let dev_err = crate::kernels::cuda::dev_err;
        self.stream()
            .memset_zeros(fl)
            .map_err(dev_err("clearing the finiteness flag"))?;
        ops::nonfinite(self, &g, fl)?;
        let (mut m, mut v) = (m, v);
        match rule {
            Update::Sgd { mode, eta, mu } => {
                let mref: Option<&mut dyn DevicePtrMutDyn<T>> = match m.as_mut() {
                    Some(m) => Some(m),
                    None => None,
                };
                ops::sgd_update(self, &mut theta, &g, mref, mode, wd, eta, mu, fl)?;
            }
            Update::Adam(s) => {
                let (Some(m), Some(v)) = (m.as_mut(), v.as_mut()) else {
                    panic!("CudaBackend::update: Adam needs both moments")
                };
                ops::adam_update(self, &mut theta, &g, m, v, wd, s, fl)?;
            }
        }
        let mut host = [1u32];
        self.stream()
            .memcpy_dtoh(fl, &mut host)
            .map_err(dev_err("reading the finiteness flag"))?;
        Ok(host[0] == 0)
    }
    #[track_caller]
    fn copy_slice(&self, mut d: Self::SliceMut<'_>, s: &Self::Slice<'_>) -> Result<()> {
        assert_eq!(
            d.len(),
            s.0.len(),
            "CudaBackend::copy_slice: {} entries into {}",
            s.0.len(),
            d.len()
        );
        if d.is_empty() {
            return Ok(());
        }
        self.stream()
            .memcpy_dtod(&s.0, &mut d)
            .map_err(crate::kernels::cuda::dev_err("copying on the device"))
    }
    fn synchronize(&self) -> Result<()> {
        CudaBackend::synchronize(self)
    }

    #[track_caller]
    fn ntk(
        &self,
        mut theta: Self::MatMut<'_>,
        acts: &[Self::Buf],
        grads: &[Self::Buf],
        layers: &[Layer],
        n: usize,
        c: usize,
    ) -> Result<()> {
        assert!(
            theta.rows == n * c && theta.cols == n * c,
            "CudaBackend::ntk: Θ is {}×{}, expected M×M with M = {}",
            theta.rows,
            theta.cols,
            n * c
        );
        let acts: Vec<&CudaSlice<T>> = acts.iter().map(DeviceBuf::get).collect();
        let grads: Vec<&CudaSlice<T>> = grads.iter().map(DeviceBuf::get).collect();
        crate::kernels::cuda::dense::ntk_into(self, &acts, &grads, layers, n, c, &mut theta.view)
    }
    #[track_caller]
    fn add_diag(&self, mut a: Self::MatMut<'_>, s: T) -> Result<()> {
        assert_eq!(a.rows, a.cols, "CudaBackend::add_diag: A is not square");
        ops::add_diag(self, &mut a.view, a.rows, s)
    }
    #[track_caller]
    fn cholesky_solve(
        &self,
        mut a: Self::MatMut<'_>,
        mut b: Self::SliceMut<'_>,
    ) -> Result<Option<usize>> {
        let n = a.rows;
        assert!(
            a.cols == n && b.len() == n,
            "CudaBackend::cholesky_solve: A is {}×{}, b has {} entries",
            n,
            a.cols,
            b.len()
        );
        // The row-major A is its own (symmetric) column-major self: cuSOLVER reads it as is.
        let info = crate::kernels::cuda::dense::cholesky_solve(self, &mut a.view, n, &mut b, 1)?;
        match info {
            0 => Ok(None),
            k if k > 0 => Ok(Some(k as usize)),
            k => Err(Error::Device(format!(
                "cuSOLVER potrf reported invalid argument {}",
                -k
            ))),
        }
    }
}
