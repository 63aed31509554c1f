//! The MLP layer kernels: Jacobian assembly, fused bias + activation, tangent and signal
//! products, bias gradients, the read-out signal.

use super::*;

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

/// Most layers [`jacobian_all`] takes in one launch (`ITLIN_JAC_MAX_LAYERS` in
/// `kernels/jacobian.cu`).
pub const JACOBIAN_MAX_LAYERS: usize = 8;

/// One layer's part of the Jacobian for [`jacobian_all`]: its input `A` (`N × fan_in`), its
/// backprop signals `G` (`m × fan_out`) and its weight and bias scales.
pub struct JacobianLayer<'a, T> {
    /// Layer input `A_{l−1}` (row-major `N × fan_in`).
    pub a: &'a dyn DevicePtrDyn<T>,
    /// Backprop signals `G_l` (row-major `m × fan_out`).
    pub g: &'a dyn DevicePtrDyn<T>,
    /// Inputs of the layer.
    pub fan_in: usize,
    /// Outputs of the layer.
    pub fan_out: usize,
    /// Weight scale `s_w`.
    pub sw: T,
    /// Bias scale `s_b`.
    pub sb: T,
}

/// `struct JacLayer<T>` of `kernels/jacobian.cu` (same field order, C layout).
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct JacLayerRaw<T> {
    pub(super) a: u64,
    pub(super) g: u64,
    pub(super) w_off: i64,
    pub(super) fan_in: c_int,
    pub(super) fan_out: c_int,
    pub(super) sw: T,
    pub(super) sb: T,
}

/// `struct JacLayers<T>` of `kernels/jacobian.cu`, passed by value as a kernel parameter.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct JacLayersRaw<T> {
    pub(super) l: [JacLayerRaw<T>; JACOBIAN_MAX_LAYERS],
    count: c_int,
    c: c_int,
}

// SAFETY: plain C-layout data (integers, device addresses, f32/f64), matching the kernel's
// parameter struct field for field; no host pointers.
unsafe impl<T: CudaReal> cudarc::driver::DeviceRepr for JacLayersRaw<T> {}

/// The whole explicit Jacobian `J` (row-major `m × p`, `m = N·C`) in one launch: layer `l`
/// fills the columns `[w_l, w_l + fan_out·(fan_in + 1))` of every row as in
/// [`jacobian_layer`], where the layers tile `0..p` in order (`w_0 = 0`). Every element of `J`
/// is written.
///
/// # Panics
/// If there are no layers or more than [`JACOBIAN_MAX_LAYERS`], the layers' columns do not
/// add up to `p`, or a buffer does not match `m`, `p`, `c` and its layer's shape.
///
/// # Errors
/// [`Error::Device`] if the kernel cannot be compiled or launched, or a size exceeds 32 bits.
#[track_caller]
pub fn jacobian_all<T: CudaReal>(
    be: &CudaBackend,
    j: &mut impl DevicePtrMut<T>,
    m: usize,
    p: usize,
    c: usize,
    layers: &[JacobianLayer<'_, T>],
) -> Result<()> {
    let raw = jac_table(j.len(), m, p, c, layers, be, "jacobian_all")?;
    if m == 0 {
        return Ok(());
    }
    let width = 16 / std::mem::size_of::<T>();
    let packets = (m * p).div_ceil(width);
    let cfg = LaunchConfig {
        grid_dim: (
            packets
                .div_ceil(THREADS as usize)
                .clamp(1, be.sm_count().max(1) * 8) as u32,
            1,
            1,
        ),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let jp = wr(be, j);
    let (mi, pi) = (m as i64, p as i64);
    launch!(
        be,
        Family::Jacobian,
        "jacobian_all",
        T,
        cfg,
        [&jp, &mi, &pi, &raw]
    );
    Ok(())
}

/// Checks the shapes of [`jacobian_all`] / `jacobian_stripes` (panicking as they document) and
/// builds the kernels' layer table.
#[track_caller]
pub(super) fn jac_table<T: CudaReal>(
    j_len: usize,
    m: usize,
    p: usize,
    c: usize,
    layers: &[JacobianLayer<'_, T>],
    be: &CudaBackend,
    name: &str,
) -> Result<JacLayersRaw<T>> {
    assert!(
        !layers.is_empty() && layers.len() <= JACOBIAN_MAX_LAYERS,
        "{name}: {} layers, expected 1..={JACOBIAN_MAX_LAYERS}",
        layers.len()
    );
    let shape = format!("J {m}×{p}, C={c}");
    check_len(&format!("{name}: J"), j_len, m * p, &shape);
    assert!(
        c > 0 && m.is_multiple_of(c),
        "{name}: m = {m} is not a multiple of C = {c}"
    );
    let empty = JacLayerRaw {
        a: 0,
        g: 0,
        w_off: 0,
        fan_in: 0,
        fan_out: 0,
        sw: T::zero_impl(),
        sb: T::zero_impl(),
    };
    let mut raw = JacLayersRaw {
        l: [empty; JACOBIAN_MAX_LAYERS],
        count: 0,
        c: 0,
    };
    let mut w_off = 0usize;
    for (l, layer) in layers.iter().enumerate() {
        check_len(
            &format!("{name}: A"),
            layer.a.dyn_len(),
            (m / c) * layer.fan_in,
            &shape,
        );
        check_len(
            &format!("{name}: G"),
            layer.g.dyn_len(),
            m * layer.fan_out,
            &shape,
        );
        raw.l[l] = JacLayerRaw {
            a: layer.a.read_ptr(be),
            g: layer.g.read_ptr(be),
            w_off: w_off as i64,
            fan_in: to_int("fan_in", layer.fan_in)?,
            fan_out: to_int("fan_out", layer.fan_out)?,
            sw: layer.sw,
            sb: layer.sb,
        };
        w_off += layer.fan_out * (layer.fan_in + 1);
    }
    assert_eq!(
        w_off, p,
        "{name}: the layers cover {w_off} columns, J has p = {p}"
    );
    raw.count = layers.len() as c_int;
    raw.c = to_int("C", c)?;
    to_int("p", p)?;
    to_int("m", m)?;
    Ok(raw)
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

/// Above this many rows [`col_sum`] runs in two stages.
pub const COL_SUM_ONE_STAGE_ROWS: usize = 256;

/// `out[j] ← s Σ_r x[r, j]` for a row-major `rows × cols` matrix (fixed summation order, so
/// the result is deterministic; above [`COL_SUM_ONE_STAGE_ROWS`] rows the sum runs in two
/// stages over row blocks).
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
    let ci = to_int("cols", cols)?;
    // Many rows: two stages (warps over row blocks of ~√rows rows into a workspace, then a
    // fixed-order sum per column), so that the grid fills the device when `cols` is small
    // (a bias gradient has 10-128 columns and N rows). Few rows: the one-block-per-32-columns
    // kernel.
    if rows > COL_SUM_ONE_STAGE_ROWS {
        let rows_per = rows.isqrt().next_multiple_of(4).max(32);
        let parts = rows.div_ceil(rows_per);
        // Every element of the workspace is written by stage 1 (each part, each column).
        let mut ws = be.alloc_uninit::<T>(parts * cols)?;
        let (xp, wp) = (rd(be, x), wr(be, &mut ws));
        let (ri, rpi) = (rows as i64, rows_per as i64);
        let warps_per_block = (THREADS / 32) as usize;
        let cfg = LaunchConfig {
            grid_dim: (
                cols.div_ceil(32).min(65_535) as u32,
                parts.div_ceil(warps_per_block).min(65_535) as u32,
                1,
            ),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        launch!(
            be,
            Family::Elementwise,
            "col_sum_part",
            T,
            cfg,
            [&xp, &ri, &ci, &rpi, &wp]
        );
        let (wp, op) = (rd(be, &ws), wr(be, out));
        let pi = parts as i64;
        launch!(
            be,
            Family::Elementwise,
            "col_sum_final",
            T,
            cfg1(blocks_for(be, cols)),
            [&wp, &pi, &ci, &s, &op]
        );
        return Ok(());
    }
    col_sum_one_stage(be, x, rows, cols, s, out)
}

/// [`col_sum`] by one kernel whatever the number of rows: one block per 32 columns (the first
/// version; slow for many rows and few columns, kept for comparison).
///
/// # Panics
/// If `x.len() != rows·cols` or `out.len() != cols`.
///
/// # Errors
/// [`Error::Device`] if the kernel cannot be compiled or launched.
#[track_caller]
pub fn col_sum_one_stage<T: CudaReal>(
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
    let ci = to_int("cols", cols)?;
    let (xp, op) = (rd(be, x), wr(be, out));
    let ri = rows as i64;
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
