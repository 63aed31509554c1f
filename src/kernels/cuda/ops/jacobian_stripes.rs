//! The fourth Jacobian assembly (`jacobian_stripes` + `jacobian_gaps` of
//! `kernels/jacobian.cu`): one thread per 16-byte column slot of a layer's weight rows, its
//! activations held in registers, one streaming store per weight row; the packets around the
//! biases and the layer and row boundaries in a second, small kernel.

use super::layer::jac_table;
use super::{CudaBackend, JacobianLayer, Result, wr};
use crate::kernels::cuda::blas::CudaReal;
use crate::kernels::cuda::context::dev_err;
use crate::kernels::cuda::nvrtc::Family;
use cudarc::driver::{DevicePtrMut, LaunchConfig, PushKernelArg};

/// Threads per block of `jacobian_gaps` (a row's gaps hold a few hundred elements).
const GAP_THREADS: u32 = 128;

/// Weight rows per block of [`jacobian_stripes`] by default, for `W = 4` (f32) and `W = 2` (f64)
/// elements per 16-byte packet: the best of 2, 4, 8, 16, 32 and all (128) rows on an H100 for
/// 784-128-128-10 at N = 1024 and 8192 (`docs/bench/gpu-h100-cuda-bench-run8.log`, GB/s
/// written, f32 N = 1024: 2387 / 2638 / 2574 / 2769 / 2683 / 2435; f64: 2469 / 2756 / 2967 /
/// 2890 / 2790 / 2508). Blocks that each write a whole J row's weight block keep about a
/// thousand far-apart write streams open at once; a few rows per block keep the resident
/// blocks' stores in a narrow window, and too few leave a block too little work for its setup.
pub const DEFAULT_WEIGHT_ROWS: [(usize, usize); 2] = [(4, 16), (2, 8)];

/// Launch options of [`jacobian_stripes`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StripeOpts {
    /// Weight rows each block writes (rounded up to a multiple of the rows it writes at
    /// once); `0` picks [`DEFAULT_WEIGHT_ROWS`] for the type (fewer when the grid would
    /// otherwise have under `8 ·` SM count blocks).
    pub weight_rows_per_block: usize,
    /// Weight rows a block writes at once (`R`), at least; `0` or `1` keeps the default
    /// (`max(1, 256 / tc)`).
    pub min_rows_at_once: usize,
    /// Which of the two kernels to run: both (the default), or one of them alone to time it
    /// (then part of `J` is left unwritten).
    pub kernels: StripeKernels,
}

/// The kernels [`jacobian_stripes`] launches ([`StripeOpts::kernels`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StripeKernels {
    /// `jacobian_gaps` and `jacobian_stripes`: every element of `J`.
    #[default]
    Both,
    /// Only the weight stripes (timing).
    StripesOnly,
    /// Only the gaps (timing).
    GapsOnly,
}

/// Launch geometry of `jacobian_stripes` for one layer (see [`stripe_geometry`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StripeGeometry {
    /// Slots (16-byte packets) per weight row: `fan_in / W`.
    pub slots: usize,
    /// Slots per block (`tc`), at most 1024.
    pub slots_per_block: usize,
    /// Weight rows written at once by one block (`R`): `tc · R` threads.
    pub rows_at_once: usize,
    /// Weight rows per block (a multiple of `R`).
    pub rows_per_block: usize,
    /// Blocks per row of `J`: `zs = ⌈fan_out / rows_per_block⌉`.
    pub blocks_per_row: usize,
    /// Grid: `(m · zs, ⌈slots / tc⌉)`, block `x = r · zs + iz` (consecutive blocks write
    /// consecutive memory).
    pub grid: (usize, usize),
}

/// The geometry of `jacobian_stripes` for a layer `fan_in → fan_out` in a Jacobian of `m`
/// rows on a device with `sms` multiprocessors, `w = 16 / size_of::<T>()`: a block covers
/// `tc = min(fan_in / w, 1024)` slots of `R = max(1, 256 / tc, opts.min_rows_at_once)` weight
/// rows at a time (`tc · R ≤ 1024`), and `opts.weight_rows_per_block` rows in all (by default
/// [`DEFAULT_WEIGHT_ROWS`], fewer if `m` rows would give under `8 · sms` blocks). `None` when the kernel
/// does not apply: `fan_in` is not a multiple of `w`, or the grid would overflow.
pub fn stripe_geometry(
    w: usize,
    fan_in: usize,
    fan_out: usize,
    m: usize,
    sms: usize,
    opts: StripeOpts,
) -> Option<StripeGeometry> {
    if w == 0 || fan_in == 0 || !fan_in.is_multiple_of(w) || fan_out == 0 || m == 0 {
        return None;
    }
    let slots = fan_in / w;
    let tc = slots.min(1024);
    let chunks = slots.div_ceil(tc);
    let r = (if tc < 256 { 256 / tc } else { 1 })
        .max(opts.min_rows_at_once)
        .min(1024 / tc);
    let groups = fan_out.div_ceil(r);
    let per_block = if opts.weight_rows_per_block == 0 {
        let rows = DEFAULT_WEIGHT_ROWS
            .iter()
            .find(|&&(wd, _)| wd == w)
            .map_or(4, |&(_, rows)| rows);
        let want = (8 * sms.max(1)).div_ceil(m * chunks);
        let max_per_block = groups.div_ceil(want.clamp(1, groups));
        rows.div_ceil(r).clamp(1, max_per_block)
    } else {
        opts.weight_rows_per_block.div_ceil(r).min(groups)
    };
    let rows_per_block = per_block * r;
    let zs = fan_out.div_ceil(rows_per_block);
    let fits = m.checked_mul(zs).is_some_and(|x| x <= i32::MAX as usize) && chunks <= 65_535;
    fits.then_some(StripeGeometry {
        slots,
        slots_per_block: tc,
        rows_at_once: r,
        rows_per_block,
        blocks_per_row: zs,
        grid: (m * zs, chunks),
    })
}

/// Whether [`jacobian_stripes`] runs its own kernels for these layers (`(fan_in, fan_out)`) rather
/// than falling back to [`super::jacobian_all`]: every `fan_in` is a multiple of
/// `16 / size_of::<T>()` (then each weight row repeats the same 16-byte packet pattern) and
/// the grids fit. The Jacobian buffer must also be 16-byte aligned, checked at the call.
pub fn jacobian_v4_applies<T>(m: usize, dims: &[(usize, usize)]) -> bool {
    let w = 16 / std::mem::size_of::<T>();
    dims.iter()
        .all(|&(fi, fo)| stripe_geometry(w, fi, fo, m.max(1), 1, StripeOpts::default()).is_some())
}

/// The whole explicit Jacobian `J` (row-major `m × p`, `m = N·C`), the same values as
/// [`super::jacobian_all`] bit for bit:
/// `J[r, w_l + i·fan_in + k] = (s_w G_l[r, i]) A_{l−1}[r / C, k]`,
/// `J[r, w_l + fan_out·fan_in + i] = s_b G_l[r, i]`.
/// Per layer, `jacobian_stripes` writes every 16-byte packet lying wholly inside the weight
/// block: a thread holds the `W` activations of one column slot in registers and stores one
/// packet per weight row (no division, no per-element loads). Then `jacobian_gaps` writes the
/// packets around the biases and the layer and row boundaries element by element. Layers
/// whose `fan_in` is not a multiple of `W` or a misaligned `J` go to
/// [`super::jacobian_all`] ([`jacobian_v4_applies`]).
///
/// # Panics
/// As [`super::jacobian_all`].
///
/// # Errors
/// [`crate::Error::Device`] if a kernel cannot be compiled or launched, or a size exceeds 32 bits.
#[track_caller]
pub fn jacobian_stripes<T: CudaReal>(
    be: &CudaBackend,
    j: &mut impl DevicePtrMut<T>,
    m: usize,
    p: usize,
    c: usize,
    layers: &[JacobianLayer<'_, T>],
    opts: StripeOpts,
) -> Result<()> {
    let raw = jac_table(j.len(), m, p, c, layers, be, "jacobian_stripes")?;
    if m == 0 {
        return Ok(());
    }
    let w = 16 / std::mem::size_of::<T>();
    let sms = be.sm_count();
    let geoms: Option<Vec<StripeGeometry>> = layers
        .iter()
        .map(|l| stripe_geometry(w, l.fan_in, l.fan_out, m, sms, opts))
        .collect();
    let jp = wr(be, j);
    let Some(geoms) = geoms.filter(|_| jp % 16 == 0) else {
        return super::jacobian_all(be, j, m, p, c, layers);
    };
    let (mi, pi, ci) = (m as i64, p as i64, c as i32);
    let gaps = LaunchConfig {
        grid_dim: (m.min(be.sm_count().max(1) * 16) as u32, 1, 1),
        block_dim: (GAP_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    if opts.kernels != StripeKernels::StripesOnly {
        launch!(
            be,
            Family::Jacobian,
            "jacobian_gaps",
            T,
            gaps,
            [&jp, &mi, &pi, &raw]
        );
    }
    if opts.kernels == StripeKernels::GapsOnly {
        return Ok(());
    }
    for (l, g) in raw.l.iter().zip(&geoms) {
        let cfg = LaunchConfig {
            grid_dim: (g.grid.0 as u32, g.grid.1 as u32, 1),
            block_dim: ((g.slots_per_block * g.rows_at_once) as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        // tc ≤ 1024; rows_per_block < fan_out + R, and fan_out fits 32 bits (jac_table)
        let (tc, rpb, zs) = (
            g.slots_per_block as i32,
            g.rows_per_block as i32,
            g.blocks_per_row as i32,
        );
        launch!(
            be,
            Family::Jacobian,
            "jacobian_stripes",
            T,
            cfg,
            [
                &jp, &pi, &ci, &l.a, &l.g, &l.w_off, &l.fan_in, &l.fan_out, &l.sw, &tc, &rpb, &zs
            ]
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo(w: usize, fi: usize, fo: usize, m: usize) -> StripeGeometry {
        stripe_geometry(w, fi, fo, m, 132, StripeOpts::default()).unwrap()
    }

    #[test]
    fn geometry_of_the_benchmark_mlp() {
        // 784-128-128-10, f32 (W = 4), N = 1024: m = 10240 rows, 132 SMs.
        let g = geo(4, 784, 128, 10_240);
        assert_eq!(
            (g.slots, g.slots_per_block, g.rows_at_once, g.grid),
            (196, 196, 1, (10_240 * 8, 1))
        );
        assert_eq!((g.rows_per_block, g.blocks_per_row), (16, 8));
        // 32 slots: 8 weight rows at once, 16 per block
        let g = geo(4, 128, 10, 10_240);
        assert_eq!((g.slots_per_block, g.rows_at_once), (32, 8));
        assert_eq!((g.rows_per_block, g.grid), (16, (10_240, 1)));
        // f64 (W = 2): 392 slots per block, 8 weight rows.
        let g = geo(2, 784, 128, 10_240);
        assert_eq!((g.slots_per_block, g.rows_at_once), (392, 1));
        assert_eq!((g.rows_per_block, g.blocks_per_row), (8, 16));
        // few rows (m = 10): at most ⌈128 / ⌈8·132 / 10⌉⌉ = 2 weight rows per block
        let g = geo(2, 784, 128, 10);
        assert_eq!(
            (g.rows_per_block, g.blocks_per_row, g.grid),
            (2, 64, (640, 1))
        );
        // the whole weight block per block on request
        let all = StripeOpts {
            weight_rows_per_block: 128,
            ..Default::default()
        };
        let g = stripe_geometry(4, 784, 128, 10_240, 132, all).unwrap();
        assert_eq!((g.rows_per_block, g.grid), (128, (10_240, 1)));
        // options: one weight row per block, two at once
        let o = StripeOpts {
            weight_rows_per_block: 1,
            min_rows_at_once: 2,
            ..Default::default()
        };
        let g = stripe_geometry(4, 784, 128, 10_240, 132, o).unwrap();
        assert_eq!(
            (g.rows_at_once, g.rows_per_block, g.blocks_per_row),
            (2, 2, 64)
        );
        assert_eq!(g.grid, (10_240 * 64, 1));
    }

    #[test]
    fn geometry_covers_every_weight_row_and_slot() {
        for w in [2, 4] {
            for fi in [4, 8, 12, 128, 784, 1028, 4096, 5000] {
                for fo in [1, 2, 3, 7, 10, 128, 1000] {
                    for m in [1, 3, 10, 10_240] {
                        for (rows, rmin) in [(0, 0), (1, 0), (3, 2), (5, 3), (10_000, 1)] {
                            let o = StripeOpts {
                                weight_rows_per_block: rows,
                                min_rows_at_once: rmin,
                                ..Default::default()
                            };
                            let Some(g) = stripe_geometry(w, fi, fo, m, 132, o) else {
                                assert!(!fi.is_multiple_of(w));
                                continue;
                            };
                            let zs = g.blocks_per_row;
                            assert!(g.slots_per_block * g.rows_at_once <= 1024);
                            assert!(g.rows_at_once >= rmin.min(1024 / g.slots_per_block));
                            assert!(g.rows_per_block.is_multiple_of(g.rows_at_once));
                            assert!(g.grid.1 * g.slots_per_block >= g.slots);
                            assert!((g.grid.1 - 1) * g.slots_per_block < g.slots);
                            assert!(zs * g.rows_per_block >= fo);
                            assert!((zs - 1) * g.rows_per_block < fo);
                            assert_eq!(g.grid.0, m * zs);
                        }
                    }
                }
            }
        }
        let o = StripeOpts::default();
        assert!(stripe_geometry(4, 10, 3, 5, 132, o).is_none());
        assert!(stripe_geometry(4, 0, 3, 5, 132, o).is_none());
    }
}
