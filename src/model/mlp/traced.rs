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
                let w = layer.weights(theta);
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
                let w = layer.weights(theta);
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

#[cfg(test)]
mod tests {
    use crate::model::{Trace, Workspace};
    use crate::{Activation, Init, Mlp, Model, Parameterization, Real};
    use faer::{Mat, MatRef};

    fn rows<T: Real>(m: MatRef<'_, T>) -> Vec<T> {
        (0..m.nrows())
            .flat_map(|i| (0..m.ncols()).map(move |k| m[(i, k)]))
            .collect()
    }

    /// The workspace tier returns the convenience forms' numbers bit for bit, on reused
    /// buffers (batches of changing size, every activation, both parameterisations).
    fn same_as_convenience<T: Real>() {
        let mut trace = Trace::new();
        let mut ws = Workspace::new();
        for (a, act) in Activation::ALL.into_iter().enumerate() {
            let par = if a % 2 == 0 {
                Parameterization::Standard
            } else {
                Parameterization::Ntk {
                    sigma_w: 1.3,
                    sigma_b: 0.2,
                }
            };
            let mlp = Mlp::with_parameterization(&[5, 9, 7, 3], act, par).unwrap();
            let theta = mlp.init::<T>(
                Init::Ntk {
                    sigma_w: 1.3,
                    sigma_b: 0.2,
                },
                a as u64,
            );
            let p = theta.len();
            let v: Vec<T> = (0..p)
                .map(|i| T::from_f64(((i * 7) % 11) as f64 / 11.0 - 0.4))
                .collect();
            for n in [6, 2, 6, 4] {
                let x = Mat::<T>::from_fn(n, 5, |i, j| {
                    T::from_f64(((i * 5 + j * 3) % 13) as f64 / 6.0 - 1.0)
                });
                let u = Mat::<T>::from_fn(n, 3, |i, k| T::from_f64(((i + 2 * k) % 5) as f64 - 2.0));
                mlp.trace_into(&theta, x.as_ref(), &mut trace);
                assert_eq!(
                    trace.output(),
                    rows(Model::forward(&mlp, &theta, x.as_ref()).as_ref())
                );
                let mut jv = vec![T::zero_impl(); n * 3];
                mlp.jvp_with_trace_into(&theta, x.as_ref(), &trace, &v, &mut jv, &mut ws);
                let (_, jv_ref) = Model::jvp(&mlp, &theta, x.as_ref(), &v);
                assert_eq!(jv, rows(jv_ref.as_ref()), "{act} n={n}: J v");
                let mut g = vec![T::zero_impl(); p];
                mlp.vjp_with_trace_into(&theta, x.as_ref(), &trace, u.as_ref(), &mut g, &mut ws);
                assert_eq!(
                    g,
                    Model::vjp(&mlp, &theta, x.as_ref(), u.as_ref()),
                    "{act} n={n}: Jᵀu"
                );
            }
        }
    }

    #[test]
    fn traced_products_equal_the_convenience_forms_f64() {
        same_as_convenience::<f64>();
    }

    #[test]
    fn traced_products_equal_the_convenience_forms_f32() {
        same_as_convenience::<f32>();
    }

    #[test]
    #[should_panic(expected = "call trace_into first")]
    fn a_product_without_a_trace_panics() {
        let mlp = Mlp::new(&[2, 3, 1], Activation::Tanh).unwrap();
        let theta = mlp.init::<f64>(Init::Standard, 0);
        let x = Mat::<f64>::zeros(4, 2);
        let mut jv = vec![0.0; 4];
        let v = vec![0.0; theta.len()];
        mlp.jvp_with_trace_into(
            &theta,
            x.as_ref(),
            &Trace::new(),
            &v,
            &mut jv,
            &mut Workspace::new(),
        );
    }
}
