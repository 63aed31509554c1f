//! The kernels of the device-resident first-order inner step (`kernels/optim.cu`): mini-batch
//! row gathers, the output gradient of the mean loss, a non-finite flag, and the SGD /
//! momentum / Nesterov / Adam updates with weight decay, in the CPU's arithmetic order
//! (`crate::train::OptState::update`, `crate::loss::loss_gradient`).

use super::*;
use crate::loss::Loss;

pub use crate::backend::optim::{AdamStep, SgdMode};

/// `out[i, j] ← src[idx[i], j]` for a row-major `src` of `src_rows × cols` and `B = idx.len()`
/// indices (`out` is `B × cols`). An index `≥ src_rows` reads nothing and yields a row of
/// NaN (so a bad index shows up in the non-finite flag, never as an out-of-bounds read).
///
/// # Panics
/// If `src.len() != src_rows·cols` or `out.len() != B·cols`.
///
/// # Errors
/// [`Error::Device`] if the kernel cannot be compiled or launched.
#[track_caller]
pub fn gather_rows<T: CudaReal>(
    be: &CudaBackend,
    src: &impl DevicePtr<T>,
    src_rows: usize,
    cols: usize,
    idx: &impl DevicePtr<u32>,
    out: &mut impl DevicePtrMut<T>,
) -> Result<()> {
    let b = idx.len();
    let shape = format!("src {src_rows}×{cols}, {b} indices");
    check_len("gather_rows: src", src.len(), src_rows * cols, &shape);
    check_len("gather_rows: out", out.len(), b * cols, &shape);
    let n = b * cols;
    if n == 0 {
        return Ok(());
    }
    let (sp, ip, op) = (rd(be, src), rd(be, idx), wr(be, out));
    let (sr, bi, ci) = (src_rows as i64, b as i64, to_int("cols", cols)?);
    launch!(
        be,
        Family::Optim,
        "gather_rows",
        T,
        cfg1(blocks_for(be, n)),
        [&sp, &sr, &ip, &bi, &ci, &op]
    );
    Ok(())
}

/// The output gradient of the mean loss over `B = rows` samples at `f = f0 + jv` (`jv`
/// optional; all row-major `B × C`), the same arithmetic as
/// [`crate::loss::loss_gradient`]:
/// MSE `g = ((f0 + jv) − y) · inv_b`; cross-entropy `g = T(p − y) · inv_b` with
/// `p = softmax(f_r)` of each row computed in f64. `inv_b` is `T(1/B)`.
///
/// # Panics
/// If a buffer does not have `B·C` elements.
///
/// # Errors
/// [`Error::Device`] if the kernel cannot be compiled or launched.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn loss_grad<T: CudaReal>(
    be: &CudaBackend,
    loss: Loss,
    f0: &impl DevicePtr<T>,
    jv: Option<&dyn DevicePtrDyn<T>>,
    y: &impl DevicePtr<T>,
    rows: usize,
    c: usize,
    inv_b: T,
    g: &mut impl DevicePtrMut<T>,
) -> Result<()> {
    let n = rows * c;
    let shape = format!("{rows}×{c}");
    check_len("loss_grad: f0", f0.len(), n, &shape);
    check_len("loss_grad: y", y.len(), n, &shape);
    check_len("loss_grad: g", g.len(), n, &shape);
    let jp = jv.map_or(0, |j| {
        check_len("loss_grad: jv", j.dyn_len(), n, &shape);
        j.read_ptr(be)
    });
    if n == 0 {
        return Ok(());
    }
    let (fp, yp, gp) = (rd(be, f0), rd(be, y), wr(be, g));
    let kind: i32 = match loss {
        Loss::Mse => 0,
        Loss::CrossEntropy => 1,
    };
    let items = if kind == 0 { n } else { rows };
    let (ri, ci) = (rows as i64, to_int("C", c)?);
    launch!(
        be,
        Family::Optim,
        "loss_grad",
        T,
        cfg1(blocks_for(be, items)),
        [&fp, &jp, &yp, &ri, &ci, &kind, &inv_b, &gp]
    );
    Ok(())
}

/// `flag ← flag | 1` when any element of `x` is NaN or infinite (the flag is not cleared:
/// zero it first for a fresh test).
///
/// # Panics
/// If `flag` does not hold exactly one element.
///
/// # Errors
/// [`Error::Device`] if the kernel cannot be compiled or launched.
#[track_caller]
pub fn nonfinite<T: CudaReal>(
    be: &CudaBackend,
    x: &impl DevicePtr<T>,
    flag: &mut impl DevicePtrMut<u32>,
) -> Result<()> {
    check_len("nonfinite: flag", flag.len(), 1, "1");
    let n = x.len();
    if n == 0 {
        return Ok(());
    }
    let (xp, fp) = (rd(be, x), wr(be, flag));
    let ni = n as i64;
    launch!(
        be,
        Family::Optim,
        "nonfinite",
        T,
        cfg1(blocks_for(be, n)),
        [&xp, &ni, &fp]
    );
    Ok(())
}

/// One SGD update of `θ` (length `P`) with gradient `g`, unless `flag ≠ 0` (then nothing is
/// written): `g ← g + wd·θ` (one fma, as the CPU's `axpy`) when `wd` is given, then
/// [`SgdMode`]'s rule; plain SGD is `θ ← fma(−η, g, θ)`, the momentum rules round every
/// operation as the CPU loop does. `m` is the velocity (needed unless `Plain`).
///
/// # Panics
/// If `g` or `m` do not have `P` elements, `m` is missing for a momentum mode, or `flag`
/// does not hold one element.
///
/// # Errors
/// [`Error::Device`] if the kernel cannot be compiled or launched.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn sgd_update<T: CudaReal>(
    be: &CudaBackend,
    theta: &mut impl DevicePtrMut<T>,
    grad: &impl DevicePtr<T>,
    m: Option<&mut dyn DevicePtrMutDyn<T>>,
    mode: SgdMode,
    wd: Option<T>,
    eta: T,
    mu: T,
    flag: &impl DevicePtr<u32>,
) -> Result<()> {
    let p = theta.len();
    let shape = format!("P={p}");
    check_len("sgd_update: grad", grad.len(), p, &shape);
    check_len("sgd_update: flag", flag.len(), 1, "1");
    assert!(
        mode == SgdMode::Plain || m.is_some(),
        "sgd_update: {mode:?} needs the velocity buffer"
    );
    let mp = match m {
        Some(m) => {
            check_len("sgd_update: velocity", m.dyn_len(), p, &shape);
            m.write_ptr(be)
        }
        None => 0,
    };
    if p == 0 {
        return Ok(());
    }
    let (tp, gp, fp) = (wr(be, theta), rd(be, grad), rd(be, flag));
    let mode_i: i32 = match mode {
        SgdMode::Plain => 0,
        SgdMode::Momentum => 1,
        SgdMode::Nesterov => 2,
    };
    let (use_wd, wd) = (wd.is_some() as i32, wd.unwrap_or(T::zero_impl()));
    let pi = p as i64;
    launch!(
        be,
        Family::Optim,
        "sgd_update",
        T,
        cfg1(blocks_for(be, p)),
        [&tp, &gp, &mp, &pi, &mode_i, &use_wd, &wd, &eta, &mu, &fp]
    );
    Ok(())
}

/// One Adam update of `θ` (length `P`) with gradient `g` and moments `m`, `v`, unless
/// `flag ≠ 0` (then nothing is written): `g ← g + wd·θ` (fma) when `wd` is given, then
/// `m ← β₁m + (1−β₁)g`, `v ← β₂v + ((1−β₂)g)g`, `θ ← θ − (step·m) / (√(v·inv_bc2) + ε)`,
/// every operation rounded as in the CPU loop ([`AdamStep`] holds the scalars).
///
/// # Panics
/// If `g`, `m` or `v` do not have `P` elements or `flag` does not hold one element.
///
/// # Errors
/// [`Error::Device`] if the kernel cannot be compiled or launched.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn adam_update<T: CudaReal>(
    be: &CudaBackend,
    theta: &mut impl DevicePtrMut<T>,
    grad: &impl DevicePtr<T>,
    m: &mut impl DevicePtrMut<T>,
    v: &mut impl DevicePtrMut<T>,
    wd: Option<T>,
    s: AdamStep<T>,
    flag: &impl DevicePtr<u32>,
) -> Result<()> {
    let p = theta.len();
    let shape = format!("P={p}");
    check_len("adam_update: grad", grad.len(), p, &shape);
    check_len("adam_update: m", m.len(), p, &shape);
    check_len("adam_update: v", v.len(), p, &shape);
    check_len("adam_update: flag", flag.len(), 1, "1");
    if p == 0 {
        return Ok(());
    }
    let (tp, gp, mp, vp, fp) = (
        wr(be, theta),
        rd(be, grad),
        wr(be, m),
        wr(be, v),
        rd(be, flag),
    );
    let (use_wd, wd) = (wd.is_some() as i32, wd.unwrap_or(T::zero_impl()));
    let pi = p as i64;
    launch!(
        be,
        Family::Optim,
        "adam_update",
        T,
        cfg1(blocks_for(be, p)),
        [
            &tp, &gp, &mp, &vp, &pi, &use_wd, &wd, &s.b1, &s.b2, &s.one_b1, &s.one_b2, &s.step,
            &s.inv_bc2, &s.eps, &fp
        ]
    );
    Ok(())
}
