//! Backprop signals for all `N·C` outputs and the explicit Jacobian of a network.
//!
//! The signal of output `c` of sample `n` at layer `l` is `g_{l,nc} = ∂f_c(x_n)/∂(output of
//! l)`; the `C` signals of a sample are backpropagated together (seeds `e_c`), a chunk of
//! samples per task. The Jacobian blocks of a parameterised layer in row `n·C + c` are
//! - dense: `∂/∂W = s_w g ⊗ a_n`, `∂/∂b = s_b g`;
//! - conv: `∂/∂W = s_w Σ_p g[·,p] ⊗ P_n[p,·]` (`g` as `OUT × H'W'`: one GEMM `g P_n` per
//!   row over the output positions), `∂/∂b = s_b Σ_p g[·,p]`.

use super::conv::ConvGeom;
use super::net::{Network, params_of};
use super::spec::LayerKind;
use crate::Real;
use crate::model::trace::{Trace, set_len};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// Scratch of one signal task: two ping-pong row buffers and a patch matrix.
#[derive(Default)]
pub(crate) struct SignalBufs<T> {
    a: Vec<T>,
    b: Vec<T>,
    pub cols: Vec<T>,
}

impl Network {
    /// Samples per signal task: the row buffers of a task (`ns·C` rows of the widest layer)
    /// stay within about 1 MiB of f32 so that a sample's signals stay in cache between
    /// layers, dense layers still get GEMMs of many rows, and every thread gets work.
    pub(crate) fn signal_chunk(&self, n: usize) -> usize {
        let c = self.n_out().max(1);
        let widest = self
            .layers
            .iter()
            .map(|l| l.output.size().max(l.input.size()))
            .max()
            .unwrap_or(1);
        let by_cache = (1usize << 18) / (c * widest).max(1);
        let by_threads = n.div_ceil(rayon::current_num_threads().max(1) * 2);
        by_cache.min(by_threads).max(1)
    }

    /// Backpropagates the `C` seeds of samples `s0..s0+ns` and calls
    /// `sink(l, g, bufs_cols)` at every parameterised layer `l` with its signals `g`
    /// (row-major `(ns·C) × out_l`, row `(n−s0)·C + c`).
    pub(crate) fn backprop_signals<T: Real>(
        &self,
        theta: &[T],
        trace: &Trace<T>,
        s0: usize,
        ns: usize,
        bufs: &mut SignalBufs<T>,
        mut sink: impl FnMut(usize, &[T], &mut Vec<T>),
    ) {
        let c = self.n_out();
        let rows = ns * c;
        let fp = self.first_param();
        let (mut cur, mut nxt) = (std::mem::take(&mut bufs.a), std::mem::take(&mut bufs.b));
        set_len(&mut cur, rows * c);
        cur.fill(T::zero_impl());
        for r in 0..rows {
            cur[r * c + r % c] = T::one_impl();
        }
        for i in (fp..self.layers.len()).rev() {
            let layer = &self.layers[i];
            let os = layer.output.size();
            if layer.params.is_some() {
                sink(i, &cur[..rows * os], &mut bufs.cols);
            }
            if i == fp {
                break;
            }
            match layer.kind {
                LayerKind::Activation(_) => {
                    let d = &trace.derivs[i];
                    for (r, row) in cur[..rows * os].chunks_exact_mut(os).enumerate() {
                        let s = s0 + r / c;
                        T::mul_elementwise(row, &d[s * os..(s + 1) * os]);
                    }
                }
                LayerKind::Flatten => {}
                _ => {
                    set_len(&mut nxt, rows * layer.input.size());
                    self.backward_data(i, theta, trace, &cur[..rows * os], &mut nxt, c, s0, false);
                    std::mem::swap(&mut cur, &mut nxt);
                }
            }
        }
        bufs.a = cur;
        bufs.b = nxt;
    }

    /// Writes the Jacobian blocks of parameterised layer `i` for the signals `g` of samples
    /// `s0..s0+ns` into `dst`: row `r` of the block starts at `dst[r·stride + col0]` and has
    /// `W` (row-major) then `b`, as in θ.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write_blocks<T: Real>(
        &self,
        i: usize,
        trace: &Trace<T>,
        s0: usize,
        g: &[T],
        dst: &mut [T],
        stride: usize,
        col0: usize,
        cols: &mut Vec<T>,
    ) {
        let layer = &self.layers[i];
        let p = params_of(layer);
        let c = self.n_out();
        let (is, os) = (layer.input.size(), layer.output.size());
        let rows = g.len() / os;
        let nw = p.fan_in * p.fan_out;
        let sw = T::from_f64(p.w_scale);
        let sb = T::from_f64(p.b_scale);
        let acts = &trace.acts[i];
        match layer.kind {
            LayerKind::Dense { .. } => {
                for r in 0..rows {
                    let s = s0 + r / c;
                    let gr = &g[r * os..(r + 1) * os];
                    let row = &mut dst[r * stride + col0..r * stride + col0 + nw + p.fan_out];
                    let (w_block, b_block) = row.split_at_mut(nw);
                    T::outer_into_stream(sw, gr, &acts[s * is..(s + 1) * is], w_block);
                    for (d, &v) in b_block.iter_mut().zip(gr) {
                        *d = sb * v;
                    }
                }
            }
            LayerKind::Conv { .. } => {
                // Per sample one GEMM over the output positions for its C rows at once:
                // (C·OUT × H'W') · (H'W' × (C_in K² + 1)), the last column of the patch
                // matrix all ones (it sums the signal over positions: the bias block); then
                // each row's blocks are scaled into place.
                let geo = ConvGeom::of(layer).expect("conv");
                let (np, ckk) = (geo.positions(), geo.patch_len());
                let m_blk = c * p.fan_out;
                set_len(cols, (ckk + 1) * np + m_blk * (ckk + 1));
                let (pcols, prod) = cols.split_at_mut((ckk + 1) * np);
                pcols[ckk * np..].fill(T::one_impl());
                for r0 in (0..rows).step_by(c) {
                    let s = s0 + r0 / c;
                    let rc = c.min(rows - r0);
                    geo.im2col(&acts[s * is..(s + 1) * is], &mut pcols[..ckk * np]);
                    let g_blk = &g[r0 * os..(r0 + rc) * os];
                    let prod = &mut prod[..rc * p.fan_out * (ckk + 1)];
                    matmul(
                        MatMut::from_row_major_slice_mut(prod, rc * p.fan_out, ckk + 1),
                        Accum::Replace,
                        MatRef::from_row_major_slice(g_blk, rc * p.fan_out, np),
                        MatRef::from_row_major_slice(pcols, ckk + 1, np).transpose(),
                        T::one_impl(),
                        Par::Seq,
                    );
                    for k in 0..rc {
                        let r = r0 + k;
                        let row = &mut dst[r * stride + col0..r * stride + col0 + nw + p.fan_out];
                        let (w_block, b_block) = row.split_at_mut(nw);
                        let src = &prod[k * p.fan_out * (ckk + 1)..(k + 1) * p.fan_out * (ckk + 1)];
                        for ((wrow, b), srow) in w_block
                            .chunks_exact_mut(ckk)
                            .zip(b_block.iter_mut())
                            .zip(src.chunks_exact(ckk + 1))
                        {
                            T::scale_into(sw, &srow[..ckk], wrow);
                            *b = sb * srow[ckk];
                        }
                    }
                }
            }
            _ => unreachable!("write_blocks on a layer without parameters"),
        }
    }

    /// The explicit Jacobian, row-major `(N·C) × P`, into `out`.
    #[track_caller]
    pub(crate) fn jacobian_into_slice<T: Real>(
        &self,
        theta: &[T],
        x: MatRef<'_, T>,
        out: &mut [T],
    ) {
        self.check_theta_x("jacobian", theta, x);
        let mut trace = Trace::new();
        self.run_forward(theta, x, &mut trace, true);
        let (n, c, p) = (x.nrows(), self.n_out(), self.n_params);
        assert_eq!(
            out.len(),
            n * c * p,
            "Network::jacobian: buffer of {} for a {}×{p} Jacobian",
            out.len(),
            n * c
        );
        if n == 0 || p == 0 {
            return;
        }
        let ns = self.signal_chunk(n);
        out.par_chunks_mut(ns * c * p).enumerate().for_each_init(
            SignalBufs::default,
            |bufs, (t, slab)| {
                let s0 = t * ns;
                let cnt = slab.len() / (c * p);
                self.backprop_signals(theta, &trace, s0, cnt, bufs, |i, g, cols| {
                    let w_off = params_of(&self.layers[i]).w_offset;
                    self.write_blocks(i, &trace, s0, g, slab, p, w_off, cols);
                });
            },
        );
    }
}
