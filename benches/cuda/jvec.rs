//! `j_v`, `jt_u`, `jt_j_v` against cuBLAS gemv on the same `J`.

use crate::harness::*;
use cudarc::driver::CudaSlice;
use itlin::kernels::cuda::{CudaReal, cudarc, ops};

/// `j_v`, `jt_u` and `jt_j_v` on the default's `J`, each followed by cuBLAS gemv on the same
/// `J` and checked against it.
pub(crate) fn jvec_rows<T: CudaReal>(b: &mut Bench, ps: &Pass<T>, j: &CudaSlice<T>) -> Res<()> {
    let (n, m, p, dt, jb, cb) = (ps.n, ps.m, ps.p, ps.dt, ps.j_bytes, b.copy_gbs);
    let (vd, ud) = (&ps.vd, &ps.ud);
    let be = &b.be;
    let (mut out_m, mut ref_m) = (be.zeros::<T>(m)?, be.zeros::<T>(m)?);
    let (mut out_p, mut ref_p) = (be.zeros::<T>(p)?, be.zeros::<T>(p)?);
    let check = |b: &Bench, what: &str, got: &CudaSlice<T>, want: &CudaSlice<T>| {
        let d = (|| -> Res<f64> { Ok(max_rel(&b.be.download(want)?, &b.be.download(got)?)) })();
        print_check(what, d, T::TOLERANCE);
    };

    let t = b.time(
        0.3,
        || Ok(()),
        || Ok(ops::j_v(&b.be, j, m, p, vd, &mut out_m)?),
    )?;
    b.push("j_v", n, dt, t, jb, "GB/s", cb, "");
    let t = b.time(
        0.3,
        || Ok(()),
        || Ok(ops::gemv_rm(&b.be, false, j, m, p, vd, &mut ref_m)?),
    )?;
    b.push("cublas_gemv_j_v", n, dt, t, jb, "GB/s", cb, "baseline");
    check(b, "j_v vs cuBLAS gemv", &out_m, &ref_m);

    let t = b.time(
        0.3,
        || Ok(()),
        || Ok(ops::jt_u(&b.be, j, m, p, ud, &mut out_p)?),
    )?;
    b.push(
        "jt_u",
        n,
        dt,
        t,
        jb,
        "GB/s",
        cb,
        "deterministic: row chunks summed in a fixed order",
    );
    let t = b.time(
        0.3,
        || Ok(()),
        || Ok(ops::gemv_rm(&b.be, true, j, m, p, ud, &mut ref_p)?),
    )?;
    b.push("cublas_gemv_jt_u", n, dt, t, jb, "GB/s", cb, "baseline");
    check(b, "jt_u vs cuBLAS gemv", &out_p, &ref_p);

    let t = b.time(
        0.3,
        || Ok(()),
        || Ok(ops::jt_j_v(&b.be, j, m, p, vd, &mut out_p)?),
    )?;
    b.push("jt_j_v", n, dt, t, 2.0 * jb, "GB/s", cb, "2 passes over J");
    let t = b.time(
        0.3,
        || Ok(()),
        || {
            ops::gemv_rm(&b.be, false, j, m, p, vd, &mut ref_m)?;
            Ok(ops::gemv_rm(&b.be, true, j, m, p, &ref_m, &mut ref_p)?)
        },
    )?;
    b.push(
        "cublas_gemv_jt_j_v",
        n,
        dt,
        t,
        2.0 * jb,
        "GB/s",
        cb,
        "baseline, 2 gemv",
    );
    check(b, "jt_j_v vs cuBLAS gemv", &out_p, &ref_p);
    Ok(())
}
