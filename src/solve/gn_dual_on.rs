//! The dual damped Gauss-Newton step of an [`Mlp`] for the mean MSE, written once over the
//! [`Backend`] seam: everything stays where the backend computes (on a GPU, `J` never
//! exists and nothing crosses to the host but the solve's status).
//!
//! With `r = vec(f(X; θ) − Y)` and the structured NTK `Θ = J Jᵀ`:
//! `(Θ + NλI) α = r`, `δ = −Jᵀ α`. Solving with the right-hand side `Y − f = −r` gives `−α`
//! directly, so `δ` is one VJP of it on the forward trace that built the signals.

use crate::backend::{self, Backend};
use crate::model::{Trace, Workspace};
use crate::{Mlp, Model, Real, Result};

/// The buffers of [`dual_step_on`], reused between calls (on the backend's device): the
/// forward trace, the backprop signals, `Θ + NλI` (`M × M`, `M = N·C`), `Y` and the
/// right-hand side.
pub struct DualWorkspace<T: Real, B: Backend<T>> {
    trace: Trace<T, B>,
    grads: Vec<B::Buf>,
    kernel: B::Buf,
    y: B::Buf,
    rhs: B::Buf,
    ws: Workspace<T, B>,
}

impl<T: Real, B: Backend<T>> Default for DualWorkspace<T, B> {
    fn default() -> Self {
        Self {
            trace: Trace::new(),
            grads: Vec::new(),
            kernel: B::Buf::default(),
            y: B::Buf::default(),
            rhs: B::Buf::default(),
            ws: Workspace::new(),
        }
    }
}

impl<T: Real, B: Backend<T>> std::fmt::Debug for DualWorkspace<T, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DualWorkspace").finish_non_exhaustive()
    }
}

/// One damped Gauss-Newton step of `mlp` at θ for the mean MSE against the targets `Y`
/// (`N × C`) in dual (kernel) form, on any backend:
/// `(Θ + NλI) α = vec(f(X; θ) − Y)` by Cholesky of the structured NTK
/// ([`Backend::ntk`], [`Backend::cholesky_solve`]), then `δ = −Jᵀ α` by one VJP
/// ([`Mlp::vjp_on`]) into `delta` (length `P`). Returns `None` when solved, or `Some(k)`
/// when `Θ + NλI` is not numerically positive definite at its leading minor of order `k`
/// (then `delta` is unspecified: raise `λ` and retry).
///
/// # Panics
/// If θ, `X`, `Y` or `delta` do not fit the model.
///
/// # Errors
/// A device error from the backend ([`crate::Error::Device`]).
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn dual_step_on<T: Real, B: Backend<T>>(
    be: &B,
    mlp: &Mlp,
    theta: &B::Slice<'_>,
    x: &B::Mat<'_>,
    y: &B::Mat<'_>,
    lambda: T,
    delta: B::SliceMut<'_>,
    ws: &mut DualWorkspace<T, B>,
) -> Result<Option<usize>> {
    let (n, d) = B::shape(x);
    let c = Model::<T>::n_outputs(mlp);
    let (yr, yc) = B::shape(y);
    assert!(
        yr == n && yc == c,
        "dual GN step: Y is {yr}×{yc}, expected N×C = {n}×{c}"
    );
    let m = n * c;
    mlp.trace_on(be, theta, x, &mut ws.trace, true)?;
    mlp.signals_on(be, theta, &ws.trace, &mut ws.grads)?;
    // The first layer's input is X itself: the NTK's first activation Gram reads it there.
    be.resize(&mut ws.trace.acts[0], n * d)?;
    be.copy(
        B::mat_mut(backend::all_mut::<T, B>(&mut ws.trace.acts[0]), n, d),
        x,
    )?;
    be.resize(&mut ws.kernel, m * m)?;
    let k = B::mat_mut(backend::all_mut::<T, B>(&mut ws.kernel), m, m);
    be.ntk(k, &ws.trace.acts, &ws.grads, mlp.layers(), n, c)?;
    let k = B::mat_mut(backend::all_mut::<T, B>(&mut ws.kernel), m, m);
    be.add_diag(k, T::from_usize(n) * lambda)?;
    be.resize(&mut ws.y, m)?;
    be.copy(B::mat_mut(backend::all_mut::<T, B>(&mut ws.y), n, c), y)?;
    be.resize(&mut ws.rhs, m)?;
    let (yv, f) = (
        backend::all::<T, B>(&ws.y),
        backend::all::<T, B>(ws.trace.output_buf()),
    );
    be.axpby(
        backend::all_mut::<T, B>(&mut ws.rhs),
        T::one_impl(),
        &yv,
        -T::one_impl(),
        &f,
    )?;
    let k = B::mat_mut(backend::all_mut::<T, B>(&mut ws.kernel), m, m);
    if let Some(minor) = be.cholesky_solve(k, backend::all_mut::<T, B>(&mut ws.rhs))? {
        return Ok(Some(minor));
    }
    let u = B::mat(backend::all::<T, B>(&ws.rhs), n, c);
    mlp.vjp_on(be, theta, x, &ws.trace, &u, delta, &mut ws.ws)?;
    Ok(None)
}
