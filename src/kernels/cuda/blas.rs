//! [`CudaReal`]: the `f32`/`f64` dispatch to cuBLAS and cuSOLVER, on raw device pointers.
//!
//! These are thin `unsafe` shims; the safe, shape-checked entry points are in
//! [`super::ops`]. All matrices here are column-major, as the libraries expect.

use crate::Real;
use cudarc::cublas::sys as blas;
use cudarc::cusolver::sys as solver;
use cudarc::driver::{DeviceRepr, ValidAsZeroBits};
use std::ffi::c_int;

/// Column-major transposition flag of cuBLAS.
pub(crate) type Op = blas::cublasOperation_t;

/// A scalar the CUDA backend computes in: `f32` or `f64` (sealed through [`Real`]).
///
/// The methods are raw library calls. Callers guarantee that every pointer is a live device
/// allocation of the backend's context large enough for the shape and leading dimension
/// given, and that the handle is bound to the stream that orders the buffers.
pub trait CudaReal: Real + DeviceRepr + ValidAsZeroBits {
    /// `C ← α op(A) op(B) + β C` (cuBLAS `?gemm`).
    ///
    /// # Safety
    /// See the trait documentation.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        h: blas::cublasHandle_t,
        ta: Op,
        tb: Op,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: Self,
        a: u64,
        lda: c_int,
        b: u64,
        ldb: c_int,
        beta: Self,
        c: u64,
        ldc: c_int,
    ) -> blas::cublasStatus_t;

    /// `y ← α op(A) x + β y` (cuBLAS `?gemv`, unit strides).
    ///
    /// # Safety
    /// See the trait documentation.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemv_raw(
        h: blas::cublasHandle_t,
        t: Op,
        m: c_int,
        n: c_int,
        alpha: Self,
        a: u64,
        lda: c_int,
        x: u64,
        beta: Self,
        y: u64,
    ) -> blas::cublasStatus_t;

    /// Workspace (in elements) of [`potrf_raw`](Self::potrf_raw), lower triangle.
    ///
    /// # Safety
    /// See the trait documentation.
    unsafe fn potrf_buffer_size_raw(
        h: solver::cusolverDnHandle_t,
        n: c_int,
        a: u64,
        lda: c_int,
        lwork: &mut c_int,
    ) -> solver::cusolverStatus_t;

    /// Cholesky factorisation `A = L Lᵀ` in place (lower triangle); `info` (device) is 0 on
    /// success, `i > 0` when the leading minor of order `i` is not positive definite.
    ///
    /// # Safety
    /// See the trait documentation.
    #[allow(clippy::too_many_arguments)]
    unsafe fn potrf_raw(
        h: solver::cusolverDnHandle_t,
        n: c_int,
        a: u64,
        lda: c_int,
        work: u64,
        lwork: c_int,
        info: u64,
    ) -> solver::cusolverStatus_t;

    /// Solves `L Lᵀ X = B` in place in `B` with the factor of [`potrf_raw`](Self::potrf_raw).
    ///
    /// # Safety
    /// See the trait documentation.
    #[allow(clippy::too_many_arguments)]
    unsafe fn potrs_raw(
        h: solver::cusolverDnHandle_t,
        n: c_int,
        nrhs: c_int,
        a: u64,
        lda: c_int,
        b: u64,
        ldb: c_int,
        info: u64,
    ) -> solver::cusolverStatus_t;
}

macro_rules! impl_cuda_real {
    ($t:ty, $gemm:ident, $gemv:ident, $bufsize:ident, $potrf:ident, $potrs:ident) => {
        impl CudaReal for $t {
            unsafe fn gemm_raw(
                h: blas::cublasHandle_t,
                ta: Op,
                tb: Op,
                m: c_int,
                n: c_int,
                k: c_int,
                alpha: Self,
                a: u64,
                lda: c_int,
                b: u64,
                ldb: c_int,
                beta: Self,
                c: u64,
                ldc: c_int,
            ) -> blas::cublasStatus_t {
                // SAFETY: forwarded from the caller (trait contract); α and β are host scalars
                // (the handle's default pointer mode).
                unsafe {
                    blas::$gemm(
                        h,
                        ta,
                        tb,
                        m,
                        n,
                        k,
                        &alpha,
                        a as *const $t,
                        lda,
                        b as *const $t,
                        ldb,
                        &beta,
                        c as *mut $t,
                        ldc,
                    )
                }
            }

            unsafe fn gemv_raw(
                h: blas::cublasHandle_t,
                t: Op,
                m: c_int,
                n: c_int,
                alpha: Self,
                a: u64,
                lda: c_int,
                x: u64,
                beta: Self,
                y: u64,
            ) -> blas::cublasStatus_t {
                // SAFETY: forwarded from the caller (trait contract).
                unsafe {
                    blas::$gemv(
                        h,
                        t,
                        m,
                        n,
                        &alpha,
                        a as *const $t,
                        lda,
                        x as *const $t,
                        1,
                        &beta,
                        y as *mut $t,
                        1,
                    )
                }
            }

            unsafe fn potrf_buffer_size_raw(
                h: solver::cusolverDnHandle_t,
                n: c_int,
                a: u64,
                lda: c_int,
                lwork: &mut c_int,
            ) -> solver::cusolverStatus_t {
                // SAFETY: forwarded from the caller (trait contract); `lwork` is a host int.
                unsafe {
                    solver::$bufsize(
                        h,
                        solver::cublasFillMode_t::CUBLAS_FILL_MODE_LOWER,
                        n,
                        a as *mut $t,
                        lda,
                        lwork,
                    )
                }
            }

            unsafe fn potrf_raw(
                h: solver::cusolverDnHandle_t,
                n: c_int,
                a: u64,
                lda: c_int,
                work: u64,
                lwork: c_int,
                info: u64,
            ) -> solver::cusolverStatus_t {
                // SAFETY: forwarded from the caller (trait contract).
                unsafe {
                    solver::$potrf(
                        h,
                        solver::cublasFillMode_t::CUBLAS_FILL_MODE_LOWER,
                        n,
                        a as *mut $t,
                        lda,
                        work as *mut $t,
                        lwork,
                        info as *mut c_int,
                    )
                }
            }

            unsafe fn potrs_raw(
                h: solver::cusolverDnHandle_t,
                n: c_int,
                nrhs: c_int,
                a: u64,
                lda: c_int,
                b: u64,
                ldb: c_int,
                info: u64,
            ) -> solver::cusolverStatus_t {
                // SAFETY: forwarded from the caller (trait contract).
                unsafe {
                    solver::$potrs(
                        h,
                        solver::cublasFillMode_t::CUBLAS_FILL_MODE_LOWER,
                        n,
                        nrhs,
                        a as *const $t,
                        lda,
                        b as *mut $t,
                        ldb,
                        info as *mut c_int,
                    )
                }
            }
        }
    };
}

impl_cuda_real!(
    f32,
    cublasSgemm_v2,
    cublasSgemv_v2,
    cusolverDnSpotrf_bufferSize,
    cusolverDnSpotrf,
    cusolverDnSpotrs
);
impl_cuda_real!(
    f64,
    cublasDgemm_v2,
    cublasDgemv_v2,
    cusolverDnDpotrf_bufferSize,
    cusolverDnDpotrf,
    cusolverDnDpotrs
);
