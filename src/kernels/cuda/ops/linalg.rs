//! Dense linear algebra around the NTK: residuals, damping, the Hadamard assembly of the
//! structured NTK, and row-major GEMM through cuBLAS.

use super::*;

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
