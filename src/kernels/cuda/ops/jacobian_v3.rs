//! The third Jacobian assembly (`jacobian_v3` of `kernels/jacobian.cu`): per (sample, chunk)
//! work item, the sample's activations and signal rows in shared memory, 16-byte stores.

use super::layer::jac_table;
use super::{CudaBackend, JacobianLayer, Result, THREADS, wr};
use crate::kernels::cuda::blas::CudaReal;
use crate::kernels::cuda::context::dev_err;
use crate::kernels::cuda::nvrtc::Family;
use cudarc::driver::{DevicePtrMut, LaunchConfig, PushKernelArg};

/// `ITLIN_JAC3_UNROLL` of `kernels/jacobian.cu`: packets each thread stores per iteration.
const UNROLL: usize = 4;

/// Dynamic shared memory a block may use without raising the kernel's limit.
const SMEM_LIMIT: usize = 48 * 1024;

/// Launch options of [`jacobian_v3`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JacobianV3Opts {
    /// Streaming stores (`st.global.cs`) when true, plain `st.global.v4` otherwise.
    pub streaming: bool,
    /// Persistent grid of `blocks_per_sm × SM count` blocks looping over the work items;
    /// `0` launches one block per item.
    pub blocks_per_sm: usize,
    /// 16-byte packets per work item (a chunk of one sample's `C·p` elements); rounded up to
    /// a multiple of `THREADS · UNROLL`.
    pub chunk_packets: usize,
}

impl Default for JacobianV3Opts {
    /// Streaming stores, 8 persistent blocks per SM, chunks of 65536 packets (1 MiB).
    fn default() -> Self {
        Self {
            streaming: true,
            blocks_per_sm: 8,
            chunk_packets: 65536,
        }
    }
}

/// Shared memory (bytes) of one `jacobian_v3` tile: `W` shifted copies of each layer's
/// activation row (each rounded up to `W` elements) and the `C` signal rows of each layer
/// (rounded up to `W`), `W = 16 / size_of::<T>()`; `Jac3Layout` in `kernels/jacobian.cu`.
pub fn jacobian_v3_smem<T>(c: usize, dims: &[(usize, usize)]) -> usize {
    let w = 16 / std::mem::size_of::<T>();
    let a: usize = dims.iter().map(|&(fi, _)| w * fi.div_ceil(w) * w).sum();
    let g: usize = dims.iter().map(|&(_, fo)| (c * fo).div_ceil(w) * w).sum();
    (a + g) * std::mem::size_of::<T>()
}

/// Whether [`jacobian_v3`] runs its own kernel for these shapes (rather than falling back to
/// [`super::jacobian_all`]): the tile fits 48 KiB of shared memory and a sample's `C·p`
/// elements (plus a chunk) fit 32-bit indices.
pub fn jacobian_v3_applies<T>(c: usize, p: usize, dims: &[(usize, usize)]) -> bool {
    let w = 16 / std::mem::size_of::<T>();
    let slack = (THREADS as usize) * UNROLL * w * 4;
    jacobian_v3_smem::<T>(c, dims) <= SMEM_LIMIT
        && c.checked_mul(p)
            .is_some_and(|cp| cp + slack < i32::MAX as usize)
}

/// The whole explicit Jacobian `J` (row-major `m × p`, `m = N·C`), the same values as
/// [`super::jacobian_all`] bit for bit, written per work item (sample `n`, chunk `h` of the
/// contiguous rows `n·C .. n·C + C`): the block loads `a_{l−1,n}` and the `C` signal rows of
/// every layer into shared memory once, then writes the chunk with 16-byte stores
/// ([`JacobianV3Opts`]). Shapes where [`jacobian_v3_applies`] is false go to
/// [`super::jacobian_all`].
///
/// # Panics
/// As [`super::jacobian_all`], or if `opts.chunk_packets` is 0.
///
/// # Errors
/// [`crate::Error::Device`] if the kernel cannot be compiled or launched, or a size exceeds
/// 32 bits.
#[track_caller]
pub fn jacobian_v3<T: CudaReal>(
    be: &CudaBackend,
    j: &mut impl DevicePtrMut<T>,
    m: usize,
    p: usize,
    c: usize,
    layers: &[JacobianLayer<'_, T>],
    opts: JacobianV3Opts,
) -> Result<()> {
    assert!(opts.chunk_packets > 0, "jacobian_v3: chunk_packets = 0");
    let raw = jac_table(j.len(), m, p, c, layers, be, "jacobian_v3")?;
    let dims: Vec<(usize, usize)> = layers.iter().map(|l| (l.fan_in, l.fan_out)).collect();
    if !jacobian_v3_applies::<T>(c, p, &dims) {
        return super::jacobian_all(be, j, m, p, c, layers);
    }
    if m == 0 {
        return Ok(());
    }
    let w = 16 / std::mem::size_of::<T>();
    let group = THREADS as usize * UNROLL;
    let chunk = opts.chunk_packets.div_ceil(group) * group;
    // Packets whose first element lies in one sample's C·p elements: at most C·p / W + 1.
    let items_per_sample = ((c * p) / w + 1).div_ceil(chunk);
    let items = (m / c) * items_per_sample;
    let smem = jacobian_v3_smem::<T>(c, &dims);
    let blocks = if opts.blocks_per_sm == 0 {
        items
    } else {
        // A persistent grid larger than what is resident would run its extra blocks as a
        // second, partial wave: cap blocks per SM at the kernel's occupancy (shared memory,
        // registers).
        let fname = format!("jacobian_v3{}", <T as crate::Real>::CUDA_SUFFIX);
        let resident = be
            .function(Family::Jacobian, &fname)?
            .occupancy_max_active_blocks_per_multiprocessor(THREADS, smem, None)
            .map_err(dev_err(&fname))? as usize;
        items.min(be.sm_count().max(1) * opts.blocks_per_sm.min(resident.max(1)))
    };
    let blocks = u32::try_from(blocks.max(1)).map_err(|_| {
        crate::Error::Device(format!("jacobian_v3: {blocks} blocks exceed the grid"))
    })?;
    let cfg = LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: smem as u32,
    };
    let jp = wr(be, j);
    let (mi, pi) = (m as i64, p as i64);
    let (ips, ch) = (items_per_sample as i64, chunk as i64);
    let streaming = i32::from(opts.streaming);
    launch!(
        be,
        Family::Jacobian,
        "jacobian_v3",
        T,
        cfg,
        [&jp, &mi, &pi, &raw, &ips, &ch, &streaming]
    );
    Ok(())
}
