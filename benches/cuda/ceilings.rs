//! The ceilings: copy and write-only bandwidth, cuBLAS GEMM rate.

use crate::harness::*;
use cudarc::driver::{CudaSlice, CudaView};
use itlin::kernels::cuda::{CudaReal, cudarc, ops};

/// Copy bandwidth (D2D memcpy of a real Jacobian, bytes read + written), the write-only
/// ceilings (memset, fill kernel) and cuBLAS GEMM rate (8192 × 8192 × 4096 with operands
/// taken from the Jacobian).
pub(crate) fn ceilings<T: CudaReal>(b: &mut Bench, j: &CudaSlice<T>) -> Res<()> {
    let dt = T::NAME;
    let len = j.len().min((4usize << 30) / std::mem::size_of::<T>());
    let src: CudaView<'_, T> = j.slice(0..len);
    let mut dst = b.be.zeros::<T>(len)?;
    let bytes = 2.0 * (len * std::mem::size_of::<T>()) as f64;
    let t = b.time(
        0.3,
        || Ok(()),
        || Ok(b.be.stream().memcpy_dtod(&src, &mut dst)?),
    )?;
    if b.copy_gbs == 0.0 {
        b.copy_gbs = bytes / t / 1e9;
    }
    b.push(
        "copy_d2d",
        0,
        dt,
        t,
        bytes,
        "GB/s",
        b.copy_gbs,
        "read + write; the bandwidth ceiling",
    );
    // Write-only ceilings on the same buffer: the driver's memset and our 16-byte streaming
    // store kernel (the store the Jacobian kernels use). A Jacobian assembly writes J and
    // reads almost nothing, so these, not the copy, bound it.
    let wbytes = (len * std::mem::size_of::<T>()) as f64;
    let t = b.time(0.3, || Ok(()), || Ok(b.be.stream().memset_zeros(&mut dst)?))?;
    b.write_gbs = b.write_gbs.max(wbytes / t / 1e9);
    let cb = b.copy_gbs;
    b.push(
        "write_memset",
        0,
        dt,
        t,
        wbytes,
        "GB/s",
        cb,
        "cuMemsetD8, write only",
    );
    let t = b.time(
        0.3,
        || Ok(()),
        || Ok(ops::fill(&b.be, &mut dst, T::one_impl())?),
    )?;
    b.write_gbs = b.write_gbs.max(wbytes / t / 1e9);
    b.push(
        "write_fill",
        0,
        dt,
        t,
        wbytes,
        "GB/s",
        cb,
        "fill kernel, 16-byte st.global.cs, write only",
    );
    drop(dst);
    let (mm, nn, kk) = (8192usize, 8192usize, 4096usize);
    if j.len() >= mm * kk + kk * nn {
        let a = j.slice(0..mm * kk);
        let bb = j.slice(mm * kk..mm * kk + kk * nn);
        let mut cc = b.be.zeros::<T>(mm * nn)?;
        let t = b.time(
            0.3,
            || Ok(()),
            || {
                Ok(ops::gemm_rm(
                    &b.be,
                    false,
                    false,
                    mm,
                    nn,
                    kk,
                    T::one_impl(),
                    &a,
                    &bb,
                    T::zero_impl(),
                    &mut cc,
                )?)
            },
        )?;
        let flops = 2.0 * (mm * nn * kk) as f64;
        b.gemm_gflops[dtype_index::<T>()] = flops / t / 1e9;
        let ceiling = b.gemm_gflops[dtype_index::<T>()];
        b.push(
            "cublas_gemm",
            mm,
            dt,
            t,
            flops,
            "GFLOP/s",
            ceiling,
            "8192x8192x4096; the GEMM ceiling",
        );
    }
    Ok(())
}
