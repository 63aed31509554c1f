//! Reused buffers of the trainer's evaluation: `f_lin` on the evaluation sets without
//! allocating per evaluation.

use crate::model::{Trace, Workspace};
use crate::{Model, Real};
use faer::MatRef;

/// Reused buffers for `f_lin(X) = f(X; θ̃) + J(X; θ̃)(θ − θ̃)` on the evaluation sets: a
/// forward trace at θ̃, the JVP scratch, `θ − θ̃` and the row-major `N × C` result.
#[derive(Default)]
pub(crate) struct EvalBuffers<T: Real> {
    trace: Trace<T>,
    ws: Workspace<T>,
    delta: Vec<T>,
    out: Vec<T>,
}

impl<T: Real> EvalBuffers<T> {
    /// `f_lin` on `x` as an `N × C` view of the reused output buffer. The same operations
    /// in the same order as `f(X; θ̃) + J v` from [`Model::jvp`] (bit for bit for the MLP).
    pub(crate) fn f_lin<M: Model<T>>(
        &mut self,
        model: &M,
        theta: &[T],
        theta_tilde: &[T],
        x: MatRef<'_, T>,
    ) -> MatRef<'_, T> {
        let (n, c) = (x.nrows(), model.n_outputs());
        self.delta.clear();
        self.delta
            .extend(theta.iter().zip(theta_tilde).map(|(&a, &b)| a - b));
        model.trace_into(theta_tilde, x, &mut self.trace);
        self.out.resize(n * c, T::zero_impl());
        model.jvp_with_trace_into(
            theta_tilde,
            x,
            &self.trace,
            &self.delta,
            &mut self.out,
            &mut self.ws,
        );
        for (o, &f0) in self.out.iter_mut().zip(self.trace.output()) {
            *o = f0 + *o;
        }
        MatRef::from_row_major_slice(&self.out, n, c)
    }
}
