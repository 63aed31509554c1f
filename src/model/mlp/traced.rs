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

//!
//! Each product is written once, over the [`Backend`] seam: [`Mlp::trace_on`],
//! [`Mlp::jvp_on`], [`Mlp::vjp_on`] and [`Mlp::signals_on`] run on whichever backend they are
//! given (the CPU forms below call them with [`Cpu`]; the CUDA backend runs the same code on
//! device buffers).

use super::Mlp;
use crate::backend::{self, Backend, Cpu};
use crate::model::trace::{Trace, Workspace};
use crate::{Real, Result};
use faer::MatRef;

/// The CPU backend never fails; a device error cannot reach here.
fn on_cpu<R>(r: Result<R>) -> R {
    r.unwrap_or_else(|e| unreachable!("the CPU backend does not fail: {e}"))
}

impl Mlp {
    /// Forward pass at θ on `X` into `trace`, keeping every hidden layer's input and
    /// activation derivative (reusing the trace's buffers). Afterwards
    /// [`Trace::output`] is `f(X; θ)` row-major.
    ///
    /// # Panics
    /// If `θ.len() != P` or `X` does not have `d` columns.
    #[track_caller]
    pub fn trace_into<T: Real>(&self, theta: &[T], x: MatRef<'_, T>, trace: &mut Trace<T>) {
        on_cpu(self.trace_on(&Cpu, &theta, &x, trace, true));
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
        on_cpu(self.jvp_on(&Cpu, &theta, &x, trace, &v, jv, ws));
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
        on_cpu(self.vjp_on(&Cpu, &theta, &x, trace, &u, grad, ws));
    }

    /// The forward pass on any backend: `A_0 = X`, `z_l = s_w A_{l−1} W_lᵀ + s_b b_l`,
    /// `A_l = φ(z_l)` with `φ'(z_l)` kept when `keep_derivs` (the JVP and VJP need it), the
    /// read-out `f(X; θ) = z_L` into the trace's output (`N × C`, row-major). The trace's
    /// buffers are reused; `X` is read in place (any layout the backend's views allow).
    ///
    /// # Panics
    /// If `θ.len() != P` or `X` does not have `d` columns.
    ///
    /// # Errors
    /// A device error from the backend ([`crate::Error::Device`]).
    #[track_caller]
    pub fn trace_on<T: Real, B: Backend<T>>(
        &self,
        be: &B,
        theta: &B::Slice<'_>,
        x: &B::Mat<'_>,
        trace: &mut Trace<T, B>,
        keep_derivs: bool,
    ) -> Result<()> {
        let n = self.check_on::<T, B>("trace_into", theta, x);
        let nl = self.layers.len();
        trace.n = n;
        trace.acts.resize_with(nl, Default::default);
        trace.derivs.resize_with(nl, Default::default);
        be.resize(&mut trace.acts[0], 0)?;
        be.resize(&mut trace.derivs[0], 0)?;
        let last = nl - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let (w, b) = layer_views::<T, B>(theta, layer);
            let (sw, sb) = (T::from_f64(layer.w_scale), T::from_f64(layer.b_scale));
            let (done, rest) = trace.acts.split_at_mut(l + 1);
            let input = if l == 0 {
                B::mat_rb(x)
            } else {
                B::mat(backend::all::<T, B>(&done[l]), n, layer.fan_in)
            };
            let out = n * layer.fan_out;
            if l == last {
                be.resize(&mut trace.output, out)?;
                let z = B::mat_mut(
                    backend::all_mut::<T, B>(&mut trace.output),
                    n,
                    layer.fan_out,
                );
                be.dense(z, &input, &w, &b, sw, sb)?;
            } else {
                be.resize(&mut trace.z, out)?;
                let z = B::mat_mut(backend::all_mut::<T, B>(&mut trace.z), n, layer.fan_out);
                be.dense(z, &input, &w, &b, sw, sb)?;
                let (a, d) = (&mut rest[0], &mut trace.derivs[l + 1]);
                be.resize(a, out)?;
                be.resize(d, if keep_derivs { out } else { 0 })?;
                let d = keep_derivs.then(|| backend::all_mut::<T, B>(d));
                let z = backend::all::<T, B>(&trace.z);
                be.activate(self.activation, &z, backend::all_mut::<T, B>(a), d)?;
            }
        }
        Ok(())
    }

    /// Forward mode on any backend, at the θ and `X` of `trace`:
    /// `ż_l = s_w (Ȧ_{l−1} W_lᵀ + A_{l−1} dW_lᵀ) + s_b db_l`, `Ȧ_l = φ'(z_l) ⊙ ż_l`
    /// (`Ȧ_0 = 0`); `J v = ż_L` is written into `jv` (`N·C` entries, row-major). `ws` is
    /// scratch.
    ///
    /// # Panics
    /// If `θ`, `X`, `v` or `jv` do not fit the model and the trace, or the trace was taken
    /// without derivatives.
    ///
    /// # Errors
    /// A device error from the backend ([`crate::Error::Device`]).
    #[track_caller]
    #[allow(clippy::too_many_arguments)]
    pub fn jvp_on<T: Real, B: Backend<T>>(
        &self,
        be: &B,
        theta: &B::Slice<'_>,
        x: &B::Mat<'_>,
        trace: &Trace<T, B>,
        v: &B::Slice<'_>,
        mut jv: B::SliceMut<'_>,
        ws: &mut Workspace<T, B>,
    ) -> Result<()> {
        self.check_on::<T, B>("jvp_with_trace_into", theta, x);
        let n = self.check_trace_on("jvp_with_trace_into", x, trace, true);
        assert_eq!(
            B::slice_len(v),
            B::slice_len(theta),
            "Mlp::jvp_with_trace_into: tangent has length {}, θ has length {}",
            B::slice_len(v),
            B::slice_len(theta)
        );
        let c = self.n_outputs_total();
        let jv_len = B::slice_mut_len(&jv);
        assert_eq!(
            jv_len,
            n * c,
            "Mlp::jvp_with_trace_into: output has {jv_len} entries, expected N·C = {n}·{c}"
        );
        let last = self.layers.len() - 1;
        let (mut cur, mut prev) = (&mut ws.a, &mut ws.b);
        for (l, layer) in self.layers.iter().enumerate() {
            let (dw, db) = layer_views::<T, B>(v, layer);
            let input = trace_input(trace, l, x, layer.fan_in);
            let (sw, sb) = (T::from_f64(layer.w_scale), T::from_f64(layer.b_scale));
            let out = n * layer.fan_out;
            if l < last {
                be.resize(cur, out)?;
            }
            {
                let mut z_dot = if l == last {
                    B::reborrow(&mut jv)
                } else {
                    backend::all_mut::<T, B>(cur)
                };
                let z = B::mat_mut(B::reborrow(&mut z_dot), n, layer.fan_out);
                be.dense(z, &input, &dw, &db, sw, sb)?;
                if l > 0 {
                    let (w, _) = layer_views::<T, B>(theta, layer);
                    let ad = B::mat(B::slice(prev, 0..n * layer.fan_in), n, layer.fan_in);
                    let z = B::mat_mut(B::reborrow(&mut z_dot), n, layer.fan_out);
                    be.gemm(z, true, &ad, &B::t(w), sw)?;
                }
                if l < last {
                    be.mul_elementwise(z_dot, &backend::all::<T, B>(&trace.derivs[l + 1]))?;
                }
            }
            std::mem::swap(&mut cur, &mut prev);
        }
        Ok(())
    }

    /// Reverse mode on any backend, at the θ and `X` of `trace`, for a cotangent `u`
    /// (`N × C`): `δ_L = u`, `dW_l = s_w δ_lᵀ A_{l−1}`, `db_l = s_b Σ_n δ_{l,n}`,
    /// `δ_{l−1} = φ'(z_{l−1}) ⊙ (s_w δ_l W_l)`; `Jᵀ u` is written into `grad` (length `P`).
    /// `ws` is scratch.
    ///
    /// # Panics
    /// If `θ`, `X`, `u` or `grad` do not fit the model and the trace, or the trace was taken
    /// without derivatives.
    ///
    /// # Errors
    /// A device error from the backend ([`crate::Error::Device`]).
    #[track_caller]
    #[allow(clippy::too_many_arguments)]
    pub fn vjp_on<T: Real, B: Backend<T>>(
        &self,
        be: &B,
        theta: &B::Slice<'_>,
        x: &B::Mat<'_>,
        trace: &Trace<T, B>,
        u: &B::Mat<'_>,
        mut grad: B::SliceMut<'_>,
        ws: &mut Workspace<T, B>,
    ) -> Result<()> {
        self.check_on::<T, B>("vjp_with_trace_into", theta, x);
        let n = self.check_trace_on("vjp_with_trace_into", x, trace, true);
        let c = self.n_outputs_total();
        let (ur, uc) = B::shape(u);
        assert!(
            ur == n && uc == c,
            "Mlp::vjp_with_trace_into: cotangent is {ur}×{uc}, expected N×C = {n}×{c}"
        );
        assert_eq!(
            B::slice_mut_len(&grad),
            B::slice_len(theta),
            "Mlp::vjp_with_trace_into: gradient has length {}, θ has length {}",
            B::slice_mut_len(&grad),
            B::slice_len(theta)
        );
        let (mut delta, mut prev) = (&mut ws.a, &mut ws.b);
        be.resize(delta, n * c)?;
        be.copy(B::mat_mut(backend::all_mut::<T, B>(delta), n, c), u)?;
        for (l, layer) in self.layers.iter().enumerate().rev() {
            let (sw, sb) = (T::from_f64(layer.w_scale), T::from_f64(layer.b_scale));
            {
                let dmat = B::mat(B::slice(delta, 0..n * layer.fan_out), n, layer.fan_out);
                let a = trace_input(trace, l, x, layer.fan_in);
                let dw = B::sub_mut(&mut grad, layer.w_offset..layer.b_offset);
                let dw = B::mat_mut(dw, layer.fan_out, layer.fan_in);
                be.gemm(dw, false, &B::t(dmat.clone()), &a, sw)?;
                let db = B::sub_mut(&mut grad, layer.b_offset..layer.b_offset + layer.fan_out);
                be.col_sum(db, &dmat, sb)?;
                if l == 0 {
                    break;
                }
                be.resize(prev, n * layer.fan_in)?;
                let (w, _) = layer_views::<T, B>(theta, layer);
                let dst = B::mat_mut(backend::all_mut::<T, B>(prev), n, layer.fan_in);
                be.gemm(dst, false, &dmat, &w, sw)?;
                let d = backend::all::<T, B>(&trace.derivs[l]);
                be.mul_elementwise(backend::all_mut::<T, B>(prev), &d)?;
            }
            std::mem::swap(&mut delta, &mut prev);
        }
        Ok(())
    }

    /// The backprop signals of all `N·C` outputs on any backend, at the θ of `trace`:
    /// `G_L` has rows `e_c` (row `n·C + c`), `G_{l−1} = s_w (G_l W_l) ⊙ φ'(z_{l−1})` (one
    /// GEMM per layer, each sample's `C` rows scaled by its derivative row). `grads[l]` is
    /// `G_l`, row-major `(N·C) × fan_out_l`; the buffers are reused.
    ///
    /// # Panics
    /// If θ does not fit the model or the trace was taken without derivatives.
    ///
    /// # Errors
    /// A device error from the backend ([`crate::Error::Device`]).
    #[track_caller]
    pub fn signals_on<T: Real, B: Backend<T>>(
        &self,
        be: &B,
        theta: &B::Slice<'_>,
        trace: &Trace<T, B>,
        grads: &mut Vec<B::Buf>,
    ) -> Result<()> {
        assert_eq!(
            B::slice_len(theta),
            self.n_params_total(),
            "Mlp::signals: θ has length {}, the MLP {:?} has {} parameters",
            B::slice_len(theta),
            self.widths,
            self.n_params_total()
        );
        let nl = self.layers.len();
        assert!(
            trace.acts.len() == nl
                && (nl == 1 || B::buf_len(&trace.derivs[nl - 1]) > 0 || trace.n == 0),
            "Mlp::signals: the trace is of another model or was taken without derivatives"
        );
        let (n, c) = (trace.n, self.n_outputs_total());
        let m = n * c;
        grads.resize_with(nl, Default::default);
        be.resize(&mut grads[nl - 1], m * c)?;
        be.eye_rows(backend::all_mut::<T, B>(&mut grads[nl - 1]), m, c)?;
        for l in (1..nl).rev() {
            let layer = &self.layers[l];
            let (lo, hi) = grads.split_at_mut(l);
            let g_prev = &mut lo[l - 1];
            be.resize(g_prev, m * layer.fan_in)?;
            let (w, _) = layer_views::<T, B>(theta, layer);
            let g = B::mat(backend::all::<T, B>(&hi[0]), m, layer.fan_out);
            let dst = B::mat_mut(backend::all_mut::<T, B>(g_prev), m, layer.fan_in);
            be.gemm(dst, false, &g, &w, T::from_f64(layer.w_scale))?;
            let d = backend::all::<T, B>(&trace.derivs[l]);
            be.mul_rows_bcast(backend::all_mut::<T, B>(g_prev), &d, layer.fan_in, c)?;
        }
        Ok(())
    }

    /// Checks θ and `X` against the model; returns `N`.
    #[track_caller]
    pub(super) fn check_on<T: Real, B: Backend<T>>(
        &self,
        what: &str,
        theta: &B::Slice<'_>,
        x: &B::Mat<'_>,
    ) -> usize {
        let (n, d) = B::shape(x);
        assert_eq!(
            B::slice_len(theta),
            self.n_params_total(),
            "Mlp::{what}: θ has length {}, the MLP {:?} has {} parameters",
            B::slice_len(theta),
            self.widths,
            self.n_params_total()
        );
        assert_eq!(
            d, self.widths[0],
            "Mlp::{what}: X is {n}×{d}, the MLP {:?} takes {} inputs",
            self.widths, self.widths[0]
        );
        n
    }

    /// Checks that `trace` was made on a batch of `X`'s shape by this MLP (with derivatives
    /// when `derivs`); returns `N`.
    #[track_caller]
    fn check_trace_on<T: Real, B: Backend<T>>(
        &self,
        what: &str,
        x: &B::Mat<'_>,
        trace: &Trace<T, B>,
        derivs: bool,
    ) -> usize {
        let n = B::shape(x).0;
        let nl = self.layers.len();
        let ok = trace.n == n
            && trace.acts.len() == nl
            && B::buf_len(&trace.output) == n * self.n_outputs_total();
        assert!(
            ok,
            "Mlp::{what}: the trace was made on {} rows by another model or not at all; X has {n} rows (call trace_into first)",
            trace.n
        );
        let with_derivs = nl == 1
            || n == 0
            || B::buf_len(&trace.derivs[nl - 1]) == n * self.layers[nl - 1].fan_in;
        assert!(
            !derivs || with_derivs,
            "Mlp::{what}: the trace was taken without activation derivatives"
        );
        n
    }
}

/// `W_l` (`fan_out × fan_in`, row-major) and `b_l` inside a parameter-shaped vector.
fn layer_views<'a, T: Real, B: Backend<T>>(
    theta: &B::Slice<'a>,
    layer: &crate::model::Layer,
) -> (B::Mat<'a>, B::Slice<'a>) {
    let w = B::sub(theta, layer.w_offset..layer.b_offset);
    let b = B::sub(theta, layer.b_offset..layer.b_offset + layer.fan_out);
    (B::mat(w, layer.fan_out, layer.fan_in), b)
}

/// The input of layer `l` as a matrix: `X` itself for the first layer.
fn trace_input<'a, T: Real, B: Backend<T>>(
    trace: &'a Trace<T, B>,
    l: usize,
    x: &'a B::Mat<'_>,
    fan_in: usize,
) -> B::Mat<'a> {
    if l == 0 {
        B::mat_rb(x)
    } else {
        B::mat(backend::all::<T, B>(&trace.acts[l]), trace.n, fan_in)
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
