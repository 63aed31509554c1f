//! [`Collective`]: sums of a backend's buffers across the ranks of a data-parallel run.

use super::Backend;
use crate::dist::Comm;
use crate::{Real, Result};
use std::sync::{Arc, Mutex};

/// Element-wise sums of backend buffers across the ranks of a data-parallel run, leaving
/// the same bits on every rank: `buf ← Σ_r buf_r`.
///
/// [`HostStaged`] implements it for every backend through the host ([`crate::dist::Comm`]:
/// download, sum, upload into the same buffer); with the `cuda` feature,
/// `kernels::cuda::NcclSum` sums device buffers in place with NCCL. The resident
/// first-order engine ([`crate::train::BackendEngine::with_collective`]) sums its gradient
/// with one.
pub trait Collective<T: Real, B: Backend<T>>: Send + Sync {
    /// This rank, `0 … size−1`.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// `buf ← Σ_r buf_r` (every entry of the buffer).
    ///
    /// # Errors
    /// [`crate::Error::Comm`] when the collective fails or times out;
    /// [`crate::Error::Device`] when the device cannot be read or written.
    fn sum(&self, be: &B, buf: &mut B::Buf) -> Result<()>;
}

/// A [`Collective`] through the host: the buffer is downloaded into a reused host vector,
/// summed by a [`Comm`] ([`crate::dist::sum`]) and uploaded back into the same buffer. On
/// the CPU backend the two copies are memory copies; on a GPU they cross PCIe twice per sum
/// (`2·n·w` bytes), which NCCL avoids.
pub struct HostStaged<T> {
    comm: Arc<dyn Comm>,
    host: Mutex<Vec<T>>,
}

impl<T> std::fmt::Debug for HostStaged<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostStaged")
            .field("rank", &self.comm.rank())
            .field("size", &self.comm.size())
            .finish_non_exhaustive()
    }
}

impl<T> HostStaged<T> {
    /// Sums through `comm`.
    pub fn new(comm: Arc<dyn Comm>) -> Self {
        Self {
            comm,
            host: Mutex::new(Vec::new()),
        }
    }
}

impl<T: Real, B: Backend<T>> Collective<T, B> for HostStaged<T> {
    fn rank(&self) -> usize {
        self.comm.rank()
    }
    fn size(&self) -> usize {
        self.comm.size()
    }
    fn sum(&self, be: &B, buf: &mut B::Buf) -> Result<()> {
        let n = B::buf_len(buf);
        let mut host = self.host.lock().unwrap_or_else(|p| p.into_inner());
        host.resize(n, T::zero_impl());
        be.download(buf, 0..n, &mut host)?;
        crate::dist::sum(&*self.comm, &mut host)?;
        be.upload_into(&host, B::slice_mut(buf, 0..n))
    }
}
