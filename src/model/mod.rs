//! Models: the [`Model`] trait a user implements to bring their own network, and the
//! multi-layer perceptron [`Mlp`] that implements it with the crate's fast kernels.

mod init;
mod jacobian;
pub(crate) mod mlp;
pub mod network;
pub(crate) mod ntk_columns;
pub(crate) mod ntk_lower;
mod signals;
mod trace;

pub use crate::backend::Activation;
pub use crate::backend::Layer;
pub use init::Init;
pub use jacobian::Jacobian;
pub use mlp::{Mlp, Parameterization};
pub use network::{InputShape, LayerKind, LayerNtk, NetLayer, Network, Shape};
pub use signals::Signals;
pub use trace::{Trace, Workspace};

use crate::Real;
use faer::{Mat, MatMut, MatRef};

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

    /// The kernel columns of the samples `samples`: `Θ[:, S] = J J_Sᵀ`, an
    /// `(N·C) × (|S|·C)` matrix whose column `j·C + k` is `Θ[:, samples[j]·C + k]` (no
    /// `(N·C)²` matrix is formed). The default makes one single-sample VJP (the row
    /// `J_{s,k}`) and one JVP on `X` per column; [`Mlp`] uses its backprop signals (two
    /// thin GEMMs per layer).
    ///
    /// # Panics
    /// As [`forward`](Model::forward), or if a sample index is `≥ N`.
    fn ntk_columns(&self, theta: &[T], x: MatRef<'_, T>, samples: &[usize]) -> Mat<T> {
        assert!(
            samples.iter().all(|&s| s < x.nrows()),
            "ntk_columns: a sample index is ≥ N = {}",
            x.nrows()
        );
        let (n, c) = (x.nrows(), self.n_outputs());
        let mut out = Mat::<T>::zeros(n * c, samples.len() * c);
        let (mut tr, mut ws) = (Trace::new(), Workspace::new());
        self.trace_into(theta, x, &mut tr);
        let mut seed = Mat::<T>::zeros(1, c);
        let mut jv = vec![T::zero_impl(); n * c];
        for (j, &s) in samples.iter().enumerate() {
            for k in 0..c {
                seed[(0, k)] = T::one_impl();
                let row = self.vjp(theta, x.subrows(s, 1), seed.as_ref());
                seed[(0, k)] = T::zero_impl();
                self.jvp_with_trace_into(theta, x, &tr, &row, &mut jv, &mut ws);
                for (i, &v) in jv.iter().enumerate() {
                    out[(i, j * c + k)] = v;
                }
            }
        }
        out
    }

    /// The diagonal of the empirical NTK, `Θ_ii = ‖J_i‖²` (length `N·C`, sample-major).
    /// The default makes one single-sample VJP per row; [`Mlp`] uses its signals.
    ///
    /// # Panics
    /// As [`forward`](Model::forward).
    fn ntk_diagonal(&self, theta: &[T], x: MatRef<'_, T>) -> Vec<T> {
        let (n, c) = (x.nrows(), self.n_outputs());
        let mut d = vec![T::zero_impl(); n * c];
        let mut seed = Mat::<T>::zeros(1, c);
        for s in 0..n {
            for k in 0..c {
                seed[(0, k)] = T::one_impl();
                let row = self.vjp(theta, x.subrows(s, 1), seed.as_ref());
                seed[(0, k)] = T::zero_impl();
                d[s * c + k] = T::dot(&row, &row);
            }
        }
        d
    }

    /// Workspace tier: the forward pass at θ on `X` into `trace`, keeping what
    /// [`jvp_with_trace_into`](Model::jvp_with_trace_into) and
    /// [`vjp_with_trace_into`](Model::vjp_with_trace_into) at the same θ and `X` reuse;
    /// [`Trace::output`] is then `f(X; θ)` row-major. The default keeps only the output
    /// (one [`forward`](Model::forward)); [`Mlp`] keeps its layers' activations and
    /// derivatives, so that one forward pass serves both products, and allocates nothing
    /// once the buffers have the batch's size.
    ///
    /// # Panics
    /// As [`forward`](Model::forward).
    fn trace_into(&self, theta: &[T], x: MatRef<'_, T>, trace: &mut Trace<T>) {
        let f = self.forward(theta, x);
        let (n, c) = (f.nrows(), f.ncols());
        trace.n = n;
        trace::set_len(&mut trace.output, n * c);
        MatMut::from_row_major_slice_mut(&mut trace.output, n, c).copy_from(f.as_ref());
    }

    /// Workspace tier: `J v` at the θ and `X` that `trace` was made at, row-major into `jv`
    /// (`N·C` entries); `ws` is scratch. The default calls [`jvp`](Model::jvp).
    ///
    /// # Panics
    /// As [`jvp`](Model::jvp), or if `jv` does not have `N·C` entries.
    fn jvp_with_trace_into(
        &self,
        theta: &[T],
        x: MatRef<'_, T>,
        trace: &Trace<T>,
        v: &[T],
        jv: &mut [T],
        ws: &mut Workspace<T>,
    ) {
        let _ = (trace, ws);
        let (_, j) = self.jvp(theta, x, v);
        MatMut::from_row_major_slice_mut(jv, j.nrows(), j.ncols()).copy_from(j.as_ref());
    }

    /// Workspace tier: `Jᵀ u` at the θ and `X` that `trace` was made at, into `grad`
    /// (length `P`); `ws` is scratch. The default calls [`vjp`](Model::vjp).
    ///
    /// # Panics
    /// As [`vjp`](Model::vjp), or if `grad.len() != P`.
    fn vjp_with_trace_into(
        &self,
        theta: &[T],
        x: MatRef<'_, T>,
        trace: &Trace<T>,
        u: MatRef<'_, T>,
        grad: &mut [T],
        ws: &mut Workspace<T>,
    ) {
        let _ = (trace, ws);
        grad.copy_from_slice(&self.vjp(theta, x, u));
    }
}
