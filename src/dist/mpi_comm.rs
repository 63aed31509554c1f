//! [`MpiComm`]: processes under `mpirun`, through the `mpi` crate (feature `mpi`).

use super::Comm;
use crate::{Error, Result};
use mpi::collective::SystemOperation;
use mpi::environment::{Threading, Universe};
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Equivalence, Root};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the watchdog sees: the collective in flight and when it began.
type InFlight = Arc<Mutex<Option<(&'static str, Instant)>>>;

/// The MPI state, behind the mutex that serialises every MPI call.
struct Inner {
    world: SimpleCommunicator,
    scratch64: Vec<f64>,
    scratch32: Vec<f32>,
}

/// The world communicator of an MPI job (`mpirun -np R …`).
///
/// [`Comm::sum_f64`] / [`Comm::sum_f32`] are an `MPI_Reduce` to rank 0 followed by an
/// `MPI_Bcast` of the result, so every rank holds the same bits; a P-vector costs about
/// `2·(R−1)/R·P` values sent per rank with a ring or tree algorithm, `O(log R)` latencies.
///
/// **Timeouts.** MPI's blocking collectives cannot be cancelled, so a watchdog thread watches
/// each collective: if one has not returned after the timeout (a rank stopped calling), it
/// prints one line naming the rank and the collective to standard error and exits the process
/// with status 3; `mpirun` then stops the other ranks. A rank that dies (a panic, a signal, an
/// error exit) makes `mpirun` stop the others as well. MPI is finalised when the `MpiComm` is
/// dropped.
pub struct MpiComm {
    // field order: the watchdog stops before MPI is finalised
    inner: Mutex<Inner>,
    in_flight: InFlight,
    stop: Arc<AtomicBool>,
    watchdog: Option<std::thread::JoinHandle<()>>,
    rank: usize,
    size: usize,
    _universe: Universe,
}

// SAFETY: MPI is initialised with `Threading::Serialized` (checked in `init`), and every MPI
// call of this type is made while holding `inner`'s mutex, so no two threads call MPI at once.
// The raw communicator handle is only used under that mutex.
unsafe impl Send for MpiComm {}
// SAFETY: as for `Send`: shared access goes through the mutex that serialises MPI calls.
unsafe impl Sync for MpiComm {}

impl std::fmt::Debug for MpiComm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiComm")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl MpiComm {
    /// Initialises MPI (once per process) and returns the world communicator whose
    /// collectives are watched with `timeout`.
    ///
    /// # Errors
    /// [`Error::Comm`] if MPI was already initialised in this process or does not provide
    /// serialised threading.
    pub fn init(timeout: Duration) -> Result<Self> {
        let (universe, level) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| Error::Comm("MPI was already initialised in this process".into()))?;
        if level < Threading::Serialized {
            return Err(Error::Comm(format!(
                "the MPI library gives threading level {level:?}; serialised threading is needed"
            )));
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let in_flight: InFlight = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let watchdog = {
            let (in_flight, stop) = (Arc::clone(&in_flight), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("itlin-mpi-watchdog".into())
                .spawn(move || watch(rank, timeout, &in_flight, &stop))
                .map_err(|e| Error::Comm(format!("cannot start the watchdog thread: {e}")))?
        };
        Ok(Self {
            inner: Mutex::new(Inner {
                world,
                scratch64: Vec::new(),
                scratch32: Vec::new(),
            }),
            in_flight,
            stop,
            watchdog: Some(watchdog),
            rank,
            size,
            _universe: universe,
        })
    }

    /// Runs `f` on the MPI state as the collective `op`, under the watchdog.
    fn collective<R>(&self, op: &'static str, f: impl FnOnce(&mut Inner) -> R) -> Result<R> {
        let mut inner: MutexGuard<'_, Inner> = self
            .inner
            .lock()
            .map_err(|_| Error::Comm(format!("rank {}: {op}: a collective panicked", self.rank)))?;
        *self.in_flight.lock().unwrap_or_else(|p| p.into_inner()) = Some((op, Instant::now()));
        let r = f(&mut inner);
        *self.in_flight.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(r)
    }
}

/// The watchdog loop: exits the process when a collective has been in flight for longer than
/// `timeout`.
fn watch(rank: usize, timeout: Duration, in_flight: &InFlight, stop: &AtomicBool) {
    let tick = (timeout / 10).clamp(Duration::from_millis(10), Duration::from_millis(500));
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(tick);
        let late = in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .filter(|(_, t)| t.elapsed() > timeout);
        if let Some((op, _)) = late {
            let _ = writeln!(
                std::io::stderr(),
                "error: communication error: rank {rank}: {op} did not complete within {:.1} s \
                 (another rank stopped or died); stopping this rank",
                timeout.as_secs_f64()
            );
            std::process::exit(3);
        }
    }
}

/// `buf ← Σ_r buf_r`: `MPI_Reduce` to rank 0 (whose own contribution is copied to
/// `scratch`, the send buffer), then `MPI_Bcast` of rank 0's result, so every rank holds the
/// same bits.
fn sum_at_root<X: Equivalence + Copy>(
    world: &SimpleCommunicator,
    scratch: &mut Vec<X>,
    buf: &mut [X],
) {
    let root = world.process_at_rank(0);
    if world.rank() == 0 {
        scratch.clear();
        scratch.extend_from_slice(buf);
        root.reduce_into_root(&scratch[..], buf, SystemOperation::sum());
    } else {
        root.reduce_into(buf, SystemOperation::sum());
    }
    root.broadcast_into(buf);
}

impl Drop for MpiComm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
    }
}

impl Comm for MpiComm {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        self.collective("sum", |m| sum_at_root(&m.world, &mut m.scratch64, buf))
    }
    fn sum_f32(&self, buf: &mut [f32]) -> Result<()> {
        self.collective("sum", |m| sum_at_root(&m.world, &mut m.scratch32, buf))
    }
    fn broadcast(&self, root: usize, buf: &mut Vec<u8>) -> Result<()> {
        if root >= self.size {
            return Err(Error::Comm(format!(
                "broadcast from rank {root} of {}",
                self.size
            )));
        }
        self.collective("broadcast", |m| {
            let r = m.world.process_at_rank(root as i32);
            let mut len = [buf.len() as u64];
            r.broadcast_into(&mut len[..]);
            buf.resize(len[0] as usize, 0);
            r.broadcast_into(&mut buf[..]);
        })
    }
    fn barrier(&self) -> Result<()> {
        self.collective("barrier", |m| m.world.barrier())
    }
}
