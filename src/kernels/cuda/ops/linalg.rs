//! Dense linear algebra around the NTK: residuals, damping, the fused Hadamard assembly of
//! the structured NTK, and row-major GEMM through cuBLAS.

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

/// `x[i] ← v` for every element, with 16-byte streaming stores over the aligned body (one
/// grid-stride pass of at most 8 blocks per SM): the write-only bandwidth probe of the
/// benchmarks, and a fill for any buffer.
///
/// # Errors
/// [`Error::Device`] if the kernel cannot be compiled or launched.
pub fn fill<T: CudaReal>(be: &CudaBackend, x: &mut impl DevicePtrMut<T>, v: T) -> Result<()> {
    let n = x.len();
    if n == 0 {
        return Ok(());
    }
    let width = 16 / std::mem::size_of::<T>();
    let blocks = n
        .div_ceil(width)
        .div_ceil(THREADS as usize)
        .clamp(1, be.sm_count().max(1) * 8) as u32;
    let (xp, ni) = (wr(be, x), n as i64);
    launch!(
        be,
        Family::Elementwise,
        "fill",
        T,
        cfg1(blocks),
        [&xp, &ni, &v]
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

/// What [`ntk_fused`] does with the old contents of `Θ`.
#[derive(Clone, Copy)]
pub enum ThetaIn<'a, T> {
    /// Not read: `Θ` starts from zero (every element is written).
    Ignore,
    /// Added as it is.
    Add,
    /// `Θ` holds a signal Gram `G Gᵀ`: scaled element-wise by `s_w² AA + s_b²` (expanded
    /// over the `C × C` blocks) of this activation Gram `AA` and scales `(s_w², s_b²)`.
    Scale(&'a CudaSlice<T>, T, T),
}

/// Fused assembly of up to three terms of the structured NTK in one pass over `Θ`
/// (`m × m`, `N = m / C`), with `K(AA, s_w², s_b²)[r, s] = s_w² AA[r/C, s/C] + s_b²`:
///
/// `Θ ← T₀ + GG ⊙ K(AA_g) + [r mod C = s mod C] ⊙ K(AA_e)`,
///
/// where `T₀` is set by `theta_in`, `gg = (GG, AA_g, s_w², s_b²)` is a hidden layer's term and
/// `eye = (AA_e, s_w², s_b²)` the read-out layer's (signals `e_c`); either may be absent.
/// Reads each Gram once and writes `Θ` once.
///
/// # Panics
/// If a length does not match `m`, `N = m / C`, or `C` does not divide `m`.
///
/// # Errors
/// [`Error::Device`] if the kernel cannot be compiled or launched, or `m ≥ 2³¹`.
#[track_caller]
#[allow(clippy::type_complexity)]
pub fn ntk_fused<T: CudaReal>(
    be: &CudaBackend,
    theta: &mut impl DevicePtrMut<T>,
    theta_in: ThetaIn<'_, T>,
    gg: Option<(&CudaSlice<T>, &CudaSlice<T>, T, T)>,
    eye: Option<(&CudaSlice<T>, T, T)>,
    m: usize,
    c: usize,
) -> Result<()> {
    assert!(
        c > 0 && m.is_multiple_of(c),
        "ntk_fused: m = {m} is not a multiple of C = {c}"
    );
    let n = m / c;
    let shape = format!("Θ {m}×{m}, C={c}");
    check_len("ntk_fused: Θ", theta.len(), m * m, &shape);
    let zero = T::zero_impl();
    let (tmode, atp, swt, sbt) = match theta_in {
        ThetaIn::Ignore => (0i32, 0u64, zero, zero),
        ThetaIn::Add => (1, 0, zero, zero),
        ThetaIn::Scale(aa, sw2, sb2) => {
            check_len("ntk_fused: AA (Θ)", aa.len(), n * n, &shape);
            (2, rd(be, aa), sw2, sb2)
        }
    };
    let (ggp, agp, swg, sbg) = match gg {
        Some((g, aa, sw2, sb2)) => {
            check_len("ntk_fused: GG", g.len(), m * m, &shape);
            check_len("ntk_fused: AA (GG)", aa.len(), n * n, &shape);
            (rd(be, g), rd(be, aa), sw2, sb2)
        }
        None => (0, 0, zero, zero),
    };
    let (aep, swe, sbe) = match eye {
        Some((aa, sw2, sb2)) => {
            check_len("ntk_fused: AA (read-out)", aa.len(), n * n, &shape);
            (rd(be, aa), sw2, sb2)
        }
        None => (0, zero, zero),
    };
    to_int("m", m)?;
    if m == 0 {
        return Ok(());
    }
    let width = 16 / std::mem::size_of::<T>();
    let tp = wr(be, theta);
    let (mi, ci) = (m as i64, to_int("C", c)?);
    let cfg = LaunchConfig {
        grid_dim: (
            (m.div_ceil(width) + 1)
                .div_ceil(THREADS as usize)
                .clamp(1, 65_535) as u32,
            m.min(65_535) as u32,
            1,
        ),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    launch!(
        be,
        Family::Ntk,
        "ntk_fused",
        T,
        cfg,
        [
            &tp, &ggp, &atp, &agp, &aep, &mi, &ci, &swt, &sbt, &swg, &sbg, &swe, &sbe, &tmode
        ]
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
