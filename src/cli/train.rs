//! `itlin train`.

use super::args::TrainArgs;
use super::prepare_out;
use super::run::{RunConfig, Summary, print_summary, run_any};
use itlin::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The exit status of a run that diverged (its run directory is complete, its summary says
/// where and why).
pub const EXIT_DIVERGED: i32 = 3;

/// Reads a run's `config.json`, in one line naming the file when it is not one.
///
/// # Errors
/// [`Error::Io`] if it cannot be read, [`Error::Format`] if it is not a run config.
pub fn read_run_config(path: &Path) -> Result<RunConfig> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::format(
            path,
            format!(
                "not an itlin run config: {}",
                itlin::report::one_line(&e.to_string())
            ),
        )
    })
}

/// Runs `itlin train`: a fresh run, or `--resume DIR` with that run's saved flags. A run
/// that diverges prints its summary, then the divergence on stderr, and exits with
/// [`EXIT_DIVERGED`].
pub fn main(a: &TrainArgs) -> Result<()> {
    let resume = match &a.resume {
        Some(dir) => {
            let cfg_path = dir.join("config.json");
            let saved = read_run_config(&cfg_path)?;
            let mut args = saved.args;
            args.quiet = a.quiet;
            // a distributed run resumes distributed (on any number of ranks)
            args.distributed |= a.distributed;
            Some((dir.clone(), cfg_path, args))
        }
        None => None,
    };
    let args = resume.as_ref().map_or(a, |(_, _, args)| args);
    let comm = super::dist::open(args.distributed, args.comm_timeout)?;
    let result = match &resume {
        Some((dir, cfg_path, args)) => {
            // a bad saved flag is reported against the file it came from
            run_any(args, dir, true, &comm)
                .map_err(|e| match e {
                    Error::Config(m) => Error::format(cfg_path, m),
                    e => e,
                })
                .map(|s| (s, dir.clone()))
        }
        None => fresh(a, &comm),
    };
    match result {
        Ok((summary, dir)) => {
            report(&summary, &dir, comm.rank() == 0);
            Ok(())
        }
        // One rank's error ends a distributed run at once: leaving with MPI still up (no
        // finalise, which could wait for the other ranks) makes mpirun stop the others.
        Err(e) if comm.size() > 1 => {
            eprintln!("error: rank {}: {e}", comm.rank());
            std::process::exit(1);
        }
        Err(e) => Err(e),
    }
}

/// A fresh run: rank 0 prepares the run directory and tells the others.
fn fresh(a: &TrainArgs, comm: &Arc<dyn itlin::dist::Comm>) -> Result<(Summary, PathBuf)> {
    let dir = if comm.rank() == 0 {
        prepare_out(a.out.as_deref(), "train", a.force)?
    } else {
        PathBuf::new()
    };
    let dir = super::dist::share_dir(&**comm, &dir)?;
    let summary = run_any(a, &dir, false, comm)?;
    Ok((summary, dir))
}

/// Prints the summary (rank 0 of a distributed run); after a divergence also the one-line
/// reason on stderr, and exits (every rank).
fn report(summary: &Summary, dir: &Path, root: bool) {
    if root {
        print_summary(summary, dir);
    }
    if let Some(d) = &summary.divergence {
        if root {
            eprintln!("error: {d} (see {})", dir.join("summary.json").display());
        }
        std::process::exit(EXIT_DIVERGED);
    }
}
