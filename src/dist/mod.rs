//! Several processes (or threads) working on one problem: the collectives a data-parallel run
//! needs ([`Comm`]) and how the rows are split between them ([`Shard`]).
//!
//! # Data parallelism
//! `R` workers (ranks `0 … R−1`) each hold a contiguous shard of the `N` rows
//! ([`Shard::of`]: the first `N mod R` shards have one row more). Everything that is a sum
//! over rows is computed per shard and summed across ranks:
//!
//! - a mini-batch gradient of the mean loss over a global batch `b` of size `B`,
//!   `g = (1/B) Σ_{i∈b} J_iᵀ ∂ℓ_i/∂f = Σ_r (1/B) Σ_{i∈b∩shard_r} J_iᵀ ∂ℓ_i/∂f`, one all-reduce of
//!   a `P`-vector per step;
//! - a Gauss-Newton matrix-vector product `(JᵀJ + NλI) v = Σ_r J_rᵀ(J_r v) + NλI v`, one
//!   all-reduce of a `P`-vector per CG iteration, and the CG inner products, one all-reduce of
//!   a few scalars;
//! - losses and accuracies, as sums and counts.
//!
//! # Determinism
//! [`sum`] ([`Comm::sum_f64`], [`Comm::sum_f32`]) leaves **the same bits on every rank** (the implementations reduce to one
//! rank and broadcast the result, never let ranks reduce in different orders), so the ranks'
//! copies of `θ` never drift apart. A run on `R` ranks equals the one-process run up to the
//! rounding of summing `R` partial sums instead of one.
//!
//! # Failure
//! Every collective returns a [`Result`]: a collective that does not complete within the
//! communicator's timeout (a rank died or stopped calling) is an [`Error::Comm`] naming the
//! operation, never a hang. Implementations: [`Solo`] (one process, no communication),
//! [`ThreadComm`] (ranks as threads of one process: tests and emulation), and `MpiComm`
//! (processes under `mpirun`, with the `mpi` feature).

#[cfg(feature = "mpi")]
mod mpi_comm;
mod shard;
mod threads;

#[cfg(feature = "mpi")]
pub use mpi_comm::MpiComm;
pub use shard::Shard;
pub use threads::ThreadComm;

use crate::{Error, Real, Result};
use std::any::TypeId;

/// The collectives of a data-parallel run between `size()` ranks.
///
/// Every rank must call the same collectives in the same order with buffers of the same
/// length; a rank that does not arrive within the timeout makes the others fail with
/// [`Error::Comm`].
pub trait Comm: Send + Sync {
    /// This worker's rank, `0 … size−1`.
    fn rank(&self) -> usize;
    /// The number of ranks `R`.
    fn size(&self) -> usize;
    /// `buf ← Σ_r buf_r` over the ranks, element-wise, in `f64`; the same bits on every rank.
    ///
    /// # Errors
    /// [`Error::Comm`] when the collective fails or times out.
    fn sum_f64(&self, buf: &mut [f64]) -> Result<()>;
    /// `buf ← Σ_r buf_r` over the ranks, element-wise, in `f32`; the same bits on every rank.
    ///
    /// # Errors
    /// [`Error::Comm`] when the collective fails or times out.
    fn sum_f32(&self, buf: &mut [f32]) -> Result<()>;
    /// `buf ← buf_root` on every rank (the other ranks' contents and lengths are replaced).
    ///
    /// # Errors
    /// [`Error::Comm`] when the collective fails or times out, or `root ≥ size`.
    fn broadcast(&self, root: usize, buf: &mut Vec<u8>) -> Result<()>;
    /// Returns once every rank has called it.
    ///
    /// # Errors
    /// [`Error::Comm`] when a rank does not arrive within the timeout.
    fn barrier(&self) -> Result<()>;
}

/// `buf ← Σ_r buf_r` for either precision (dispatches to [`Comm::sum_f32`] /
/// [`Comm::sum_f64`]); with one rank it returns at once.
///
/// # Errors
/// [`Error::Comm`] from the communicator.
pub fn sum<T: Real>(comm: &dyn Comm, buf: &mut [T]) -> Result<()> {
    if comm.size() == 1 {
        return Ok(());
    }
    if TypeId::of::<T>() == TypeId::of::<f64>() {
        comm.sum_f64(bytemuck::cast_slice_mut(buf))
    } else if TypeId::of::<T>() == TypeId::of::<f32>() {
        comm.sum_f32(bytemuck::cast_slice_mut(buf))
    } else {
        Err(Error::Comm(format!("no sum for {}", T::NAME)))
    }
}

/// `Σ_r x_r` of one `f64` on every rank.
///
/// # Errors
/// [`Error::Comm`] from the communicator.
pub fn sum_scalar(comm: &dyn Comm, x: f64) -> Result<f64> {
    let mut b = [x];
    comm.sum_f64(&mut b)?;
    Ok(b[0])
}

/// `buf ← buf_0`: rank 0's values on every rank (the others' are ignored), by one sum to which
/// the other ranks contribute zeros (`x + 0 = x` exactly), so no second collective kind is
/// needed for a few `f64`s.
///
/// # Errors
/// [`Error::Comm`] from the communicator.
pub fn from_root(comm: &dyn Comm, buf: &mut [f64]) -> Result<()> {
    if comm.size() == 1 {
        return Ok(());
    }
    if comm.rank() != 0 {
        buf.fill(0.0);
    }
    comm.sum_f64(buf)
}

/// One process: rank 0 of 1; every collective is the identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct Solo;

impl Comm for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum_f64(&self, _: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn sum_f32(&self, _: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn broadcast(&self, root: usize, _: &mut Vec<u8>) -> Result<()> {
        if root == 0 {
            Ok(())
        } else {
            Err(Error::Comm(format!("broadcast from rank {root} of 1")))
        }
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
}
