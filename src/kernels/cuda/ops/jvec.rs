//! Products with an explicit row-major Jacobian: `J v`, `Jᵀ u`, `Jᵀ(J v)`, and the cuBLAS
//! `gemv` baseline on the same `J`.

use super::*;

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

/// `out ← Jᵀ u` for a row-major `J` (`m × p`): threads over columns (16-byte loads with two
/// rows in flight when `p` is a multiple of the packet width, else 8-byte ones with four rows
/// in flight for even `p` in f32), rows split in chunks whose partial sums are added in a
/// fixed order by a second kernel, so the result is deterministic.
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
