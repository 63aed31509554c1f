//! The bias gradient's column sum, two stages against one.

use crate::harness::*;
use itlin::kernels::cuda::{CudaReal, ops};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The bias gradient's column sum of the widest layer (N × 128): `col_sum` (two stages above
/// `ops::COL_SUM_ONE_STAGE_ROWS` rows) and `col_sum_one_stage`, checked against it.
pub(crate) fn col_sum_rows<T: CudaReal>(b: &mut Bench, ps: &Pass<T>) -> Res<()> {
    let (n, dt, cb) = (ps.n, ps.dt, b.copy_gbs);
    let cols = 128;
    let mut rng = ChaCha8Rng::seed_from_u64(n as u64 + 1);
    let xs = b.be.upload(&rand_host::<T>(&mut rng, n * cols))?;
    let (mut o_def, mut o_one) = (b.be.zeros::<T>(cols)?, b.be.zeros::<T>(cols)?);
    let bytes = (n * cols * std::mem::size_of::<T>()) as f64;
    let t_def = b.time(
        0.1,
        || Ok(()),
        || {
            Ok(ops::col_sum(
                &b.be,
                &xs,
                n,
                cols,
                T::one_impl(),
                &mut o_def,
            )?)
        },
    )?;
    let stages = if n > ops::COL_SUM_ONE_STAGE_ROWS {
        "two stages"
    } else {
        "one stage"
    };
    b.push(
        "col_sum",
        n,
        dt,
        t_def,
        bytes,
        "GB/s",
        cb,
        format!("N x {cols}, {stages}"),
    );
    let timed = b.time(
        0.1,
        || Ok(()),
        || {
            Ok(ops::col_sum_one_stage(
                &b.be,
                &xs,
                n,
                cols,
                T::one_impl(),
                &mut o_one,
            )?)
        },
    );
    let note = |t: f64| {
        format!(
            "N x {cols}, one block per 32 columns; default/this = {:.2}",
            t_def / t
        )
    };
    if b.report("col_sum_one_stage", n, dt, timed, bytes, "GB/s", cb, note)
        .is_some()
    {
        let d =
            (|| -> Res<f64> { Ok(max_rel(&b.be.download(&o_def)?, &b.be.download(&o_one)?)) })();
        print_check("col_sum_one_stage vs col_sum", d, T::TOLERANCE);
    }
    Ok(())
}
