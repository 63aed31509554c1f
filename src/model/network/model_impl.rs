//! [`Model`] for [`Network`]: the convenience forms over the trace, the explicit Jacobian
//! and the NTK methods.

use super::net::{Network, row_major_to_mat};
use super::ntk::LayerNtk;
use crate::Real;
use crate::model::ntk_lower::{Method, explicit_lower};
use crate::model::trace::{Trace, Workspace};
use crate::model::{Jacobian, Model};
use faer::{Mat, MatRef};

impl<T: Real> Model<T> for Network {
    fn n_params(&self) -> usize {
        self.n_params
    }
    fn n_inputs(&self) -> usize {
        self.input.size()
    }
    fn n_outputs(&self) -> usize {
        self.n_out()
    }

    #[track_caller]
    fn forward(&self, theta: &[T], x: MatRef<'_, T>) -> Mat<T> {
        self.check_theta_x("forward", theta, x);
        let mut tr = Trace::new();
        self.run_forward(theta, x, &mut tr, false);
        row_major_to_mat(&tr.output, x.nrows(), self.n_out())
    }

    /// One forward trace serves the primal and the tangent pass.
    #[track_caller]
    fn jvp(&self, theta: &[T], x: MatRef<'_, T>, v: &[T]) -> (Mat<T>, Mat<T>) {
        self.check_theta_x("jvp", theta, x);
        let (mut tr, mut ws) = (Trace::new(), Workspace::new());
        Network::trace_into(self, theta, x, &mut tr);
        let (n, c) = (x.nrows(), self.n_out());
        let mut jv = vec![T::zero_impl(); n * c];
        Network::jvp_with_trace_into(self, theta, x, &tr, v, &mut jv, &mut ws);
        (
            row_major_to_mat(&tr.output, n, c),
            row_major_to_mat(&jv, n, c),
        )
    }

    #[track_caller]
    fn vjp(&self, theta: &[T], x: MatRef<'_, T>, u: MatRef<'_, T>) -> Vec<T> {
        self.check_theta_x("vjp", theta, x);
        let (mut tr, mut ws) = (Trace::new(), Workspace::new());
        Network::trace_into(self, theta, x, &mut tr);
        let mut grad = vec![T::zero_impl(); theta.len()];
        Network::vjp_with_trace_into(self, theta, x, &tr, u, &mut grad, &mut ws);
        grad
    }

    #[track_caller]
    fn jacobian(&self, theta: &[T], x: MatRef<'_, T>) -> Jacobian<T> {
        let mut j = Jacobian::zeros(x.nrows() * self.n_out(), self.n_params);
        Network::jacobian_into_slice(self, theta, x, j.as_mut_slice());
        j
    }

    #[track_caller]
    fn jacobian_into(&self, theta: &[T], x: MatRef<'_, T>, out: &mut Jacobian<T>) {
        let m = x.nrows() * self.n_out();
        if out.nrows() != m || out.ncols() != self.n_params {
            *out = Jacobian::zeros(m, self.n_params);
        }
        Network::jacobian_into_slice(self, theta, x, out.as_mut_slice());
    }

    #[track_caller]
    fn ntk_lower(&self, theta: &[T], x: MatRef<'_, T>, method: Method) -> Mat<T> {
        let structured = match method {
            Method::Structured => true,
            Method::Explicit => false,
            Method::Auto => {
                let (e, s) = self.ntk_flop_estimates(x.nrows());
                s <= e
            }
        };
        if structured {
            self.ntk_lower_with(theta, x, LayerNtk::Auto)
        } else {
            explicit_lower(&Model::<T>::jacobian(self, theta, x))
        }
    }

    #[track_caller]
    fn trace_into(&self, theta: &[T], x: MatRef<'_, T>, trace: &mut Trace<T>) {
        Network::trace_into(self, theta, x, trace);
    }

    #[track_caller]
    fn jvp_with_trace_into(
        &self,
        theta: &[T],
        x: MatRef<'_, T>,
        trace: &Trace<T>,
        v: &[T],
        jv: &mut [T],
        ws: &mut Workspace<T>,
    ) {
        Network::jvp_with_trace_into(self, theta, x, trace, v, jv, ws);
    }

    #[track_caller]
    fn vjp_with_trace_into(
        &self,
        theta: &[T],
        x: MatRef<'_, T>,
        trace: &Trace<T>,
        u: MatRef<'_, T>,
        grad: &mut [T],
        ws: &mut Workspace<T>,
    ) {
        Network::vjp_with_trace_into(self, theta, x, trace, u, grad, ws);
    }
}
