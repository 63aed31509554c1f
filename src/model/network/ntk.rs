//! The structured empirical NTK `Θ = J Jᵀ = Σ_l J_l J_lᵀ` of a network, with a per-layer
//! choice between two ways of computing each layer's term:
//! - **assemble** from backprop signals, never forming `J_l`: a dense layer gives
//!   `(G Gᵀ) ⊙ ((s_w² A Aᵀ + s_b²) ⊗ 1_{C×C})`; a conv layer gives
//!   `Σ_{p,p'} (G_p G_{p'}ᵀ) ⊙ ((s_w² Q_p Q_{p'}ᵀ + s_b²) ⊗ 1_{C×C})`, where `G_p` holds the
//!   signals at output position `p` (`N·C × OUT`) and `Q_p` the patches at `p` (`N × C_in K²`);
//! - **contract** the layer's Jacobian block `J_l` (`N·C × P_l`, written from the signals
//!   as in the explicit Jacobian) into `J_l J_lᵀ`.
//!
//! A flop/memory model ([`Network::ntk_layer_costs`]) picks the cheaper per layer: early conv
//! layers (many positions, few parameters) contract, dense layers assemble.

use super::conv::ConvGeom;
use super::jacobian::SignalBufs;
use super::net::{Network, params_of};
use super::spec::LayerKind;
use crate::Real;
use crate::backend::cpu_ntk::{PANEL, activation_kernel, add_signal_gram, hadamard_add_panel};
use crate::linalg::{gram_lower, par};
use crate::model::trace::Trace;
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef};
use rayon::prelude::*;

/// How one layer's term of the structured NTK is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerNtk {
    /// The cheaper of the two by the cost model of [`Network::ntk_layer_costs`].
    Auto,
    /// From Grams of signals and of layer inputs (patches), without `J_l`.
    Assemble,
    /// `J_l J_lᵀ` from the layer's Jacobian block.
    Contract,
}

/// One signal task of the NTK: its index, its rows of `J_e`, its rows of each assembled
/// layer's signals.
type Task<'a, T> = (usize, &'a mut [T], Vec<&'a mut [T]>);

/// Weight of one word of memory in the cost model, in multiply-adds.
const WORD_COST: f64 = 8.0;

impl Network {
    /// For each parameterised layer on `n` samples: `(layer index, assemble cost, contract
    /// cost)`, in multiply-adds plus `8 ×` the words of memory each needs (`M = N·C` rows,
    /// `P_l` parameters, `H'W'` output positions):
    /// - dense: assemble `M²·OUT/2 + N²·IN/2 + M²` + words `M·OUT + N²`; contract
    ///   `M·P_l + M²·P_l/2` + words `M·P_l`;
    /// - conv: assemble `(H'W')²·(M²·OUT + N²·C_in K² + M²)` + words
    ///   `M·OUT·H'W' + N·H'W'·C_in K² + M² + N²`; contract `M·OUT·H'W'·C_in K² + M²·P_l/2` +
    ///   words `M·P_l`.
    pub fn ntk_layer_costs(&self, n: usize) -> Vec<(usize, f64, f64)> {
        let m = (n * self.n_out()) as f64;
        let nf = n as f64;
        self.layers
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                let p = l.params?;
                let pl = (p.fan_in * p.fan_out + p.fan_out) as f64;
                let (out, fan_in) = (p.fan_out as f64, p.fan_in as f64);
                let (assemble, contract) = match l.kind {
                    LayerKind::Conv { .. } => {
                        let np = (l.output.h * l.output.w) as f64;
                        (
                            np * np * (m * m * out + nf * nf * fan_in + m * m)
                                + WORD_COST * (m * out * np + nf * np * fan_in + m * m + nf * nf),
                            m * out * np * fan_in + m * m * pl / 2.0 + WORD_COST * m * pl,
                        )
                    }
                    _ => (
                        m * m * out / 2.0
                            + nf * nf * fan_in / 2.0
                            + m * m
                            + WORD_COST * (m * out + nf * nf),
                        m * pl + m * m * pl / 2.0 + WORD_COST * m * pl,
                    ),
                };
                Some((i, assemble, contract))
            })
            .collect()
    }

    /// The choice per parameterised layer (`(layer index, Assemble | Contract)`) that
    /// [`ntk_lower_with`](Self::ntk_lower_with) makes for `choice` on `n` samples.
    pub fn ntk_plan(&self, n: usize, choice: LayerNtk) -> Vec<(usize, LayerNtk)> {
        self.ntk_layer_costs(n)
            .into_iter()
            .map(|(i, a, c)| {
                let pick = match choice {
                    LayerNtk::Auto => {
                        if a <= c {
                            LayerNtk::Assemble
                        } else {
                            LayerNtk::Contract
                        }
                    }
                    other => other,
                };
                (i, pick)
            })
            .collect()
    }

    /// Cost estimates `(explicit, structured)` of the two NTK methods on `n` samples: the
    /// explicit `J Jᵀ` (`M·P + M²·P/2`) and the sum over layers of the cheaper per-layer
    /// term (see [`ntk_layer_costs`](Self::ntk_layer_costs)).
    pub fn ntk_flop_estimates(&self, n: usize) -> (f64, f64) {
        let m = (n * self.n_out()) as f64;
        let p = self.n_params as f64;
        let s = self
            .ntk_layer_costs(n)
            .iter()
            .map(|&(_, a, c)| a.min(c))
            .sum();
        (m * p + m * m * p / 2.0 + WORD_COST * m * p, s)
    }

    /// The lower triangle (diagonal included) of `Θ = J Jᵀ`, `(N·C) × (N·C)` in row order
    /// `n·C + c`, each layer's term assembled or contracted as `choice` says (forced for
    /// every layer, or [`LayerNtk::Auto`] by the cost model). The strict upper triangle is
    /// unspecified.
    ///
    /// # Panics
    /// If `θ.len() != P` or `X` does not have `C·H·W` columns.
    #[track_caller]
    pub fn ntk_lower_with<T: Real>(
        &self,
        theta: &[T],
        x: MatRef<'_, T>,
        choice: LayerNtk,
    ) -> Mat<T> {
        self.check_theta_x("ntk_lower", theta, x);
        let n = x.nrows();
        let c = self.n_out();
        let m = n * c;
        let mut out = Mat::<T>::zeros(m, m);
        if m == 0 {
            return out;
        }
        let mut trace = Trace::new();
        self.run_forward(theta, x, &mut trace, true);
        let plan = self.ntk_plan(n, choice);
        // Column offsets of the contracted blocks in J_e, slot of each assembled layer.
        let nl = self.layers.len();
        let mut e_off = vec![usize::MAX; nl];
        let mut g_slot = vec![usize::MAX; nl];
        let (mut pe, mut n_assembled) = (0usize, 0usize);
        for &(i, how) in &plan {
            if how == LayerNtk::Contract {
                e_off[i] = pe;
                pe += self.layers[i].n_params();
            } else {
                g_slot[i] = n_assembled;
                n_assembled += 1;
            }
        }
        let assembled: Vec<usize> = plan
            .iter()
            .filter(|p| p.1 == LayerNtk::Assemble)
            .map(|p| p.0)
            .collect();
        let mut je = vec![T::zero_impl(); m * pe];
        let mut gs: Vec<Vec<T>> = assembled
            .iter()
            .map(|&i| vec![T::zero_impl(); m * self.layers[i].output.size()])
            .collect();
        // Split every buffer into the row slabs of the sample chunks.
        let ns = self.signal_chunk(n);
        let n_tasks = n.div_ceil(ns);
        let mut tasks: Vec<Task<'_, T>> = Vec::with_capacity(n_tasks);
        {
            let mut je_rest: &mut [T] = &mut je;
            let mut g_rest: Vec<&mut [T]> = gs.iter_mut().map(|g| g.as_mut_slice()).collect();
            for t in 0..n_tasks {
                let cnt = ns.min(n - t * ns);
                let (a, b) = std::mem::take(&mut je_rest).split_at_mut(cnt * c * pe);
                je_rest = b;
                let mut slabs = Vec::with_capacity(g_rest.len());
                for (k, g) in g_rest.iter_mut().enumerate() {
                    let os = self.layers[assembled[k]].output.size();
                    let (a, b) = std::mem::take(g).split_at_mut(cnt * c * os);
                    *g = b;
                    slabs.push(a);
                }
                tasks.push((t, a, slabs));
            }
        }
        tasks.into_par_iter().for_each(|(t, je_slab, mut g_slabs)| {
            let s0 = t * ns;
            let cnt = ns.min(n - s0);
            let mut bufs = SignalBufs::default();
            self.backprop_signals(theta, &trace, s0, cnt, &mut bufs, |i, g, cols| {
                if g_slot[i] != usize::MAX {
                    g_slabs[g_slot[i]].copy_from_slice(g);
                } else {
                    self.write_blocks(i, &trace, s0, g, je_slab, pe, e_off[i], cols);
                }
            });
        });
        if pe > 0 {
            gram_lower(
                out.as_mut(),
                MatRef::from_row_major_slice(&je, m, pe),
                T::one_impl(),
                false,
            );
        }
        drop(je);
        for (k, &i) in assembled.iter().enumerate() {
            match self.layers[i].kind {
                LayerKind::Dense { .. } => self.assemble_dense(i, &trace, &gs[k], &mut out),
                _ => self.assemble_conv(i, &trace, &gs[k], &mut out),
            }
        }
        out
    }

    /// `Θ += (G Gᵀ) ⊙ ((s_w² A Aᵀ + s_b²) ⊗ 1_{C×C})` (lower part) for dense layer `i`.
    fn assemble_dense<T: Real>(&self, i: usize, trace: &Trace<T>, g: &[T], theta: &mut Mat<T>) {
        let layer = &self.layers[i];
        let p = params_of(layer);
        let (n, c) = (trace.n, self.n_out());
        let m = n * c;
        let ka = activation_kernel(&trace.acts[i], n, p.fan_in, p.w_scale, p.b_scale);
        let g = MatRef::from_row_major_slice(g, m, p.fan_out);
        let mut panel = Mat::<T>::zeros(m, PANEL.min(m));
        add_signal_gram(theta.as_mut(), g, &ka, c, &mut panel);
    }

    /// `Θ += Σ_{p,p'} (G_p G_{p'}ᵀ) ⊙ ((s_w² Q_p Q_{p'}ᵀ + s_b²) ⊗ 1_{C×C})` (lower part) for
    /// conv layer `i`.
    fn assemble_conv<T: Real>(&self, i: usize, trace: &Trace<T>, g: &[T], theta: &mut Mat<T>) {
        let layer = &self.layers[i];
        let p = params_of(layer);
        let geo = ConvGeom::of(layer).expect("conv");
        let (n, c) = (trace.n, self.n_out());
        let m = n * c;
        let (np, ckk, out, is) = (geo.positions(), geo.patch_len(), geo.out, geo.in_len());
        let os = out * np;
        // S[p] = G_p (M × OUT), Q[p] = Q_p (N × C_in K²), each contiguous row-major.
        let mut s_buf = vec![T::zero_impl(); np * m * out];
        for r in 0..m {
            for o in 0..out {
                for q in 0..np {
                    s_buf[(q * m + r) * out + o] = g[r * os + o * np + q];
                }
            }
        }
        let mut q_buf = vec![T::zero_impl(); np * n * ckk];
        let mut cols = vec![T::zero_impl(); ckk * np];
        for s in 0..n {
            geo.im2col(&trace.acts[i][s * is..(s + 1) * is], &mut cols);
            for k in 0..ckk {
                for q in 0..np {
                    q_buf[(q * n + s) * ckk + k] = cols[k * np + q];
                }
            }
        }
        let sw2 = T::from_f64(p.w_scale * p.w_scale);
        let sb2 = T::from_f64(p.b_scale * p.b_scale);
        let mut panel = Mat::<T>::zeros(m, m);
        let mut kq = Mat::<T>::zeros(n, n);
        for p1 in 0..np {
            let s1 = MatRef::from_row_major_slice(&s_buf[p1 * m * out..(p1 + 1) * m * out], m, out);
            let q1 = MatRef::from_row_major_slice(&q_buf[p1 * n * ckk..(p1 + 1) * n * ckk], n, ckk);
            for p2 in 0..np {
                let s2 =
                    MatRef::from_row_major_slice(&s_buf[p2 * m * out..(p2 + 1) * m * out], m, out);
                let q2 =
                    MatRef::from_row_major_slice(&q_buf[p2 * n * ckk..(p2 + 1) * n * ckk], n, ckk);
                matmul(
                    panel.as_mut(),
                    Accum::Replace,
                    s1,
                    s2.transpose(),
                    T::one_impl(),
                    par(),
                );
                matmul(kq.as_mut(), Accum::Replace, q1, q2.transpose(), sw2, par());
                for j in 0..n {
                    for ii in 0..n {
                        kq[(ii, j)] += sb2;
                    }
                }
                hadamard_add_panel(theta.as_mut(), panel.as_ref(), &kq, c, 0);
            }
        }
    }
}
