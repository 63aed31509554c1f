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
