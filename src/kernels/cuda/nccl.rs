//! [`NcclSum`]: sums of device buffers across GPUs with NCCL (feature `nccl`).

use super::{CudaBackend, CudaReal, dev_err};
use crate::backend::Collective;
use crate::dist::Comm;
use crate::{Error, Result};
use cudarc::nccl::{Comm as NcclComm, Id, NcclType, ReduceOp};
use std::sync::Mutex;

/// A [`Collective`] of device buffers between GPUs: an NCCL communicator with one rank per
/// process (one GPU each), `buf ← Σ_r buf_r` by `ncclAllReduce` in place on the backend's
/// stream. NCCL's ring and tree all-reduce give every rank the same bits. No byte crosses
/// PCIe to the host; the sum is queued on the stream, so the update that follows waits for
/// it without the host waiting.
///
/// NCCL's collectives cannot time out: a rank that dies leaves the others waiting at their
/// next synchronisation; under `mpirun` the launcher stops them, as for MPI collectives.
pub struct NcclSum {
    comm: Mutex<NcclComm>,
    rank: usize,
    size: usize,
}

// SAFETY: an NCCL communicator may be used from any thread as long as no two calls on it run
// at once; every use goes through the mutex. The stream it holds is an `Arc<CudaStream>`,
// itself `Send + Sync`.
unsafe impl Send for NcclSum {}
// SAFETY: as for `Send`: shared access goes through the mutex.
unsafe impl Sync for NcclSum {}

impl std::fmt::Debug for NcclSum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NcclSum")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl NcclSum {
    /// The NCCL communicator of the ranks of `host` (one process per GPU, each with its own
    /// backend `be`): rank 0 makes the NCCL unique id and `host` broadcasts its 128 bytes,
    /// then every rank joins (`ncclCommInitRank`, which waits for all of them).
    ///
    /// # Errors
    /// [`Error::Device`] when NCCL cannot be loaded or the communicator cannot be made;
    /// [`Error::Comm`] from the broadcast.
    pub fn new(be: &CudaBackend, host: &dyn Comm) -> Result<Self> {
        let mut bytes = Vec::new();
        if host.rank() == 0 {
            let id = Id::new().map_err(dev_err("NCCL unique id"))?;
            bytes = id.internal().iter().map(|&c| c as u8).collect();
        }
        host.broadcast(0, &mut bytes)?;
        let mut internal = [0 as std::ffi::c_char; 128];
        if bytes.len() != internal.len() {
            return Err(Error::Comm(format!(
                "the NCCL id from rank 0 has {} bytes, not 128",
                bytes.len()
            )));
        }
        for (d, &b) in internal.iter_mut().zip(&bytes) {
            *d = b as std::ffi::c_char;
        }
        let comm = NcclComm::from_rank(
            be.stream().clone(),
            host.rank(),
            host.size(),
            Id::uninit(internal),
        )
        .map_err(dev_err("NCCL communicator"))?;
        Ok(Self {
            comm: Mutex::new(comm),
            rank: host.rank(),
            size: host.size(),
        })
    }
}

impl<T: CudaReal + NcclType> Collective<T, CudaBackend> for NcclSum {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn sum(
        &self,
        _be: &CudaBackend,
        buf: &mut <CudaBackend as crate::backend::Backend<T>>::Buf,
    ) -> Result<()> {
        let comm = self.comm.lock().unwrap_or_else(|p| p.into_inner());
        comm.all_reduce_in_place(buf.get_mut(), &ReduceOp::Sum)
            .map(drop)
            .map_err(dev_err("NCCL all-reduce"))
    }
}
