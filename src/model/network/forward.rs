//! The forward pass of a network into a [`Trace`] and the forward-mode product `J v` on it.
//!
//! Trace: row `n` of `acts[0]` is sample `n` of `X` (row-major copy), `acts[l]` is the input
//! of each dense or conv layer `l ≥ 1`, `derivs[l] = φ'(z)` at each activation layer's input,
//! `index[l]` the window maxima of each max-pooling layer, `output = f(X; θ)`.
//!
//! JVP, layer by layer on the tangent `ṫ` of the layer input (zero below the first
//! parameterised layer): dense `ż = s_w (ṫ Wᵀ + a dWᵀ) + s_b db`; conv per sample
//! `ż = s_w (W Ṗᵀ + dW Pᵀ) + s_b db` with `P`, `Ṗ` the patch matrices of `a`, `ṫ`;
//! activation `φ'(z) ⊙ ṫ`; pooling and flatten applied to `ṫ` (max pooling gathers at the
//! traced maxima).

use super::conv::ConvGeom;
use super::net::{Network, params_of};
use super::pool;
use super::spec::LayerKind;
use crate::Real;
use crate::backend::cpu::mul_elementwise_par;
use crate::linalg::par;
use crate::model::Layer;
use crate::model::mlp::affine;
use crate::model::trace::{Trace, Workspace, set_len};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// Per-sample work below this many entries runs on one thread.
const SERIAL_BELOW: usize = 1 << 15;

/// Applies `f(input_n, output_n)` to every sample, in parallel when the work is large.
pub(crate) fn per_sample<T: Real, S: Send>(
    inp: &[T],
    is: usize,
    out: &mut [T],
    os: usize,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, usize, &[T], &mut [T]) + Sync + Send,
) {
    if is == 0 || os == 0 {
        return;
    }
    if inp.len() + out.len() < SERIAL_BELOW {
        let mut s = init();
        for (n, (a, o)) in inp
            .chunks_exact(is)
            .zip(out.chunks_exact_mut(os))
            .enumerate()
        {
            f(&mut s, n, a, o);
        }
    } else {
        inp.par_chunks_exact(is)
            .zip(out.par_chunks_exact_mut(os))
            .enumerate()
            .for_each_init(init, |s, (n, (a, o))| f(s, n, a, o));
    }
}

/// `z ← s_b b 1ᵀ + s_w W Pᵀ` for one sample (`z` is `OUT × H'W'` row-major; `cols` holds
/// `P` from [`ConvGeom::im2col`]), with `Accum::Add` when `add` (then the bias is not added).
pub(crate) fn conv_apply<T: Real>(
    g: &ConvGeom,
    p: &Layer,
    w_src: &[T],
    cols: &[T],
    z: &mut [T],
    add: bool,
) {
    let np = g.positions();
    if !add {
        let sb = T::from_f64(p.b_scale);
        for (o, row) in z.chunks_exact_mut(np).enumerate() {
            row.fill(sb * w_src[p.b_offset + o]);
        }
    }
    matmul(
        MatMut::from_row_major_slice_mut(z, g.out, np),
        Accum::Add,
        p.weights(w_src),
        MatRef::from_row_major_slice(cols, g.patch_len(), np),
        T::from_f64(p.w_scale),
        Par::Seq,
    );
}

impl Network {
    /// Forward pass at θ on `X` into `trace`, keeping what the JVP, VJP and Jacobian at the
    /// same θ and `X` reuse (reusing the trace's buffers). Afterwards [`Trace::output`] is
    /// `f(X; θ)` row-major.
    ///
    /// # Panics
    /// If `θ.len() != P` or `X` does not have `C·H·W` columns.
    #[track_caller]
    pub fn trace_into<T: Real>(&self, theta: &[T], x: MatRef<'_, T>, trace: &mut Trace<T>) {
        self.check_theta_x("trace_into", theta, x);
        self.run_forward(theta, x, trace, true);
    }

    /// The forward pass; with `keep`, also the inputs of dense/conv layers and the
    /// activation derivatives.
    pub(crate) fn run_forward<T: Real>(
        &self,
        theta: &[T],
        x: MatRef<'_, T>,
        tr: &mut Trace<T>,
        keep: bool,
    ) {
        let n = x.nrows();
        let nl = self.layers.len();
        let d = self.input.size();
        tr.n = n;
        tr.acts.resize_with(nl, Vec::new);
        tr.derivs.resize_with(nl, Vec::new);
        tr.index.resize_with(nl, Vec::new);
        set_len(&mut tr.acts[0], n * d);
        MatMut::from_row_major_slice_mut(&mut tr.acts[0], n, d).copy_from(x);
        let mut pool = vec![std::mem::take(&mut tr.z), std::mem::take(&mut tr.scratch)];
        let mut inp = std::mem::take(&mut tr.acts[0]);
        let mut slot = Some(0);
        for (i, layer) in self.layers.iter().enumerate() {
            let last = i + 1 == nl;
            let keep_out = !last && keep && self.layers[i + 1].params.is_some();
            let mut out = if last {
                std::mem::take(&mut tr.output)
            } else if keep_out {
                std::mem::take(&mut tr.acts[i + 1])
            } else {
                pool.pop().unwrap_or_default()
            };
            set_len(&mut out, n * layer.output.size());
            let (deriv, index) = (&mut tr.derivs[i], &mut tr.index[i]);
            self.forward_layer(i, theta, x, &inp, &mut out, deriv, index, keep);
            match slot {
                Some(j) => tr.acts[j] = inp,
                None => pool.push(inp),
            }
            inp = out;
            slot = if keep_out { Some(i + 1) } else { None };
        }
        tr.output = inp;
        tr.scratch = pool.pop().unwrap_or_default();
        tr.z = pool.pop().unwrap_or_default();
        for i in 1..nl {
            if !(keep && self.layers[i].params.is_some()) {
                tr.acts[i].clear();
            }
        }
    }

    /// One layer of the forward pass, `inp` (row-major `N × in`) to `out` (`N × out`).
    #[allow(clippy::too_many_arguments)]
    fn forward_layer<T: Real>(
        &self,
        i: usize,
        theta: &[T],
        x: MatRef<'_, T>,
        inp: &[T],
        out: &mut [T],
        deriv: &mut Vec<T>,
        index: &mut Vec<u32>,
        keep: bool,
    ) {
        let layer = &self.layers[i];
        let n = x.nrows();
        let (is, os) = (layer.input.size(), layer.output.size());
        if !matches!(layer.kind, LayerKind::Activation(_)) {
            deriv.clear();
        }
        if !matches!(layer.kind, LayerKind::MaxPool { .. }) {
            index.clear();
        }
        match layer.kind {
            LayerKind::Dense { .. } => {
                let p = params_of(layer);
                let input = if i == 0 {
                    x
                } else {
                    MatRef::from_row_major_slice(inp, n, p.fan_in)
                };
                affine(theta, p, input, out);
            }
            LayerKind::Conv { .. } => {
                let g = ConvGeom::of(layer).expect("conv");
                let p = params_of(layer);
                per_sample(
                    inp,
                    is,
                    out,
                    os,
                    || vec![T::zero_impl(); g.patch_len() * g.positions()],
                    |cols, _, a, z| {
                        g.im2col(a, cols);
                        conv_apply(&g, p, theta, cols, z, false);
                    },
                );
            }
            LayerKind::Activation(act) => {
                if keep {
                    set_len(deriv, inp.len());
                    act.apply_slice(inp, out, Some(deriv));
                } else {
                    deriv.clear();
                    act.apply_slice(inp, out, None);
                }
            }
            LayerKind::AvgPool { size } => {
                per_sample(
                    inp,
                    is,
                    out,
                    os,
                    || (),
                    |_, _, a, o| pool::avg_forward(layer.input, size, a, o),
                );
            }
            LayerKind::MaxPool { size } => {
                set_len(index, n * os);
                let idx = index.as_mut_slice();
                if n * (is + os) < SERIAL_BELOW {
                    for ((a, o), ix) in inp
                        .chunks_exact(is)
                        .zip(out.chunks_exact_mut(os))
                        .zip(idx.chunks_exact_mut(os))
                    {
                        pool::max_forward(layer.input, size, a, o, ix);
                    }
                } else {
                    inp.par_chunks_exact(is)
                        .zip(out.par_chunks_exact_mut(os))
                        .zip(idx.par_chunks_exact_mut(os))
                        .for_each(|((a, o), ix)| pool::max_forward(layer.input, size, a, o, ix));
                }
            }
            LayerKind::Flatten => out.copy_from_slice(inp),
        }
    }

    /// `J v` at the θ and `X` of `trace` (see [`trace_into`](Self::trace_into)), written
    /// row-major (`N·C` entries) into `jv`; `ws` is scratch.
    ///
    /// # Panics
    /// If `θ`, `X`, `v` or `jv` do not fit the network and the trace.
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
            "Network::jvp_with_trace_into: tangent has length {}, θ has length {}",
            v.len(),
            theta.len()
        );
        let c = self.n_out();
        assert_eq!(
            jv.len(),
            n * c,
            "Network::jvp_with_trace_into: output has {} entries, expected N·C = {n}·{c}",
            jv.len()
        );
        let (mut cur, mut nxt) = (&mut ws.a, &mut ws.b);
        let mut zero = true;
        for (i, layer) in self.layers.iter().enumerate() {
            let (is, os) = (layer.input.size(), layer.output.size());
            match layer.kind {
                LayerKind::Dense { .. } => {
                    let p = params_of(layer);
                    set_len(nxt, n * os);
                    let input = if i == 0 {
                        x
                    } else {
                        MatRef::from_row_major_slice(&trace.acts[i], n, is)
                    };
                    affine(v, p, input, nxt);
                    if !zero {
                        matmul(
                            MatMut::from_row_major_slice_mut(nxt, n, os),
                            Accum::Add,
                            MatRef::from_row_major_slice(&cur[..n * is], n, is),
                            p.weights(theta).transpose(),
                            T::from_f64(p.w_scale),
                            par(),
                        );
                    }
                }
                LayerKind::Conv { .. } => {
                    let g = ConvGeom::of(layer).expect("conv");
                    let p = params_of(layer);
                    set_len(nxt, n * os);
                    let tangent: Option<&[T]> = if zero { None } else { Some(&cur[..n * is]) };
                    let (ckk, npos) = (g.patch_len(), g.positions());
                    match tangent {
                        None => per_sample(
                            &trace.acts[i],
                            is,
                            nxt,
                            os,
                            || vec![T::zero_impl(); ckk * npos],
                            |cols, _, a, z| {
                                g.im2col(a, cols);
                                conv_apply(&g, p, v, cols, z, false);
                            },
                        ),
                        Some(t) => {
                            // One GEMM per sample: ż = s_b db + s_w [dW | W] · [P; Ṗ].
                            let mut wcat = vec![T::zero_impl(); g.out * 2 * ckk];
                            for (o, row) in wcat.chunks_exact_mut(2 * ckk).enumerate() {
                                row[..ckk].copy_from_slice(
                                    &v[p.w_offset + o * ckk..p.w_offset + (o + 1) * ckk],
                                );
                                row[ckk..].copy_from_slice(
                                    &theta[p.w_offset + o * ckk..p.w_offset + (o + 1) * ckk],
                                );
                            }
                            let sb = T::from_f64(p.b_scale);
                            let sw = T::from_f64(p.w_scale);
                            per_sample(
                                &trace.acts[i],
                                is,
                                nxt,
                                os,
                                || vec![T::zero_impl(); 2 * ckk * npos],
                                |cols, s, a, z| {
                                    let (c1, c2) = cols.split_at_mut(ckk * npos);
                                    g.im2col(a, c1);
                                    g.im2col(&t[s * is..(s + 1) * is], c2);
                                    for (o, row) in z.chunks_exact_mut(npos).enumerate() {
                                        row.fill(sb * v[p.b_offset + o]);
                                    }
                                    matmul(
                                        MatMut::from_row_major_slice_mut(z, g.out, npos),
                                        Accum::Add,
                                        MatRef::from_row_major_slice(&wcat, g.out, 2 * ckk),
                                        MatRef::from_row_major_slice(cols, 2 * ckk, npos),
                                        sw,
                                        Par::Seq,
                                    );
                                },
                            );
                        }
                    }
                }
                _ if zero => continue,
                LayerKind::Activation(_) => {
                    mul_elementwise_par(&mut cur[..n * is], &trace.derivs[i]);
                    continue;
                }
                LayerKind::Flatten => continue,
                LayerKind::AvgPool { size } => {
                    set_len(nxt, n * os);
                    per_sample(
                        &cur[..n * is],
                        is,
                        nxt,
                        os,
                        || (),
                        |_, _, a, o| pool::avg_forward(layer.input, size, a, o),
                    );
                }
                LayerKind::MaxPool { .. } => {
                    set_len(nxt, n * os);
                    let idx = &trace.index[i];
                    per_sample(
                        &cur[..n * is],
                        is,
                        nxt,
                        os,
                        || (),
                        |_, s, a, o| pool::max_gather(&idx[s * os..(s + 1) * os], a, o),
                    );
                }
            }
            zero = false;
            std::mem::swap(&mut cur, &mut nxt);
        }
        jv.copy_from_slice(&cur[..n * c]);
    }
}
