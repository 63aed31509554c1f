//! Jacobian assembly: the default, the kept alternatives and the v4 block-shape sweep, each
//! checked against the default through `J v` on a NaN-poisoned `J`.

use crate::harness::*;
use cudarc::driver::CudaSlice;
use itlin::Mlp;
use itlin::kernels::cuda::{CudaBackend, CudaReal, DeviceSignals, cudarc, mlp as dmlp, ops};

/// A Jacobian writer other than the default.
pub(crate) enum Writer {
    /// One launch per layer (the fallback above 8 layers).
    PerLayer,
    /// One flat launch over all of `J` (the fallback for shapes the stripes do not take).
    Flat,
    /// Weight stripes + gaps with these launch options.
    Stripes(ops::StripeOpts),
}

impl Writer {
    pub(crate) fn write<T: CudaReal>(
        &self,
        be: &CudaBackend,
        mlp: &Mlp,
        sig: &DeviceSignals<T>,
        j: &mut CudaSlice<T>,
    ) -> Res<()> {
        match self {
            Writer::PerLayer => dmlp::write_jacobian_per_layer(be, mlp, sig, j)?,
            Writer::Flat => dmlp::write_jacobian_flat(be, mlp, sig, j)?,
            Writer::Stripes(o) => dmlp::write_jacobian_stripes(be, mlp, sig, j, *o)?,
        }
        Ok(())
    }
}

/// `J v` of the Jacobian that `write` leaves in `j` after `j` was filled with NaN.
pub(crate) fn poisoned_jv<T: CudaReal>(
    b: &Bench,
    ps: &Pass<T>,
    j: &mut CudaSlice<T>,
    write: impl FnOnce(&mut CudaSlice<T>) -> Res<()>,
) -> Res<Vec<T>> {
    ops::fill(&b.be, j, T::from_f64(f64::NAN))?;
    write(j)?;
    let mut y = b.be.zeros::<T>(ps.m)?;
    ops::j_v(&b.be, j, ps.m, ps.p, &ps.vd, &mut y)?;
    Ok(b.be.download(&y)?)
}

/// `jacobian_write` (the default), `jacobian` (signals + write), the kept alternatives and
/// the v4 block-shape sweep, each checked against the default through `J v`.
pub(crate) fn jacobian_rows<T: CudaReal>(
    b: &mut Bench,
    ps: &Pass<T>,
    sig: &DeviceSignals<T>,
    t_sig: Option<f64>,
    j: &mut CudaSlice<T>,
) -> Res<()> {
    let (mlp, n, m, p, dt, jb) = (&ps.mlp, ps.n, ps.m, ps.p, ps.dt, ps.j_bytes);
    let (cb, wc) = (b.copy_gbs, b.write_gbs);
    let of_write = move |t: f64| {
        if wc > 0.0 {
            format!(
                "{:.2} of the write-only ceiling {wc:.0} GB/s",
                jb / t / 1e9 / wc
            )
        } else {
            "no write-only ceiling measured".to_string()
        }
    };
    let dims: Vec<(usize, usize)> = mlp.layers().iter().map(|l| (l.fan_in, l.fan_out)).collect();
    let v4_applies = ops::jacobian_v4_applies::<T>(m, &dims);
    let t_def = b.time(
        0.3,
        || Ok(()),
        || Ok(dmlp::write_jacobian(&b.be, mlp, sig, &mut *j)?),
    )?;
    b.push(
        "jacobian_write",
        n,
        dt,
        t_def,
        jb,
        "GB/s",
        cb,
        format!(
            "J {m}x{p}, {}; {}",
            if v4_applies {
                "v4 (weight stripes + gaps)"
            } else {
                "v4 does not apply: v2"
            },
            of_write(t_def)
        ),
    );
    if let Some(t_sig) = t_sig {
        b.push(
            "jacobian",
            n,
            dt,
            t_def + t_sig,
            jb,
            "GB/s",
            cb,
            "signals + write",
        );
    }
    // The reference: the default's J v, from a NaN-poisoned J (a missed element shows as NaN).
    let y_ref = poisoned_jv(b, ps, j, |j| Ok(dmlp::write_jacobian(&b.be, mlp, sig, j)?))?;
    if y_ref.iter().any(|y| !y.to_f64().is_finite()) {
        println!("jacobian_write: J v not finite after writing a NaN-poisoned J  MISMATCH");
    }

    let o4 = |rows: usize, kernels: ops::StripeKernels| {
        Writer::Stripes(ops::StripeOpts {
            weight_rows_per_block: rows,
            min_rows_at_once: 0,
            kernels,
        })
    };
    let both = ops::StripeKernels::Both;
    let variants = [
        (
            "jacobian_write_per_layer",
            Writer::PerLayer,
            "one launch per layer (the fallback above 8 layers)",
        ),
        (
            "jacobian_write_flat",
            Writer::Flat,
            "one flat launch, 16-byte streaming stores (the fallback for other fan_in)",
        ),
        (
            "jacobian_write_v4_w2",
            o4(2, both),
            "2 weight rows per block",
        ),
        (
            "jacobian_write_v4_w4",
            o4(4, both),
            "4 weight rows per block",
        ),
        (
            "jacobian_write_v4_w8",
            o4(8, both),
            "8 weight rows per block",
        ),
        (
            "jacobian_write_v4_w16",
            o4(16, both),
            "16 weight rows per block",
        ),
        (
            "jacobian_write_v4_w32",
            o4(32, both),
            "32 weight rows per block",
        ),
        (
            "jacobian_write_v4_all",
            o4(1 << 20, both),
            "all weight rows per block",
        ),
        (
            "jacobian_write_v4_stripes",
            o4(0, ops::StripeKernels::StripesOnly),
            "the default's stripes kernels alone",
        ),
        (
            "jacobian_write_v4_gaps",
            o4(0, ops::StripeKernels::GapsOnly),
            "the default's gaps kernel alone",
        ),
    ];
    for (name, w, what) in variants {
        let fell_back = matches!(w, Writer::Stripes(_)) && !v4_applies;
        let timed = b.time(0.3, || Ok(()), || w.write(&b.be, mlp, sig, &mut *j));
        let note = |t: f64| {
            format!(
                "{what}{}; default/this = {:.2}; {}",
                if fell_back { " (fell back to v2)" } else { "" },
                t_def / t,
                of_write(t)
            )
        };
        if b.report(name, n, dt, timed, jb, "GB/s", cb, note).is_none() {
            continue;
        }
        // A kernel timed alone leaves part of J unwritten: nothing to check.
        if matches!(&w, Writer::Stripes(o) if o.kernels != both) {
            continue;
        }
        let d = poisoned_jv(b, ps, j, |j| w.write(&b.be, mlp, sig, j)).map(|y| max_rel(&y_ref, &y));
        print_check(&format!("jacobian {name} vs jacobian_write (J v)"), d, 0.0);
    }
    Ok(())
}
