//! The reverse pass of a network: `Jᵀ u` on a [`Trace`], and the per-layer adjoints that the
//! backprop signals of the Jacobian and the NTK reuse.
//!
//! With `δ` the cotangent of a layer's output: dense `dW = s_w δᵀ A`, `db = s_b Σ_n δ_n`,
//! `δ_in = s_w δ W`; conv per sample `dW = s_w Σ_n δ_n P_n`, `db = s_b Σ_{n,p} δ_n[·,p]`,
//! `δ_in = col2im(s_w Wᵀ δ_n)`; activation `δ_in = φ'(z) ⊙ δ`; average pooling spreads
//! `δ/K²` over each window; max pooling sends `δ` to the first maximum; flatten is the
//! identity. The pass stops at the first parameterised layer.

use super::conv::ConvGeom;
use super::forward::per_sample;
use super::net::{Network, params_of};
use super::spec::LayerKind;
use crate::Real;
use crate::backend::cpu::mul_elementwise_par;
use crate::linalg::par;
use crate::model::trace::{Trace, Workspace, set_len};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

impl Network {
    /// `Jᵀ u` at the θ and `X` of `trace` (see [`trace_into`](Self::trace_into)) for a
    /// cotangent `u` (`N × C`), written into `grad` (length `P`); `ws` is scratch.
    ///
    /// # Panics
    /// If `θ`, `X`, `u` or `grad` do not fit the network and the trace.
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
        let c = self.n_out();
        assert!(
            u.nrows() == n && u.ncols() == c,
            "Network::vjp_with_trace_into: cotangent is {}×{}, expected N×C = {n}×{c}",
            u.nrows(),
            u.ncols(),
        );
        assert_eq!(
            grad.len(),
            theta.len(),
            "Network::vjp_with_trace_into: gradient has length {}, θ has length {}",
            grad.len(),
            theta.len()
        );
        let fp = self.first_param();
        let (mut cur, mut nxt) = (&mut ws.a, &mut ws.b);
        set_len(cur, n * c);
        MatMut::from_row_major_slice_mut(cur, n, c).copy_from(u);
        for i in (fp..self.layers.len()).rev() {
            let layer = &self.layers[i];
            let os = layer.output.size();
            if layer.params.is_some() {
                self.param_grad(i, x, trace, &cur[..n * os], grad);
            }
            if i == fp {
                break;
            }
            match layer.kind {
                LayerKind::Activation(_) => {
                    mul_elementwise_par(&mut cur[..n * os], &trace.derivs[i])
                }
                LayerKind::Flatten => {}
                _ => {
                    set_len(nxt, n * layer.input.size());
                    self.backward_data(i, theta, trace, &cur[..n * os], nxt, 1, 0, true);
                    std::mem::swap(&mut cur, &mut nxt);
                }
            }
        }
    }

    /// `dW`, `db` of parameterised layer `i` for the cotangent `delta` (`N × out`) of its
    /// output, written into their places in `grad`.
    fn param_grad<T: Real>(
        &self,
        i: usize,
        x: MatRef<'_, T>,
        trace: &Trace<T>,
        delta: &[T],
        grad: &mut [T],
    ) {
        let layer = &self.layers[i];
        let p = params_of(layer);
        let n = trace.n;
        let (w_part, b_part) =
            grad[p.w_offset..p.b_offset + p.fan_out].split_at_mut(p.fan_in * p.fan_out);
        let sb = T::from_f64(p.b_scale);
        match layer.kind {
            LayerKind::Dense { .. } => {
                let a = if i == 0 {
                    x
                } else {
                    MatRef::from_row_major_slice(&trace.acts[i], n, p.fan_in)
                };
                let dmat = MatRef::from_row_major_slice(delta, n, p.fan_out);
                matmul(
                    MatMut::from_row_major_slice_mut(w_part, p.fan_out, p.fan_in),
                    Accum::Replace,
                    dmat.transpose(),
                    a,
                    T::from_f64(p.w_scale),
                    par(),
                );
                b_part.fill(T::zero_impl());
                for row in delta.chunks_exact(p.fan_out) {
                    T::axpy(sb, row, b_part);
                }
            }
            LayerKind::Conv { .. } => {
                let g = ConvGeom::of(layer).expect("conv");
                let (is, os, np) = (g.in_len(), layer.output.size(), g.positions());
                let ckk = g.patch_len();
                // Sample groups of a size fixed by N alone, summed in order: the result does
                // not depend on the number of threads.
                let group = n.div_ceil(64).max(8);
                let acts = &trace.acts[i];
                // Per group [dW | db] = Σ_n δ_n [P_n | 1] (a ones column sums over positions).
                let partials: Vec<Vec<T>> = (0..n.div_ceil(group))
                    .into_par_iter()
                    .map(|t| {
                        let mut part = vec![T::zero_impl(); p.fan_out * (ckk + 1)];
                        let mut cols = vec![T::one_impl(); (ckk + 1) * np];
                        for s in t * group..((t + 1) * group).min(n) {
                            g.im2col(&acts[s * is..(s + 1) * is], &mut cols[..ckk * np]);
                            let d = &delta[s * os..(s + 1) * os];
                            matmul(
                                MatMut::from_row_major_slice_mut(&mut part, p.fan_out, ckk + 1),
                                Accum::Add,
                                MatRef::from_row_major_slice(d, p.fan_out, np),
                                MatRef::from_row_major_slice(&cols, ckk + 1, np).transpose(),
                                T::one_impl(),
                                Par::Seq,
                            );
                        }
                        part
                    })
                    .collect();
                w_part.fill(T::zero_impl());
                b_part.fill(T::zero_impl());
                for part in &partials {
                    for ((wrow, b), prow) in w_part
                        .chunks_exact_mut(ckk)
                        .zip(b_part.iter_mut())
                        .zip(part.chunks_exact(ckk + 1))
                    {
                        for (d, &v) in wrow.iter_mut().zip(&prow[..ckk]) {
                            *d += v;
                        }
                        *b += prow[ckk];
                    }
                }
                let sw = T::from_f64(p.w_scale);
                if sw != T::one_impl() {
                    w_part.iter_mut().for_each(|w| *w *= sw);
                }
                if sb != T::one_impl() {
                    b_part.iter_mut().for_each(|b| *b *= sb);
                }
            }
            _ => unreachable!("param_grad on a layer without parameters"),
        }
    }

    /// Backpropagates `rows` cotangents of layer `i`'s output (`dout`, row-major
    /// `rows × out`) to its input (`din`, `rows × in`); row `r` belongs to sample
    /// `s0 + r / rep` of the trace. Activations and flatten are handled in place by the
    /// callers; every other kind is handled here.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn backward_data<T: Real>(
        &self,
        i: usize,
        theta: &[T],
        trace: &Trace<T>,
        dout: &[T],
        din: &mut [T],
        rep: usize,
        s0: usize,
        parallel: bool,
    ) {
        let layer = &self.layers[i];
        let (is, os) = (layer.input.size(), layer.output.size());
        let rows = dout.len() / os;
        match layer.kind {
            LayerKind::Dense { .. } => {
                let p = params_of(layer);
                matmul(
                    MatMut::from_row_major_slice_mut(din, rows, is),
                    Accum::Replace,
                    MatRef::from_row_major_slice(dout, rows, os),
                    p.weights(theta),
                    T::from_f64(p.w_scale),
                    if parallel { par() } else { Par::Seq },
                );
            }
            LayerKind::Conv { .. } => {
                let g = ConvGeom::of(layer).expect("conv");
                let p = params_of(layer);
                let np = g.positions();
                let ckk = g.patch_len();
                let sw = T::from_f64(p.w_scale);
                let run = |cols: &mut Vec<T>, _: usize, d: &[T], o: &mut [T]| {
                    matmul(
                        MatMut::from_row_major_slice_mut(cols, ckk, np),
                        Accum::Replace,
                        p.weights(theta).transpose(),
                        MatRef::from_row_major_slice(d, g.out, np),
                        sw,
                        Par::Seq,
                    );
                    g.col2im(cols, o);
                };
                let init = || vec![T::zero_impl(); ckk * np];
                if parallel {
                    per_sample(dout, os, din, is, init, run);
                } else {
                    let mut cols = init();
                    for (r, (d, o)) in dout
                        .chunks_exact(os)
                        .zip(din.chunks_exact_mut(is))
                        .enumerate()
                    {
                        run(&mut cols, r, d, o);
                    }
                }
            }
            LayerKind::AvgPool { size } => {
                let f = |_: &mut (), _: usize, d: &[T], o: &mut [T]| {
                    super::pool::avg_backward(layer.input, size, d, o)
                };
                if parallel {
                    per_sample(dout, os, din, is, || (), f);
                } else {
                    for (d, o) in dout.chunks_exact(os).zip(din.chunks_exact_mut(is)) {
                        f(&mut (), 0, d, o);
                    }
                }
            }
            LayerKind::MaxPool { .. } => {
                let idx = &trace.index[i];
                let f = |_: &mut (), r: usize, d: &[T], o: &mut [T]| {
                    let s = s0 + r / rep;
                    super::pool::max_backward(&idx[s * os..(s + 1) * os], d, o)
                };
                if parallel {
                    per_sample(dout, os, din, is, || (), f);
                } else {
                    for (r, (d, o)) in dout
                        .chunks_exact(os)
                        .zip(din.chunks_exact_mut(is))
                        .enumerate()
                    {
                        f(&mut (), r, d, o);
                    }
                }
            }
            LayerKind::Activation(_) | LayerKind::Flatten => {
                unreachable!("activations and flatten are backpropagated in place")
            }
        }
    }
}
