//! One safe wrapper per kernel (and per cuBLAS call the crate makes): each checks the lengths
//! of its buffers against the shape it is given, panicking at the boundary on a mismatch
//! (`# Panics`), and only then launches. Driver and library failures are [`Error::Device`].
//!
//! Matrices are row-major, as everywhere in the crate; [`gemm_rm`] does the translation to
//! cuBLAS's column-major convention.

use super::blas::{CudaReal, Op};
use super::context::{CudaBackend, dev_err};
use super::nvrtc::Family;
use crate::{Activation, Error, Result};
use cudarc::driver::{DevicePtr, DevicePtrMut, LaunchConfig, PushKernelArg};
use std::ffi::c_int;

/// Threads per block of the one-dimensional kernels.
const THREADS: u32 = 256;

/// The raw device address of a buffer to be read.
pub(crate) fn rd<T, S: DevicePtr<T>>(be: &CudaBackend, s: &S) -> u64 {
    let (p, _sync) = s.device_ptr(be.stream());
    p
}

/// The raw device address of a buffer to be written.
pub(crate) fn wr<T, D: DevicePtrMut<T>>(be: &CudaBackend, d: &mut D) -> u64 {
    let (p, _sync) = d.device_ptr_mut(be.stream());
    p
}

/// Blocks for a grid-stride loop over `n` items: enough to fill the device, no more.
fn blocks_for(be: &CudaBackend, n: usize) -> u32 {
    let cap = (be.sm_count() * 16).max(1);
    n.div_ceil(THREADS as usize).clamp(1, cap) as u32
}

fn cfg1(blocks: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn to_int(what: &str, v: usize) -> Result<c_int> {
    c_int::try_from(v).map_err(|_| {
        Error::Device(format!(
            "{what} = {v} exceeds the 32-bit sizes of cuBLAS/cuSOLVER"
        ))
    })
}

#[track_caller]
fn check_len(what: &str, got: usize, want: usize, shape: &str) {
    assert_eq!(
        got, want,
        "{what}: buffer has {got} elements, the shape {shape} needs {want}"
    );
}

macro_rules! launch {
    ($be:expr, $family:expr, $name:expr, $ty:ty, $cfg:expr, [$($arg:expr),* $(,)?]) => {{
        let fname = format!("{}{}", $name, <$ty as crate::Real>::CUDA_SUFFIX);
        let func = $be.function($family, &fname)?;
        let mut builder = $be.stream().launch_builder(&func);
        $( builder.arg($arg); )*
        // SAFETY: the argument list matches the kernel's signature in kernels/*.cu (types and
        // order), every pointer is a live allocation of this context whose length the caller
        // checked against the shape passed alongside, and the launch is ordered on the
        // backend's single stream after the writes that produced its inputs.
        unsafe { builder.launch($cfg) }.map_err(dev_err(&fname))?;
    }};
}

/// `out ← J v` for a row-major `J` (`m × p`): one block per row, 16-byte loads of `J`.
///
/// # Panics
/// If `j.len() != m·p`, `v.len() != p` or `out.len() != m`.
///
/// # Errors
/// [`Error::Device`] if the kernel cannot be compiled or launched.
#[track_caller]
pub fn j_v<T: CudaReal>(
    be: &CudaBackend,
    j: &impl DevicePtr<T>,
    m: usize,
    p: usize,
    v: &impl DevicePtr<T>,
    out: &mut impl DevicePtrMut<T>,
) -> Result<()> {
    let shape = format!("J {m}×{p}");
    check_len("j_v: J", j.len(), m * p, &shape);
    check_len("j_v: v", v.len(), p, &shape);
    check_len("j_v: out", out.len(), m, &shape);
    if m == 0 {
        return Ok(());
    }
    let (jp, vp, op) = (rd(be, j), rd(be, v), wr(be, out));
    let (mi, pi) = (m as i64, p as i64);
    let blocks = m.min(65_535 * 16) as u32;
    launch!(
        be,
        Family::Jvec,
        "j_v",
        T,
        cfg1(blocks),
        [&jp, &vp, &op, &mi, &pi]
    );
    Ok(())
}

/// `out ← Jᵀ u` for a row-major `J` (`m × p`): threads over columns (16-byte loads when
/// `p` is a multiple of the packet width, else 8-byte ones for even `p` in f32), rows split in chunks whose partial sums are added
/// in a fixed order by a second kernel, so the result is deterministic.
///
/// # Panics
/// If `j.len() != m·p`, `u.len() != m` or `out.len() != p`.
///
/// # Errors
/// [`Error::Device`] if a kernel cannot be compiled or launched, or the workspace allocated.
#[track_caller]
pub fn jt_u<T: CudaReal>(
    be: &CudaBackend,
    j: &impl DevicePtr<T>,
    m: usize,
    p: usize,
    u: &impl DevicePtr<T>,
    out: &mut impl DevicePtrMut<T>,
) -> Result<()> {
    let shape = format!("J {m}×{p}");
    check_len("jt_u: J", j.len(), m * p, &shape);
    check_len("jt_u: u", u.len(), m, &shape);
    check_len("jt_u: out", out.len(), p, &shape);
    if p == 0 {
        return Ok(());
    }
    let jp = rd(be, j);
    let up = rd(be, u);
    let op = wr(be, out);
    // The widest access (16 bytes, then 8 bytes for f32, then one element) that every row
    // start allows: rows start at J + r·p, so p must be a multiple of it, and J and `out`
    // (written with the same width when there is one chunk) aligned to it.
    let es = std::mem::size_of::<T>();
    let vec = [16 / es, 8 / es, 1]
        .into_iter()
        .find(|&v| {
            let bytes = (v * es) as u64;
            v >= 1 && p.is_multiple_of(v) && jp.is_multiple_of(bytes) && op.is_multiple_of(bytes)
        })
        .unwrap_or(1);
    let col_threads = p / vec;
    // Enough (column, chunk) threads to keep ~2048 per SM busy.
    let target = be.sm_count() * 2048;
    let chunks = target.div_ceil(col_threads).clamp(1, m.max(1)).min(65_535);
    let rows_per = m.max(1).div_ceil(chunks);
    let chunks = m.max(1).div_ceil(rows_per);
    let cfg = LaunchConfig {
        grid_dim: (
            col_threads.div_ceil(THREADS as usize).clamp(1, 65_535) as u32,
            chunks as u32,
            1,
        ),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let (mi, pi, rpi, veci) = (m as i64, p as i64, rows_per as i64, vec as i32);
    if m == 0 {
        // Jᵀu of an empty J is zero: one "chunk" over no rows writes zeros.
        launch!(
            be,
            Family::Jvec,
            "jt_u_part",
            T,
            cfg,
            [&jp, &up, &op, &mi, &pi, &1i64, &veci]
        );
        return Ok(());
    }
    if chunks == 1 {
        launch!(
            be,
            Family::Jvec,
            "jt_u_part",
            T,
            cfg,
            [&jp, &up, &op, &mi, &pi, &rpi, &veci]
        );
        return Ok(());
    }
    let mut ws = be.alloc_uninit::<T>(chunks * p)?;
    let wsp = wr(be, &mut ws);
    launch!(
        be,
        Family::Jvec,
        "jt_u_part",
        T,
        cfg,
        [&jp, &up, &wsp, &mi, &pi, &rpi, &veci]
    );
    let ci = chunks as i64;
    launch!(
        be,
        Family::Jvec,
        "sum_chunks",
        T,
        cfg1(blocks_for(be, p)),
        [&wsp, &op, &ci, &pi]
    );
    Ok(())
}

/// The Gauss-Newton product `out ← Jᵀ(J v)`: [`j_v`] into a scratch vector of length `m`,
/// then [`jt_u`] (two passes over `J`; a row of `J` does not fit on chip for real networks).
///
/// # Panics
/// If `j.len() != m·p`, `v.len() != p` or `out.len() != p`.
///
/// # Errors
/// [`Error::Device`] if a kernel cannot be compiled or launched.
#[track_caller]
pub fn jt_j_v<T: CudaReal>(
    be: &CudaBackend,
    j: &impl DevicePtr<T>,
    m: usize,
    p: usize,
    v: &impl DevicePtr<T>,
    out: &mut impl DevicePtrMut<T>,
) -> Result<()> {
    let shape = format!("J {m}×{p}");
    check_len("jt_j_v: J", j.len(), m * p, &shape);
    check_len("jt_j_v: v", v.len(), p, &shape);
    check_len("jt_j_v: out", out.len(), p, &shape);
    if m == 0 {
        return be
            .stream()
            .memset_zeros(out)
            .map_err(dev_err("zeroing Jᵀ(Jv) of an empty J"));
    }
    let mut s = be.alloc_uninit::<T>(m)?;
    j_v(be, j, m, p, v, &mut s)?;
    jt_u(be, j, m, p, &s, out)
}

/// Writes the columns of one MLP layer into every row of a row-major Jacobian `J`
/// (`m × p`, `m = N·C`): `J[r, w_off + i·fan_in + k] = (s_w G[r,i]) A[r/C, k]`,
/// `J[r, w_off + fan_out·fan_in + i] = s_b G[r,i]`.
///
/// # Panics
/// If the buffers do not match `m`, `p`, `c`, `fan_in`, `fan_out`, or the layer's columns
/// run past `p`.
///
/// # Errors
/// [`Error::Device`] if the kernel cannot be compiled or launched.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn jacobian_layer<T: CudaReal>(
    be: &CudaBackend,
    j: &mut impl DevicePtrMut<T>,
    m: usize,
    p: usize,
    c: usize,
    a: &impl DevicePtr<T>,
    g: &impl DevicePtr<T>,
    fan_in: usize,
    fan_out: usize,
    w_off: usize,
    sw: T,
    sb: T,
) -> Result<()> {
    let shape = format!("J {m}×{p}, C={c}, layer {fan_in}→{fan_out} at {w_off}");
    check_len("jacobian_layer: J", j.len(), m * p, &shape);
    assert!(
        c > 0 && m.is_multiple_of(c),
        "jacobian_layer: m = {m} is not a multiple of C = {c}"
    );
    check_len("jacobian_layer: A", a.len(), (m / c) * fan_in, &shape);
    check_len("jacobian_layer: G", g.len(), m * fan_out, &shape);
    assert!(
        w_off + fan_out * (fan_in + 1) <= p,
        "jacobian_layer: layer columns {w_off}..{} run past p = {p}",
        w_off + fan_out * (fan_in + 1)
    );
    if m == 0 {
        return Ok(());
    }
    let width = 16 / std::mem::size_of::<T>();
    let len = fan_out * (fan_in + 1);
    let cfg = LaunchConfig {
        grid_dim: (
            (len / width + 1)
                .div_ceil(THREADS as usize)
                .clamp(1, 65_535) as u32,
            m.min(65_535) as u32,
            1,
        ),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let (jp, ap, gp) = (wr(be, j), rd(be, a), rd(be, g));
    let (mi, pi, ci) = (m as i64, p as i64, to_int("C", c)?);
    let (fi, fo, wo) = (
        to_int("fan_in", fan_in)?,
        to_int("fan_out", fan_out)?,
        w_off as i64,
    );
    launch!(
        be,
        Family::Jacobian,
        "jacobian_layer",
        T,
        cfg,
        [&jp, &mi, &pi, &ci, &ap, &gp, &fi, &fo, &wo, &sw, &sb]
    );
    Ok(())
}

/// The activation code of `kernels/activation.cu`.
fn act_code(act: Activation) -> i32 {
    match act {
        Activation::Identity => 0,
        Activation::Relu => 1,
        Activation::Tanh => 2,
        Activation::Gelu => 3,
        Activation::Softplus => 4,
    }
}

/// Fused bias and activation on a row-major `rows × cols` matrix:
/// `v = z + s_b b[col]`, `a ← φ(v)`, `d ← φ'(v)` (when given). `a` may be `z` itself only
/// through [`bias_act_in_place`].
///
/// # Panics
/// If a buffer does not have `rows·cols` elements or `b` does not have `cols`.
///
/// # Errors
/// [`Error::Device`] if the kernel cannot be compiled or launched.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn bias_act<T: CudaReal>(
    be: &CudaBackend,
    act: Activation,
    z: &impl DevicePtr<T>,
    b: Option<&dyn DevicePtrDyn<T>>,
    sb: T,
    rows: usize,
    cols: usize,
    a: &mut impl DevicePtrMut<T>,
    d: Option<&mut dyn DevicePtrMutDyn<T>>,
) -> Result<()> {
    let n = rows * cols;
    let shape = format!("{rows}×{cols}");
    check_len("bias_act: z", z.len(), n, &shape);
    check_len("bias_act: a", a.len(), n, &shape);
    let zp = rd(be, z);
    let ap = wr(be, a);
    launch_bias_act(be, act, zp, b, sb, rows, cols, ap, d, &shape)
}

/// [`bias_act`] writing `φ(z + s_b b)` over `z` itself.
///
/// # Panics
/// As [`bias_act`].
///
/// # Errors
/// As [`bias_act`].
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn bias_act_in_place<T: CudaReal>(
    be: &CudaBackend,
    act: Activation,
    z: &mut impl DevicePtrMut<T>,
    b: Option<&dyn DevicePtrDyn<T>>,
    sb: T,
    rows: usize,
    cols: usize,
    d: Option<&mut dyn DevicePtrMutDyn<T>>,
) -> Result<()> {
    let n = rows * cols;
    let shape = format!("{rows}×{cols}");
    check_len("bias_act_in_place: z", z.len(), n, &shape);
    let zp = wr(be, z);
    launch_bias_act(be, act, zp, b, sb, rows, cols, zp, d, &shape)
}

#[track_caller]
#[allow(clippy::too_many_arguments)]
fn launch_bias_act<T: CudaReal>(
    be: &CudaBackend,
    act: Activation,
    zp: u64,
    b: Option<&dyn DevicePtrDyn<T>>,
    sb: T,
    rows: usize,
    cols: usize,
    ap: u64,
    d: Option<&mut dyn DevicePtrMutDyn<T>>,
    shape: &str,
) -> Result<()> {
    let n = rows * cols;
    let bp = match b {
        Some(b) => {
            check_len("bias_act: b", b.dyn_len(), cols, shape);
            b.read_ptr(be)
        }
        None => 0,
    };
    let dp = match d {
        Some(d) => {
            check_len("bias_act: d", d.dyn_len(), n, shape);
            d.write_ptr(be)
        }
        None => 0,
    };
    if n == 0 {
        return Ok(());
    }
    let (ri, ci, ki) = (rows as i64, to_int("cols", cols)?, act_code(act));
    launch!(
        be,
        Family::Activation,
        "bias_act",
        T,
        cfg1(blocks_for(be, n)),
        [&zp, &bp, &sb, &ri, &ci, &ki, &ap, &dp]
    );
    Ok(())
}

/// A readable device buffer behind `dyn` (for optional arguments).
pub trait DevicePtrDyn<T> {
    /// Number of elements.
    fn dyn_len(&self) -> usize;
    /// The raw device address, for reading on the backend's stream.
    fn read_ptr(&self, be: &CudaBackend) -> u64;
}

/// A writable device buffer behind `dyn` (for optional arguments).
pub trait DevicePtrMutDyn<T> {
    /// Number of elements.
    fn dyn_len(&self) -> usize;
    /// The raw device address, for writing on the backend's stream.
    fn write_ptr(&mut self, be: &CudaBackend) -> u64;
}

impl<T, S: DevicePtr<T>> DevicePtrDyn<T> for S {
    fn dyn_len(&self) -> usize {
        self.len()
    }
    fn read_ptr(&self, be: &CudaBackend) -> u64 {
        rd(be, self)
    }
}

impl<T, S: DevicePtrMut<T>> DevicePtrMutDyn<T> for S {
    fn dyn_len(&self) -> usize {
        self.len()
    }
    fn write_ptr(&mut self, be: &CudaBackend) -> u64 {
        wr(be, self)
    }
}

/// JVP tangent update on a row-major `rows × cols` matrix:
/// `z ← (z + s_b b[col]) ⊙ d` (`b`, `d` optional).
///
/// # Panics
/// If `z` or `d` do not have `rows·cols` elements or `b` does not have `cols`.
///
/// # Errors
/// [`Error::Device`] if the kernel cannot be compiled or launched.
#[track_caller]
pub fn bias_mul<T: CudaReal>(
    be: &CudaBackend,
    z: &mut impl DevicePtrMut<T>,
    b: Option<&dyn DevicePtrDyn<T>>,
    sb: T,
    rows: usize,
    cols: usize,
    d: Option<&dyn DevicePtrDyn<T>>,
) -> Result<()> {
    let n = rows * cols;
    let shape = format!("{rows}×{cols}");
    check_len("bias_mul: z", z.len(), n, &shape);
    let bp = b.map_or(0, |b| {
        check_len("bias_mul: b", b.dyn_len(), cols, &shape);
        b.read_ptr(be)
    });
    let dp = d.map_or(0, |d| {
        check_len("bias_mul: d", d.dyn_len(), n, &shape);
        d.read_ptr(be)
    });
    if n == 0 {
        return Ok(());
    }
    let zp = wr(be, z);
    let (ri, ci) = (rows as i64, to_int("cols", cols)?);
    launch!(
        be,
        Family::Elementwise,
        "bias_mul",
        T,
        cfg1(blocks_for(be, n)),
        [&zp, &bp, &sb, &ri, &ci, &dp]
    );
    Ok(())
}

/// `G[r, i] ← G[r, i] · d[r / C, i]` for `G` (`m × h`) and `d` (`(m/C) × h`), row-major.
///
/// # Panics
/// If the lengths do not match the shape or `C` does not divide `m`.
///
/// # Errors
/// [`Error::Device`] if the kernel cannot be compiled or launched.
#[track_caller]
pub fn mul_bcast_rows<T: CudaReal>(
    be: &CudaBackend,
    g: &mut impl DevicePtrMut<T>,
    d: &impl DevicePtr<T>,
    m: usize,
    h: usize,
    c: usize,
) -> Result<()> {
    let shape = format!("G {m}×{h}, C={c}");
    assert!(
        c > 0 && m.is_multiple_of(c),
        "mul_bcast_rows: m = {m} is not a multiple of C = {c}"
    );
    check_len("mul_bcast_rows: G", g.len(), m * h, &shape);
    check_len("mul_bcast_rows: d", d.len(), (m / c) * h, &shape);
    if m * h == 0 {
        return Ok(());
    }
    let (gp, dp) = (wr(be, g), rd(be, d));
    let (mi, hi, ci) = (m as i64, to_int("h", h)?, to_int("C", c)?);
    launch!(
        be,
        Family::Elementwise,
        "mul_bcast_rows",
        T,
        cfg1(blocks_for(be, m * h)),
        [&gp, &dp, &mi, &hi, &ci]
    );
    Ok(())
}

/// `out[j] ← s Σ_r x[r, j]` for a row-major `rows × cols` matrix (fixed summation order).
///
/// # Panics
/// If `x.len() != rows·cols` or `out.len() != cols`.
///
/// # Errors
/// [`Error::Device`] if the kernel cannot be compiled or launched.
#[track_caller]
pub fn col_sum<T: CudaReal>(
    be: &CudaBackend,
    x: &impl DevicePtr<T>,
    rows: usize,
    cols: usize,
    s: T,
    out: &mut impl DevicePtrMut<T>,
) -> Result<()> {
    let shape = format!("{rows}×{cols}");
    check_len("col_sum: x", x.len(), rows * cols, &shape);
    check_len("col_sum: out", out.len(), cols, &shape);
    if cols == 0 {
        return Ok(());
    }
    let (xp, op) = (rd(be, x), wr(be, out));
    let (ri, ci) = (rows as i64, to_int("cols", cols)?);
    let cfg = LaunchConfig {
        grid_dim: (cols.div_ceil(32).min(65_535) as u32, 1, 1),
        block_dim: (32, 8, 1),
        shared_mem_bytes: 0,
    };
    launch!(
        be,
        Family::Elementwise,
        "col_sum",
        T,
        cfg,
        [&xp, &ri, &ci, &s, &op]
    );
    Ok(())
}

/// `G[r, c] ← [r mod C = c]` for `G` (`m × C`): the read-out layer's backprop signal.
///
/// # Panics
/// If `g.len() != m·C`.
///
/// # Errors
/// [`Error::Device`] if the kernel cannot be compiled or launched.
#[track_caller]
pub fn eye_rows<T: CudaReal>(
    be: &CudaBackend,
    g: &mut impl DevicePtrMut<T>,
    m: usize,
    c: usize,
) -> Result<()> {
    check_len("eye_rows: G", g.len(), m * c, &format!("{m}×{c}"));
    if m * c == 0 {
        return Ok(());
    }
    let gp = wr(be, g);
    let (mi, ci) = (m as i64, to_int("C", c)?);
    launch!(
        be,
        Family::Elementwise,
        "eye_rows",
        T,
        cfg1(blocks_for(be, m * c)),
        [&gp, &mi, &ci]
    );
    Ok(())
}

/// `out ← α x + β y`.
///
/// # Panics
/// If the three lengths differ.
///
/// # Errors
/// [`Error::Device`] if the kernel cannot be compiled or launched.
#[track_caller]
pub fn axpby<T: CudaReal>(
    be: &CudaBackend,
    alpha: T,
    x: &impl DevicePtr<T>,
    beta: T,
    y: &impl DevicePtr<T>,
    out: &mut impl DevicePtrMut<T>,
) -> Result<()> {
    let n = out.len();
    check_len("axpby: x", x.len(), n, &format!("n={n}"));
    check_len("axpby: y", y.len(), n, &format!("n={n}"));
    if n == 0 {
        return Ok(());
    }
    let (xp, yp, op) = (rd(be, x), rd(be, y), wr(be, out));
    let ni = n as i64;
    launch!(
        be,
        Family::Elementwise,
        "axpby",
        T,
        cfg1(blocks_for(be, n)),
        [&alpha, &xp, &beta, &yp, &op, &ni]
    );
    Ok(())
}

/// `A[i, i] ← A[i, i] + s` for a square `n × n` matrix.
///
/// # Panics
/// If `a.len() != n²`.
///
/// # Errors
/// [`Error::Device`] if the kernel cannot be compiled or launched.
#[track_caller]
pub fn add_diag<T: CudaReal>(
    be: &CudaBackend,
    a: &mut impl DevicePtrMut<T>,
    n: usize,
    s: T,
) -> Result<()> {
    check_len("add_diag: A", a.len(), n * n, &format!("{n}×{n}"));
    if n == 0 {
        return Ok(());
    }
    let ap = wr(be, a);
    let ni = n as i64;
    launch!(
        be,
        Family::Elementwise,
        "add_diag",
        T,
        cfg1(blocks_for(be, n)),
        [&ap, &ni, &s]
    );
    Ok(())
}

/// One layer of the structured NTK, `Θ ← [Θ +] GG ⊙ ((s_w² AA + s_b²) ⊗ 1_{C×C})`, with
/// `GG` (`m × m`, `None` for the read-out layer whose signals are `e_c`) and `AA` (`N × N`).
///
/// # Panics
/// If the lengths do not match `m`, `N = m / C`.
///
/// # Errors
/// [`Error::Device`] if the kernel cannot be compiled or launched.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn ntk_layer<T: CudaReal>(
    be: &CudaBackend,
    theta: &mut impl DevicePtrMut<T>,
    gg: Option<&dyn DevicePtrDyn<T>>,
    aa: &impl DevicePtr<T>,
    m: usize,
    c: usize,
    sw2: T,
    sb2: T,
    accumulate: bool,
) -> Result<()> {
    assert!(
        c > 0 && m.is_multiple_of(c),
        "ntk_layer: m = {m} is not a multiple of C = {c}"
    );
    let shape = format!("Θ {m}×{m}, C={c}");
    check_len("ntk_layer: Θ", theta.len(), m * m, &shape);
    check_len("ntk_layer: AA", aa.len(), (m / c) * (m / c), &shape);
    let ggp = gg.map_or(0, |g| {
        check_len("ntk_layer: GG", g.dyn_len(), m * m, &shape);
        g.read_ptr(be)
    });
    if m == 0 {
        return Ok(());
    }
    let (tp, ap) = (wr(be, theta), rd(be, aa));
    let (mi, ci, acc) = (m as i64, to_int("C", c)?, accumulate as i32);
    let cfg = LaunchConfig {
        grid_dim: (
            m.div_ceil(THREADS as usize).clamp(1, 65_535) as u32,
            m.min(65_535) as u32,
            1,
        ),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    launch!(
        be,
        Family::Ntk,
        "ntk_layer",
        T,
        cfg,
        [&tp, &ggp, &ap, &mi, &ci, &sw2, &sb2, &acc]
    );
    Ok(())
}

/// Row-major GEMM through cuBLAS: `C ← α op(A) op(B) + β C`, `C` is `M × N`, `op(A)` is
/// `M × K` (`A` stored `M × K`, or `K × M` when `trans_a`), `op(B)` is `K × N` (`B` stored
/// `K × N`, or `N × K` when `trans_b`); all dense row-major.
///
/// # Panics
/// If a buffer has fewer elements than its shape needs.
///
/// # Errors
/// [`Error::Device`] if a size exceeds cuBLAS's 32-bit range or cuBLAS fails.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn gemm_rm<T: CudaReal>(
    be: &CudaBackend,
    trans_a: bool,
    trans_b: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &impl DevicePtr<T>,
    b: &impl DevicePtr<T>,
    beta: T,
    c: &mut impl DevicePtrMut<T>,
) -> Result<()> {
    let shape = format!("C {m}×{n}, K={k}");
    check_len("gemm_rm: A", a.len(), m * k, &shape);
    check_len("gemm_rm: B", b.len(), k * n, &shape);
    check_len("gemm_rm: C", c.len(), m * n, &shape);
    if m == 0 || n == 0 {
        return Ok(());
    }
    // Row-major C = op(A) op(B) is column-major Cᵀ = op(B)ᵀ op(A)ᵀ; a row-major X is the
    // column-major Xᵀ with leading dimension = its row length.
    let lda = if trans_a { m } else { k };
    let ldb = if trans_b { k } else { n };
    let (ta, tb) = (
        if trans_b {
            Op::CUBLAS_OP_T
        } else {
            Op::CUBLAS_OP_N
        },
        if trans_a {
            Op::CUBLAS_OP_T
        } else {
            Op::CUBLAS_OP_N
        },
    );
    let (mi, ni, ki) = (to_int("N", n)?, to_int("M", m)?, to_int("K", k.max(1))?);
    let (ldb_i, lda_i, ldc_i) = (
        to_int("ldb", ldb.max(1))?,
        to_int("lda", lda.max(1))?,
        to_int("ldc", n)?,
    );
    be.context()
        .bind_to_thread()
        .map_err(dev_err("binding the CUDA context"))?;
    let (ap, bp, cp) = (rd(be, a), rd(be, b), wr(be, c));
    if k == 0 {
        // No product: C ← β C. cuBLAS requires k ≥ 1, so scale through a 1-deep product
        // with α = 0 on C itself (read only when α ≠ 0, which it is not).
        // SAFETY: the handle is bound to the backend's stream; with α = 0 neither A nor B
        // is read, and C (m·n elements, checked above) is read and written in place.
        let st = unsafe {
            T::gemm_raw(
                *be.blas().handle(),
                Op::CUBLAS_OP_N,
                Op::CUBLAS_OP_N,
                mi,
                ni,
                1,
                T::zero_impl(),
                cp,
                mi,
                cp,
                1,
                beta,
                cp,
                ldc_i,
            )
        };
        return st.result().map_err(dev_err("cuBLAS gemm (k = 0)"));
    }
    // SAFETY: the handle is bound to the backend's stream; A, B and C hold at least the
    // elements their shapes and leading dimensions address (checked above).
    let st = unsafe {
        T::gemm_raw(
            *be.blas().handle(),
            ta,
            tb,
            mi,
            ni,
            ki,
            alpha,
            bp,
            ldb_i,
            ap,
            lda_i,
            beta,
            cp,
            ldc_i,
        )
    };
    st.result().map_err(dev_err("cuBLAS gemm"))
}

/// cuBLAS `gemv` on a row-major `J` (`m × p`): `out ← J x` (`transpose = false`, `x` of length
/// `p`, `out` of length `m`) or `out ← Jᵀ x` (`transpose = true`). The baseline for the
/// crate's own [`j_v`] / [`jt_u`] kernels.
///
/// # Panics
/// If the lengths do not match the shape.
///
/// # Errors
/// [`Error::Device`] if a size exceeds cuBLAS's 32-bit range or cuBLAS fails.
#[track_caller]
pub fn gemv_rm<T: CudaReal>(
    be: &CudaBackend,
    transpose: bool,
    j: &impl DevicePtr<T>,
    m: usize,
    p: usize,
    x: &impl DevicePtr<T>,
    out: &mut impl DevicePtrMut<T>,
) -> Result<()> {
    let shape = format!("J {m}×{p}");
    let (nx, ny) = if transpose { (m, p) } else { (p, m) };
    check_len("gemv_rm: J", j.len(), m * p, &shape);
    check_len("gemv_rm: x", x.len(), nx, &shape);
    check_len("gemv_rm: out", out.len(), ny, &shape);
    if m == 0 || p == 0 {
        return Ok(());
    }
    let op = if transpose {
        Op::CUBLAS_OP_N
    } else {
        Op::CUBLAS_OP_T
    };
    let (pi, mi) = (to_int("p", p)?, to_int("m", m)?);
    be.context()
        .bind_to_thread()
        .map_err(dev_err("binding the CUDA context"))?;
    let (jp, xp, yp) = (rd(be, j), rd(be, x), wr(be, out));
    // SAFETY: column-major view of row-major J is Jᵀ (p × m, ld = p); lengths checked above;
    // the handle is bound to the backend's stream.
    let st = unsafe {
        T::gemv_raw(
            *be.blas().handle(),
            op,
            pi,
            mi,
            T::one_impl(),
            jp,
            pi,
            xp,
            T::zero_impl(),
            yp,
        )
    };
    st.result().map_err(dev_err("cuBLAS gemv"))
}
