//! The backend seam: the coarse verbs that the model's algorithms are written over, once,
//! for every device.
//!
//! A [`Backend`] owns buffers of one element type `T` and runs the few operations a layered
//! network's forward pass, JVP, VJP and backprop signals are made of:
//!
//! | verb | computes (row-major matrices) |
//! |---|---|
//! | [`gemm`](Backend::gemm) | `D ← α A B` or `D ← D + α A B` (`A`, `B` possibly transposed views) |
//! | [`dense`](Backend::dense) | `Z ← s_w A Wᵀ + s_b 1 bᵀ` (a dense layer's pre-activation) |
//! | [`activate`](Backend::activate) | `A ← φ(Z)` and, when asked, `D ← φ'(Z)` |
//! | [`mul_elementwise`](Backend::mul_elementwise) | `x ← x ⊙ d` |
//! | [`mul_rows_bcast`](Backend::mul_rows_bcast) | `G[r, :] ← G[r, :] ⊙ d[⌊r/C⌋, :]` (the `C` output rows of a sample share its derivative row) |
//! | [`col_sum`](Backend::col_sum) | `out ← s Σ_r M[r, :]` (a bias gradient) |
//! | [`copy`](Backend::copy) | `D ← S` |
//! | [`eye_rows`](Backend::eye_rows) | `G ← [e_{r mod C}]_r` (the read-out layer's signals) |
//! | [`gather_rows`](Backend::gather_rows) | `D[i, :] ← S[idx_i, :]` (a mini-batch) |
//! | [`axpby`](Backend::axpby) | `out ← a x + b y` |
//! | [`loss_grad`](Backend::loss_grad) | `U ← ∂L/∂F` of the mean loss over the rows of `F` |
//! | [`update`](Backend::update) | if `g` is finite: `g ← g + wd θ`, then one SGD / Adam update of `θ` |
//! | [`ntk`](Backend::ntk) | `Θ ← Σ_l (G_l G_lᵀ) ⊙ ((s_w² A_{l−1} A_{l−1}ᵀ + s_b²) ⊗ 1_{C×C})` (the structured NTK) |
//! | [`add_diag`](Backend::add_diag) | `A ← A + s I` |
//! | [`cholesky_solve`](Backend::cholesky_solve) | `b ← A⁻¹ b` by Cholesky of the symmetric `A` (or the failing minor) |
//!
//! Every verb returns [`Result`]: a device reports its failures (a driver or library error,
//! a kernel that could not be compiled) as [`crate::Error::Device`] and nothing panics below
//! the public boundary except shape preconditions, which are programming errors (`# Panics`).
//!
//! Two implementations: [`Cpu`] (faer GEMMs, pulp SIMD element-wise kernels with scalar
//! twins, rayon) and, with the `cuda` feature, `kernels::cuda::CudaBackend` (cuBLAS and the
//! crate's NVRTC kernels). Buffers live where the backend computes: [`Backend::Buf`] is a
//! `Vec<T>` on the CPU and device memory on a GPU, and views of them ([`Backend::Slice`],
//! [`Backend::Mat`]) are what the verbs take, so an algorithm written once over `B: Backend<T>`
//! moves no data between host and device.
//!
//! Buffers only grow ([`Backend::resize`] keeps the allocation when it is large enough), so
//! a hot loop on batches of one shape allocates nothing after its first pass, on either
//! device.

mod activation;
mod collective;
pub(crate) mod cpu;
pub(crate) mod cpu_ntk;
#[cfg(feature = "cuda")]
pub mod cuda;
mod layer;
pub mod optim;

pub use activation::Activation;
pub use collective::{Collective, HostStaged};
pub use cpu::Cpu;
pub use layer::Layer;
pub use optim::{AdamStep, SgdMode, Update};

use crate::loss::Loss;
use crate::{Real, Result};
use faer::MatRef;
use std::ops::Range;

/// The seam between the algorithms and a device: buffers, views and the coarse verbs listed
/// in the [module docs](self). Implemented for [`Cpu`] and, with the `cuda` feature, for the
/// CUDA backend.
///
/// Matrices are row-major: a [`Mat`](Backend::Mat) made by [`mat`](Backend::mat) over
/// `rows·cols` contiguous entries has entry `(i, j)` at `i·cols + j`; the CPU also accepts
/// any strided faer view (an input `X` in column-major order, say). [`t`](Backend::t)
/// transposes a view without moving data.
pub trait Backend<T: Real>: Sync {
    /// An owned buffer of `T` on this backend's device; the default value is empty.
    type Buf: Default + Send + Sync;
    /// A read-only view of contiguous entries.
    type Slice<'a>: Clone
    where
        Self: 'a,
        T: 'a;
    /// A writable view of contiguous entries.
    type SliceMut<'a>
    where
        Self: 'a,
        T: 'a;
    /// A read-only matrix view (row-major over a slice, or transposed).
    type Mat<'a>: Clone
    where
        Self: 'a,
        T: 'a;
    /// A writable row-major matrix view.
    type MatMut<'a>
    where
        Self: 'a,
        T: 'a;

    /// Number of entries of `buf` (its logical length, as last set by
    /// [`resize`](Self::resize)).
    fn buf_len(buf: &Self::Buf) -> usize;
    /// Sets the length of `buf` to `len`, reusing its allocation when it is large enough;
    /// the entries' values are unspecified afterwards (every caller overwrites them).
    ///
    /// # Errors
    /// [`crate::Error::Device`] if device memory cannot be allocated.
    fn resize(&self, buf: &mut Self::Buf, len: usize) -> Result<()>;
    /// A buffer holding a copy of the host slice `data`.
    ///
    /// # Errors
    /// [`crate::Error::Device`] if the buffer cannot be allocated or written.
    fn upload(&self, data: &[T]) -> Result<Self::Buf>;
    /// Copies the entries `range` of `buf` into the host slice `out`.
    ///
    /// # Panics
    /// If `out.len() != range.len()` or the range is out of bounds.
    ///
    /// # Errors
    /// [`crate::Error::Device`] if the device cannot be read.
    fn download(&self, buf: &Self::Buf, range: Range<usize>, out: &mut [T]) -> Result<()>;
    /// Copies the host slice `data` into the view `dst` (no allocation).
    ///
    /// # Panics
    /// If `data.len()` differs from the view's length.
    ///
    /// # Errors
    /// [`crate::Error::Device`] if the device cannot be written.
    fn upload_into(&self, data: &[T], dst: Self::SliceMut<'_>) -> Result<()>;

    /// The entries `range` of `buf`.
    ///
    /// # Panics
    /// If the range is out of bounds.
    fn slice(buf: &Self::Buf, range: Range<usize>) -> Self::Slice<'_>;
    /// The entries `range` of `buf`, writable.
    ///
    /// # Panics
    /// If the range is out of bounds.
    fn slice_mut(buf: &mut Self::Buf, range: Range<usize>) -> Self::SliceMut<'_>;
    /// The entries `range` of a view.
    ///
    /// # Panics
    /// If the range is out of bounds.
    fn sub<'a>(s: &Self::Slice<'a>, range: Range<usize>) -> Self::Slice<'a>;
    /// Number of entries of a view.
    fn slice_len(s: &Self::Slice<'_>) -> usize;
    /// Number of entries of a writable view.
    fn slice_mut_len(s: &Self::SliceMut<'_>) -> usize;
    /// A shorter-lived writable view of the same entries (a reborrow).
    fn reborrow<'b>(s: &'b mut Self::SliceMut<'_>) -> Self::SliceMut<'b>;
    /// The entries `range` of a writable view, as a shorter-lived writable view.
    ///
    /// # Panics
    /// If the range is out of bounds.
    fn sub_mut<'b>(s: &'b mut Self::SliceMut<'_>, range: Range<usize>) -> Self::SliceMut<'b>;

    /// The row-major `rows × cols` matrix over the entries of `s`.
    ///
    /// # Panics
    /// If `s` does not have `rows·cols` entries.
    fn mat(s: Self::Slice<'_>, rows: usize, cols: usize) -> Self::Mat<'_>;
    /// The writable row-major `rows × cols` matrix over the entries of `s`.
    ///
    /// # Panics
    /// If `s` does not have `rows·cols` entries.
    fn mat_mut(s: Self::SliceMut<'_>, rows: usize, cols: usize) -> Self::MatMut<'_>;
    /// The same view with a shorter lifetime (views are invariant in their lifetime, so an
    /// algorithm that mixes an argument's view with views of its own buffers reborrows).
    fn mat_rb<'b>(m: &'b Self::Mat<'_>) -> Self::Mat<'b>;
    /// The transpose of a view (no data moves).
    fn t(m: Self::Mat<'_>) -> Self::Mat<'_>;
    /// `(rows, cols)` of a view.
    fn shape(m: &Self::Mat<'_>) -> (usize, usize);

    /// `D ← α A B` (`accumulate == false`) or `D ← D + α A B` (`accumulate == true`).
    ///
    /// # Panics
    /// If the shapes do not agree (`A` is `m × k`, `B` is `k × n`, `D` is `m × n`).
    ///
    /// # Errors
    /// [`crate::Error::Device`] on a device failure.
    fn gemm(
        &self,
        d: Self::MatMut<'_>,
        accumulate: bool,
        a: &Self::Mat<'_>,
        b: &Self::Mat<'_>,
        alpha: T,
    ) -> Result<()>;

    /// A dense layer's pre-activation `Z ← s_w A Wᵀ + s_b 1 bᵀ` for `A` (`n × fan_in`), `W`
    /// (`fan_out × fan_in`) and `b` (`fan_out`), into `Z` (`n × fan_out`).
    ///
    /// # Panics
    /// If the shapes do not agree.
    ///
    /// # Errors
    /// [`crate::Error::Device`] on a device failure.
    #[allow(clippy::too_many_arguments)]
    fn dense(
        &self,
        z: Self::MatMut<'_>,
        a: &Self::Mat<'_>,
        w: &Self::Mat<'_>,
        b: &Self::Slice<'_>,
        s_w: T,
        s_b: T,
    ) -> Result<()>;

    /// `a ← φ(z)` and, when `d` is given, `d ← φ'(z)`, entry by entry.
    ///
    /// # Panics
    /// If the lengths differ.
    ///
    /// # Errors
    /// [`crate::Error::Device`] on a device failure.
    fn activate(
        &self,
        act: Activation,
        z: &Self::Slice<'_>,
        a: Self::SliceMut<'_>,
        d: Option<Self::SliceMut<'_>>,
    ) -> Result<()>;

    /// `x ← x ⊙ d`.
    ///
    /// # Panics
    /// If the lengths differ.
    ///
    /// # Errors
    /// [`crate::Error::Device`] on a device failure.
    fn mul_elementwise(&self, x: Self::SliceMut<'_>, d: &Self::Slice<'_>) -> Result<()>;

    /// `G[r, i] ← G[r, i] · d[⌊r/C⌋, i]` for a row-major `G` (`m × h`) and `d`
    /// (`(m/C) × h`): the backprop signals of a sample's `C` outputs share its
    /// activation-derivative row.
    ///
    /// # Panics
    /// If `C` does not divide `m` or the lengths do not match.
    ///
    /// # Errors
    /// [`crate::Error::Device`] on a device failure.
    fn mul_rows_bcast(
        &self,
        g: Self::SliceMut<'_>,
        d: &Self::Slice<'_>,
        h: usize,
        c: usize,
    ) -> Result<()>;

    /// `out[j] ← s Σ_r M[r, j]` (the rows summed in order).
    ///
    /// # Panics
    /// If `out` does not have `M`'s column count.
    ///
    /// # Errors
    /// [`crate::Error::Device`] on a device failure.
    fn col_sum(&self, out: Self::SliceMut<'_>, m: &Self::Mat<'_>, s: T) -> Result<()>;

    /// `D ← S`.
    ///
    /// # Panics
    /// If the shapes differ.
    ///
    /// # Errors
    /// [`crate::Error::Device`] on a device failure.
    fn copy(&self, d: Self::MatMut<'_>, s: &Self::Mat<'_>) -> Result<()>;

    /// `G ← [e_{r mod C}ᵀ]_r`: the `m × C` matrix whose row `r` is the unit vector of output
    /// `r mod C` (the read-out layer's backprop signals, `∂f_{n,c}/∂z_L = e_c`).
    ///
    /// # Panics
    /// If `g` does not have `m·C` entries.
    ///
    /// # Errors
    /// [`crate::Error::Device`] on a device failure.
    fn eye_rows(&self, g: Self::SliceMut<'_>, m: usize, c: usize) -> Result<()>;

    /// Row indices of a mini-batch, kept where the backend gathers (reused between steps).
    type Rows: Default + Send + Sync;
    /// Scratch for an update's finiteness flag (reused between steps).
    type Flag: Default + Send + Sync;

    /// A buffer holding the host matrix `m` in row-major order.
    ///
    /// # Errors
    /// [`crate::Error::Device`] if the buffer cannot be allocated or written.
    fn upload_mat(&self, m: MatRef<'_, T>) -> Result<Self::Buf>;
    /// Stores the row indices `rows` in `idx`.
    ///
    /// # Errors
    /// [`crate::Error::Device`] if the indices cannot be written to the device, or an index
    /// does not fit its 32 bits there.
    fn set_rows(&self, rows: &[usize], idx: &mut Self::Rows) -> Result<()>;
    /// `D[i, :] ← S[idx_i, :]` for a row-major source `S` with `cols` columns, into the
    /// row-major `D` (`|idx| × cols`).
    ///
    /// # Panics
    /// If the lengths do not match; an index past the source's rows panics on the CPU and
    /// gives a row of NaN on a device (which the update's finiteness check then refuses).
    ///
    /// # Errors
    /// [`crate::Error::Device`] on a device failure.
    fn gather_rows(
        &self,
        d: Self::SliceMut<'_>,
        s: &Self::Slice<'_>,
        cols: usize,
        idx: &Self::Rows,
    ) -> Result<()>;
    /// `out ← a x + b y`.
    ///
    /// # Panics
    /// If the lengths differ.
    ///
    /// # Errors
    /// [`crate::Error::Device`] on a device failure.
    fn axpby(
        &self,
        out: Self::SliceMut<'_>,
        a: T,
        x: &Self::Slice<'_>,
        b: T,
        y: &Self::Slice<'_>,
    ) -> Result<()>;
    /// `U ← ∂L/∂F` of the mean `loss` over the `N` rows of `F` against the targets `Y`
    /// (all `N × C`): `(F − Y)/N` for MSE, `(softmax(F) − Y)/N` for cross-entropy
    /// (`crate::loss::loss_gradient`'s arithmetic). `scratch` is host scratch for the
    /// backends that need it.
    ///
    /// # Panics
    /// If the shapes differ.
    ///
    /// # Errors
    /// [`crate::Error::Device`] on a device failure.
    fn loss_grad(
        &self,
        u: Self::MatMut<'_>,
        loss: Loss,
        f: &Self::Mat<'_>,
        y: &Self::Mat<'_>,
        scratch: &mut Vec<f64>,
    ) -> Result<()>;
    /// One first-order update of `θ` by the gradient `g`: when every `gᵢ` is finite,
    /// `g ← g + wd θ` (when `wd` is given) and then `rule` ([`optim`]: SGD with the velocity
    /// `m`, or Adam with the moments `m`, `v`); when not, nothing changes. Returns whether `g`
    /// was finite (on a device, the only value that comes back to the host).
    ///
    /// # Panics
    /// If the lengths differ or the rule lacks its moment buffers.
    ///
    /// # Errors
    /// [`crate::Error::Device`] on a device failure.
    #[allow(clippy::too_many_arguments)]
    fn update(
        &self,
        theta: Self::SliceMut<'_>,
        g: Self::SliceMut<'_>,
        m: Option<Self::SliceMut<'_>>,
        v: Option<Self::SliceMut<'_>>,
        rule: Update<T>,
        wd: Option<T>,
        flag: &mut Self::Flag,
    ) -> Result<bool>;
    /// `d ← s` for slices.
    ///
    /// # Panics
    /// If the lengths differ.
    ///
    /// # Errors
    /// [`crate::Error::Device`] on a device failure.
    fn copy_slice(&self, d: Self::SliceMut<'_>, s: &Self::Slice<'_>) -> Result<()>;
    /// The structured NTK `Θ = Σ_l (G_l G_lᵀ) ⊙ ((s_w² A_{l−1} A_{l−1}ᵀ + s_b²) ⊗ 1_{C×C})`,
    /// every entry of the symmetric `M × M` matrix (`M = N·C`), from the layer inputs
    /// `acts[l]` (`A_{l−1}`, row-major `N × fan_in`; `acts[0]` is `X`) and the backprop
    /// signals `grads[l]` (row-major `M × fan_out`) of the dense `layers`.
    ///
    /// # Panics
    /// If the buffers do not fit the layers.
    ///
    /// # Errors
    /// [`crate::Error::Device`] on a device failure (out of memory included).
    fn ntk(
        &self,
        theta: Self::MatMut<'_>,
        acts: &[Self::Buf],
        grads: &[Self::Buf],
        layers: &[Layer],
        n: usize,
        c: usize,
    ) -> Result<()>;
    /// `A ← A + s I` for a square `A`.
    ///
    /// # Panics
    /// If `A` is not square.
    ///
    /// # Errors
    /// [`crate::Error::Device`] on a device failure.
    fn add_diag(&self, a: Self::MatMut<'_>, s: T) -> Result<()>;
    /// Solves `A x = b` for a symmetric positive definite `A` (`n × n`, overwritten by its
    /// Cholesky factor) in place of `b` (length `n`). Returns `None` when solved, or
    /// `Some(k)` when the leading minor of order `k` (1-based) is not positive definite
    /// (then `b` is unspecified: raise the damping and retry).
    ///
    /// # Panics
    /// If the shapes do not agree.
    ///
    /// # Errors
    /// [`crate::Error::Device`] on a device failure.
    fn cholesky_solve(&self, a: Self::MatMut<'_>, b: Self::SliceMut<'_>) -> Result<Option<usize>>;
    /// Waits for the backend's queued work (a no-op on the CPU); reports asynchronous device
    /// errors.
    ///
    /// # Errors
    /// [`crate::Error::Device`] with the driver's message.
    fn synchronize(&self) -> Result<()>;
}

/// Row-major copy of a host matrix, in 32 × 32 tiles, so that a column-major source is read a
/// few cache lines at a time rather than one entry per line.
pub fn row_major<T: Copy + Default>(m: MatRef<'_, T>) -> Vec<T> {
    const TILE: usize = 32;
    let (r, c) = (m.nrows(), m.ncols());
    let mut v = vec![T::default(); r * c];
    for i0 in (0..r).step_by(TILE) {
        for j0 in (0..c).step_by(TILE) {
            for j in j0..(j0 + TILE).min(c) {
                for i in i0..(i0 + TILE).min(r) {
                    v[i * c + j] = m[(i, j)];
                }
            }
        }
    }
    v
}

/// Views a whole buffer.
pub fn all<T: Real, B: Backend<T>>(buf: &B::Buf) -> B::Slice<'_> {
    B::slice(buf, 0..B::buf_len(buf))
}

/// Views a whole buffer, writable.
pub fn all_mut<T: Real, B: Backend<T>>(buf: &mut B::Buf) -> B::SliceMut<'_> {
    let n = B::buf_len(buf);
    B::slice_mut(buf, 0..n)
}
