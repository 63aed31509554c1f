//! Host-in, host-out conveniences: the [`Model`] API of the [`Mlp`] evaluated on the GPU.
//! Each call uploads its inputs, runs the device ops of [`super::mlp`] / [`super::ntk`], and
//! downloads the result; keep data on the device (those modules) when calls repeat.

use super::blas::CudaReal;
use super::context::CudaBackend;
use super::ntk::DualStep;
use super::{mlp as dmlp, ntk as dntk};
use crate::backend::row_major;
use crate::{Jacobian, Mlp, Model, Result};
use faer::{Mat, MatRef};

fn to_mat<T: CudaReal>(data: &[T], r: usize, c: usize) -> Mat<T> {
    MatRef::from_row_major_slice(data, r, c).to_owned()
}

#[track_caller]
fn check_inputs<T: CudaReal>(mlp: &Mlp, what: &str, theta: &[T], x: MatRef<'_, T>) {
    let p = <Mlp as Model<T>>::n_params(mlp);
    assert_eq!(
        theta.len(),
        p,
        "cuda::host::{what}: θ has length {}, the MLP {:?} has {p} parameters",
        theta.len(),
        mlp.widths()
    );
    assert_eq!(
        x.ncols(),
        mlp.widths()[0],
        "cuda::host::{what}: X is {}×{}, the MLP {:?} takes {} inputs",
        x.nrows(),
        x.ncols(),
        mlp.widths(),
        mlp.widths()[0]
    );
}

/// `f(X; θ)` (`N × C`) on the GPU.
///
/// # Panics
/// If `θ.len() != P` or `X` does not have `d` columns.
///
/// # Errors
/// [`crate::Error::Device`] on any driver, library or kernel failure.
#[track_caller]
pub fn forward<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    theta: &[T],
    x: MatRef<'_, T>,
) -> Result<Mat<T>> {
    check_inputs(mlp, "forward", theta, x);
    let (td, xd) = (be.upload(theta)?, be.upload(&row_major(x))?);
    let f = dmlp::forward(be, mlp, &td, &xd, x.nrows())?;
    Ok(to_mat(
        &be.download(&f)?,
        x.nrows(),
        mlp.widths()[mlp.widths().len() - 1],
    ))
}

/// `(f(X; θ), J v)`, both `N × C`, on the GPU.
///
/// # Panics
/// If `θ.len() != P`, `v.len() != P` or `X` does not have `d` columns.
///
/// # Errors
/// [`crate::Error::Device`] on any driver, library or kernel failure.
#[track_caller]
pub fn jvp<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    theta: &[T],
    x: MatRef<'_, T>,
    v: &[T],
) -> Result<(Mat<T>, Mat<T>)> {
    check_inputs(mlp, "jvp", theta, x);
    assert_eq!(
        v.len(),
        theta.len(),
        "cuda::host::jvp: tangent has length {}, θ has length {}",
        v.len(),
        theta.len()
    );
    let (td, xd, vd) = (be.upload(theta)?, be.upload(&row_major(x))?, be.upload(v)?);
    let (f, jv) = dmlp::jvp(be, mlp, &td, &xd, x.nrows(), &vd)?;
    let c = *mlp.widths().last().expect("at least two widths");
    Ok((
        to_mat(&be.download(&f)?, x.nrows(), c),
        to_mat(&be.download(&jv)?, x.nrows(), c),
    ))
}

/// `Jᵀ u` (length `P`) for a cotangent `u` (`N × C`), on the GPU.
///
/// # Panics
/// If `θ.len() != P`, `X` does not have `d` columns or `u` is not `N × C`.
///
/// # Errors
/// [`crate::Error::Device`] on any driver, library or kernel failure.
#[track_caller]
pub fn vjp<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    theta: &[T],
    x: MatRef<'_, T>,
    u: MatRef<'_, T>,
) -> Result<Vec<T>> {
    check_inputs(mlp, "vjp", theta, x);
    let c = *mlp.widths().last().expect("at least two widths");
    assert!(
        u.nrows() == x.nrows() && u.ncols() == c,
        "cuda::host::vjp: cotangent is {}×{}, expected N×C = {}×{c}",
        u.nrows(),
        u.ncols(),
        x.nrows()
    );
    let (td, xd, ud) = (
        be.upload(theta)?,
        be.upload(&row_major(x))?,
        be.upload(&row_major(u))?,
    );
    let g = dmlp::vjp(be, mlp, &td, &xd, x.nrows(), &ud)?;
    be.download(&g)
}

/// The explicit Jacobian `(N·C) × P` assembled on the GPU.
///
/// # Panics
/// If `θ.len() != P` or `X` does not have `d` columns.
///
/// # Errors
/// [`crate::Error::Device`] on any driver, library or kernel failure (including too little
/// device memory for `J`).
#[track_caller]
pub fn jacobian<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    theta: &[T],
    x: MatRef<'_, T>,
) -> Result<Jacobian<T>> {
    check_inputs(mlp, "jacobian", theta, x);
    let (td, xd) = (be.upload(theta)?, be.upload(&row_major(x))?);
    let j = dmlp::jacobian(be, mlp, &td, &xd, x.nrows())?;
    let m = x.nrows() * mlp.widths()[mlp.widths().len() - 1];
    Ok(Jacobian::from_row_major(be.download(&j)?, m, theta.len()))
}

/// The structured empirical NTK `Θ = J Jᵀ` (`NC × NC`) on the GPU.
///
/// # Panics
/// If `θ.len() != P` or `X` does not have `d` columns.
///
/// # Errors
/// [`crate::Error::Device`] on any driver, library or kernel failure.
#[track_caller]
pub fn ntk<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    theta: &[T],
    x: MatRef<'_, T>,
) -> Result<Mat<T>> {
    check_inputs(mlp, "ntk", theta, x);
    let (td, xd) = (be.upload(theta)?, be.upload(&row_major(x))?);
    let k = dntk::ntk_structured(be, mlp, &td, &xd, x.nrows())?;
    let m = x.nrows() * mlp.widths()[mlp.widths().len() - 1];
    Ok(to_mat(&be.download(&k)?, m, m))
}

/// One dual damped Gauss-Newton step for the mean MSE on the GPU (see
/// [`super::ntk::gn_dual_step`]): `Ok(Some(δ))`, or `Ok(None)` when `Θ + NλI` is not
/// numerically positive definite (raise `λ`).
///
/// # Panics
/// If `θ.len() != P`, `X` does not have `d` columns or `Y` is not `N × C`.
///
/// # Errors
/// [`crate::Error::Device`] on any driver, library or kernel failure.
#[track_caller]
pub fn gn_dual_step<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    theta: &[T],
    x: MatRef<'_, T>,
    y: MatRef<'_, T>,
    lambda: f64,
) -> Result<Option<Vec<T>>> {
    check_inputs(mlp, "gn_dual_step", theta, x);
    let c = *mlp.widths().last().expect("at least two widths");
    assert!(
        y.nrows() == x.nrows() && y.ncols() == c,
        "cuda::host::gn_dual_step: Y is {}×{}, expected N×C = {}×{c}",
        y.nrows(),
        y.ncols(),
        x.nrows()
    );
    let (td, xd, yd) = (
        be.upload(theta)?,
        be.upload(&row_major(x))?,
        be.upload(&row_major(y))?,
    );
    match dntk::gn_dual_step(be, mlp, &td, &xd, &yd, x.nrows(), T::from_f64(lambda))? {
        DualStep::Solved(d) => Ok(Some(be.download(&d)?)),
        DualStep::NotPositiveDefinite { .. } => Ok(None),
    }
}
