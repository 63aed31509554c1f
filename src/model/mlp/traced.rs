//! The MLP's workspace tier: one forward [`Trace`] at θ on a batch serves any number of JVPs
//! and VJPs at the same θ and batch, and every product writes into caller-owned buffers, so
//! a training step on batches of one shape allocates nothing after the first.
//!
//! The products are the same operations, in the same order, as the convenience forms
//! ([`Model::forward`], [`Model::jvp`], [`Model::vjp`]), so they return the same numbers bit
//! for bit:
//! - trace: `A_0 = X`, `z_l = s_w A_{l−1} W_lᵀ + s_b b_l`, `A_l = φ(z_l)` and `φ'(z_l)` kept;
//! - JVP: `ż_l = s_w (Ȧ_{l−1} W_lᵀ + A_{l−1} dW_lᵀ) + s_b db_l`, `Ȧ_l = φ'(z_l) ⊙ ż_l`
//!   (`Ȧ_0 = 0`), output `J v = ż_L`;
//! - VJP: `δ_L = u`, `dW_l = s_w δ_lᵀ A_{l−1}`, `db_l = s_b Σ_n δ_{l,n}`,
//!   `δ_{l−1} = φ'(z_{l−1}) ⊙ (s_w δ_l W_l)`.

use super::{Mlp, affine, mul_elementwise_par, par};
use crate::model::trace::{Trace, Workspace, set_len};
use crate::{Model, Real};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef};

impl Mlp {
    /// Forward pass at θ on `X` into `trace`, keeping every hidden layer's input and
    /// activation derivative (reusing the trace's buffers). Afterwards
    /// [`Trace::output`] is `f(X; θ)` row-major.
    ///
    /// # Panics
    /// If `θ.len() != P` or `X` does not have `d` columns.
    #[track_caller]
    pub fn trace_into<T: Real>(&self, theta: &[T], x: MatRef<'_, T>, trace: &mut Trace<T>) {
        self.check_theta_x("trace_into", theta, x);
        let n = x.nrows();
        let nl = self.layers.len();
        trace.n = n;
        trace.acts.resize_with(nl, Vec::new);
        trace.derivs.resize_with(nl, Vec::new);
        trace.acts[0].clear();
        trace.derivs[0].clear();
        let last = nl - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let (done, rest) = trace.acts.split_at_mut(l + 1);
            let input = if l == 0 {
                x
            } else {
                MatRef::from_row_major_slice(&done[l], n, layer.fan_in)
            };
            if l == last {
                set_len(&mut trace.output, n * layer.fan_out);
                affine(theta, layer, input, &mut trace.output);
            } else {
                set_len(&mut trace.z, n * layer.fan_out);
                affine(theta, layer, input, &mut trace.z);
                let a = &mut rest[0];
                let d = &mut trace.derivs[l + 1];
                set_len(a, n * layer.fan_out);
                set_len(d, n * layer.fan_out);
                self.activation.apply_slice(&trace.z, a, Some(d));
            }
        }
    }

    /// `J v` at the θ and `X` of `trace` (see [`trace_into`](Self::trace_into)), written
    /// row-major (`N·C` entries) into `jv`; `ws` is scratch.
    ///
    /// # Panics
    /// If `θ`, `X`, `v` or `jv` do not fit the model and the trace.
    #[track_caller]
    pub fn jvp_with_trace_into<T: Real>(
        &self,
        theta: &[T],
        x: MatRef<'_, T>,
        trace: &Trace<T>,
        v: &[T],
        jv: &mut [T],
        ws: &mut Workspace<T>,
    ) {
        self.check_theta_x("jvp_with_trace_into", theta, x);
        let n = self.check_trace("jvp_with_trace_into", x, trace);
        assert_eq!(
            v.len(),
            theta.len(),
            "Mlp::jvp_with_trace_into: tangent has length {}, θ has length {}",
            v.len(),
            theta.len()
        );
        let c = self.n_outputs_total();
        assert_eq!(
            jv.len(),
            n * c,
            "Mlp::jvp_with_trace_into: output has {} entries, expected N·C = {n}·{c}",
            jv.len()
        );
        let last = self.layers.len() - 1;
        let (mut cur, mut prev) = (&mut ws.a, &mut ws.b);
        for (l, layer) in self.layers.iter().enumerate() {
            let z_dot: &mut [T] = if l == last {
                &mut *jv
            } else {
                set_len(cur, n * layer.fan_out);
                &mut cur[..]
            };
            affine(v, layer, trace.input(l, x, layer.fan_in), z_dot);
            if l > 0 {
                let w = MatRef::from_row_major_slice(
                    &theta[layer.w_offset..layer.b_offset],
                    layer.fan_out,
                    layer.fan_in,
                );
                let ad = MatRef::from_row_major_slice(&prev[..n * layer.fan_in], n, layer.fan_in);
                let dst = MatMut::from_row_major_slice_mut(z_dot, n, layer.fan_out);
                matmul(
                    dst,
                    Accum::Add,
                    ad,
                    w.transpose(),
                    T::from_f64(layer.w_scale),
                    par(),
                );
            }
            if l < last {
                mul_elementwise_par(z_dot, &trace.derivs[l + 1]);
            }
            std::mem::swap(&mut cur, &mut prev);
        }
    }

    /// `Jᵀ u` at the θ and `X` of `trace` (see [`trace_into`](Self::trace_into)) for a
    /// cotangent `u` (`N × C`), written into `grad` (length `P`); `ws` is scratch.
    ///
    /// # Panics
    /// If `θ`, `X`, `u` or `grad` do not fit the model and the trace.
    #[track_caller]
    pub fn vjp_with_trace_into<T: Real>(
        &self,
        theta: &[T],
        x: MatRef<'_, T>,
        trace: &Trace<T>,
        u: MatRef<'_, T>,
        grad: &mut [T],
        ws: &mut Workspace<T>,
    ) {
        self.check_theta_x("vjp_with_trace_into", theta, x);
        let n = self.check_trace("vjp_with_trace_into", x, trace);
        let c = self.n_outputs_total();
        assert!(
            u.nrows() == n && u.ncols() == c,
            "Mlp::vjp_with_trace_into: cotangent is {}×{}, expected N×C = {n}×{c}",
            u.nrows(),
            u.ncols(),
        );
        assert_eq!(
            grad.len(),
            theta.len(),
            "Mlp::vjp_with_trace_into: gradient has length {}, θ has length {}",
            grad.len(),
            theta.len()
        );
        let (mut delta, mut prev) = (&mut ws.a, &mut ws.b);
        set_len(delta, n * c);
        MatMut::from_row_major_slice_mut(delta, n, c).copy_from(u);
        for (l, layer) in self.layers.iter().enumerate().rev() {
            let (w_part, b_part) = grad[layer.w_offset..layer.b_offset + layer.fan_out]
                .split_at_mut(layer.fan_in * layer.fan_out);
            let dmat = MatRef::from_row_major_slice(&delta[..n * layer.fan_out], n, layer.fan_out);
            let a = trace.input(l, x, layer.fan_in);
            let dw = MatMut::from_row_major_slice_mut(w_part, layer.fan_out, layer.fan_in);
            matmul(
                dw,
                Accum::Replace,
                dmat.transpose(),
                a,
                T::from_f64(layer.w_scale),
                par(),
            );
            let sb = T::from_f64(layer.b_scale);
            b_part.fill(T::zero_impl());
            for row in delta[..n * layer.fan_out].chunks_exact(layer.fan_out) {
                T::axpy(sb, row, b_part);
            }
            if l > 0 {
                set_len(prev, n * layer.fan_in);
                let w = MatRef::from_row_major_slice(
                    &theta[layer.w_offset..layer.b_offset],
                    layer.fan_out,
                    layer.fan_in,
                );
                let dst = MatMut::from_row_major_slice_mut(prev, n, layer.fan_in);
                matmul(
                    dst,
                    Accum::Replace,
                    dmat,
                    w,
                    T::from_f64(layer.w_scale),
                    par(),
                );
                mul_elementwise_par(prev, &trace.derivs[l]);
                std::mem::swap(&mut delta, &mut prev);
            }
        }
    }

    /// Checks that `trace` was made on a batch of `X`'s shape by this MLP; returns `N`.
    #[track_caller]
    fn check_trace<T: Real>(&self, what: &str, x: MatRef<'_, T>, trace: &Trace<T>) -> usize {
        let n = x.nrows();
        let ok = trace.n == n
            && trace.acts.len() == self.layers.len()
            && trace.output.len() == n * <Self as Model<T>>::n_outputs(self);
        assert!(
            ok,
            "Mlp::{what}: the trace was made on {} rows by another model or not at all; X has {n} rows (call trace_into first)",
            trace.n
        );
        n
    }
}
