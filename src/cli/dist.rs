//! `--distributed`: the communicator of a data-parallel `itlin train` run.

use itlin::dist::{Comm, Solo};
use itlin::{Error, Result};
use std::sync::Arc;

/// The communicator of this process: [`Solo`] for an ordinary run; with `--distributed` the
/// MPI world (`mpirun -np R itlin train --distributed …`; one process started without
/// `mpirun` is a world of one), whose collectives give up after `timeout_s` seconds.
///
/// # Errors
/// [`Error::Config`] for `--distributed` in a build without the `mpi` feature, a timeout
/// that is not a positive number of seconds, or a process started by an MPI launcher as one
/// of several ranks without `--distributed`; [`Error::Comm`] if MPI cannot be initialised.
pub fn open(distributed: bool, timeout_s: f64) -> Result<Arc<dyn Comm>> {
    if !distributed {
        if let Some(n) = launcher_ranks().filter(|&n| n > 1) {
            return Err(Error::config(format!(
                "started as one of {n} ranks (mpirun) without --distributed: each would train alone into the same run directory; add --distributed"
            )));
        }
        return Ok(Arc::new(Solo));
    }
    if !(timeout_s.is_finite() && timeout_s > 0.0) {
        return Err(Error::config(format!(
            "--comm-timeout {timeout_s}: must be a positive number of seconds"
        )));
    }
    open_mpi(std::time::Duration::from_secs_f64(timeout_s))
}

/// The number of ranks an MPI launcher says this process is one of (OpenMPI's
/// `OMPI_COMM_WORLD_SIZE`, MPICH's `PMI_SIZE`), if it was started by one.
fn launcher_ranks() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
}

#[cfg(feature = "mpi")]
fn open_mpi(timeout: std::time::Duration) -> Result<Arc<dyn Comm>> {
    Ok(Arc::new(itlin::dist::MpiComm::init(timeout)?))
}

#[cfg(not(feature = "mpi"))]
fn open_mpi(_: std::time::Duration) -> Result<Arc<dyn Comm>> {
    Err(Error::config(
        "--distributed: this build has no MPI support; rebuild with --features mpi (needs an MPI library and libclang, e.g. Debian's openmpi-bin libopenmpi-dev libclang-dev) and start with mpirun -np R",
    ))
}

/// Rank 0's `dir`, on every rank (the default run directory's name has a timestamp, which
/// the ranks must not each take for themselves).
///
/// # Errors
/// [`Error::Comm`] from the broadcast, [`Error::Config`] for a path that is not UTF-8.
pub fn share_dir(comm: &dyn Comm, dir: &std::path::Path) -> Result<std::path::PathBuf> {
    if comm.size() == 1 {
        return Ok(dir.to_path_buf());
    }
    let mut bytes = dir
        .to_str()
        .ok_or_else(|| Error::config(format!("{}: not a UTF-8 path", dir.display())))?
        .as_bytes()
        .to_vec();
    comm.broadcast(0, &mut bytes)?;
    String::from_utf8(bytes)
        .map(Into::into)
        .map_err(|_| Error::Comm("the run directory broadcast is not UTF-8".into()))
}
