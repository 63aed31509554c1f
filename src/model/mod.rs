//! Models: the [`Model`] trait a user implements to bring their own network, and the
//! multi-layer perceptron [`Mlp`] that implements it with the crate's fast kernels.

mod activation;
mod init;
mod jacobian;
mod layer;
pub(crate) mod mlp;
pub(crate) mod ntk_lower;
mod signals;

pub use activation::Activation;
pub use init::Init;
pub use jacobian::Jacobian;
pub use layer::Layer;
pub use mlp::{Mlp, Parameterization};
pub use signals::Signals;

use crate::Real;
use faer::{Mat, MatRef};

/// A differentiable model `f(x; θ) ∈ R^C` evaluated on a batch `X` (`N × d`).
///
/// Required: [`forward`](Model::forward), [`jvp`](Model::jvp) and [`vjp`](Model::vjp).
/// [`jacobian`](Model::jacobian) has a default built from `N·C` single-sample VJPs; models with
/// structure (like [`Mlp`]) override it with something faster.
///
/// Row order everywhere is sample-major: output `c` of sample `n` is row `n·C + c` of `J`.
pub trait Model<T: Real>: Sync {
    /// Number of parameters `P`.
    fn n_params(&self) -> usize;
    /// Input width `d`.
    fn n_inputs(&self) -> usize;
    /// Number of outputs `C` per sample.
    fn n_outputs(&self) -> usize;

    /// `f(X; θ)`, an `N × C` matrix.
    ///
    /// # Panics
    /// If `θ.len() != P` or `X` does not have `d` columns.
    fn forward(&self, theta: &[T], x: MatRef<'_, T>) -> Mat<T>;

    /// Forward mode: `(f(X; θ), J v)`, both `N × C` (as `jax.jvp`).
    ///
    /// # Panics
    /// If `θ.len() != P`, `v.len() != P` or `X` does not have `d` columns.
    fn jvp(&self, theta: &[T], x: MatRef<'_, T>, v: &[T]) -> (Mat<T>, Mat<T>);

    /// Reverse mode: `Jᵀ u` (length `P`) for a cotangent `u` (`N × C`).
    ///
    /// # Panics
    /// If `θ.len() != P`, `X` does not have `d` columns or `u` is not `N × C`.
    fn vjp(&self, theta: &[T], x: MatRef<'_, T>, u: MatRef<'_, T>) -> Vec<T>;

    /// The explicit Jacobian `J = ∂vec(f)/∂θ`, `(N·C) × P`, row `n·C + c`.
    ///
    /// The default makes one single-sample VJP per row; it is correct for any model but slow.
    ///
    /// # Panics
    /// As [`forward`](Model::forward).
    fn jacobian(&self, theta: &[T], x: MatRef<'_, T>) -> Jacobian<T> {
        let (n, c, p) = (x.nrows(), self.n_outputs(), self.n_params());
        let mut j = Jacobian::zeros(n * c, p);
        let mut seed = Mat::<T>::zeros(1, c);
        for s in 0..n {
            let xs = x.subrows(s, 1);
            for k in 0..c {
                seed[(0, k)] = T::one_impl();
                let row = self.vjp(theta, xs, seed.as_ref());
                j.row_mut(s * c + k).copy_from_slice(&row);
                seed[(0, k)] = T::zero_impl();
            }
        }
        j
    }

    /// Writes the explicit Jacobian into `out`, reusing its buffer when it already has the
    /// right shape (first-touch page faults of a fresh multi-GB buffer can cost more than the
    /// assembly itself). The default calls [`jacobian`](Model::jacobian).
    ///
    /// # Panics
    /// As [`forward`](Model::forward).
    fn jacobian_into(&self, theta: &[T], x: MatRef<'_, T>, out: &mut Jacobian<T>) {
        *out = self.jacobian(theta, x);
    }

    /// The lower triangle (diagonal included) of the empirical NTK `Θ = J Jᵀ`; the strict
    /// upper triangle is unspecified. The default builds `J` explicitly for every method;
    /// [`Mlp`] implements [`Method::Structured`](crate::ntk::Method).
    ///
    /// # Panics
    /// As [`forward`](Model::forward).
    fn ntk_lower(&self, theta: &[T], x: MatRef<'_, T>, method: ntk_lower::Method) -> Mat<T> {
        let _ = method;
        ntk_lower::explicit_lower(&self.jacobian(theta, x))
    }
}
