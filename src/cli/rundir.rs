//! The life of a run directory: a run that has not finished is marked by the file
//! [`MARKER`], so that an interrupted run (or one that failed half-way) never passes for a
//! finished one, and a fresh run over an earlier one (`--force`) never leaves a mix of both.
//!
//! A fresh run: (1) turns the earlier run's `summary.json` into the marker by one rename (or
//! writes the marker when there is none), (2) removes the earlier run's other files
//! ([`RUN_FILES`]), (3) writes `config.json` and the rest; a finished run (completed,
//! stopped or diverged, with its `summary.json` written) removes the marker last. A kill
//! before (1) leaves the earlier run intact; after it, the marker says that the directory is
//! an unfinished run, and once the new `config.json` is there none of the earlier run's files
//! is left. A resume writes the marker again until it finishes.

use itlin::{Error, Result};
use std::io::Write;
use std::path::Path;

/// The file that marks a run directory whose run has not finished.
pub const MARKER: &str = "UNFINISHED";

/// The files a run writes (and a fresh run removes first), in the order of removal:
/// `summary.json` first, so that a half-removed earlier run no longer looks finished, and
/// `config.json` last, so that a new `config.json` means that none of the earlier run's
/// files is left.
pub const RUN_FILES: &[&str] = &[
    "summary.json",
    "loss.svg",
    "loss.png",
    "accuracy.svg",
    "accuracy.png",
    "kernel_distance.svg",
    "kernel_distance.png",
    "theta.npy",
    "metrics.jsonl",
    "checkpoint.bin",
    "config.json",
];

/// Writes the marker into `dir` (created if needed) and makes it durable.
///
/// # Errors
/// [`Error::Io`] if it cannot be written.
pub fn mark_unfinished(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(MARKER);
    let io = |e| Error::io(&path, e);
    let mut f = std::fs::File::create(&path).map_err(io)?;
    f.write_all(
        b"This itlin run has not finished (it is running, was interrupted or failed): its files \
          are partial. Continue it with `itlin train --resume <this directory>`.\n",
    )
    .and_then(|_| f.sync_all())
    .map_err(io)?;
    sync_dir(dir);
    Ok(())
}

/// Starts a fresh run in `dir`: the marker, then the removal of an earlier run's files
/// (and of their temporary `.tmp` siblings). Other files are left alone.
///
/// # Errors
/// [`Error::Io`] if the marker cannot be written or a file cannot be removed.
pub fn begin_fresh(dir: &Path) -> Result<()> {
    // An earlier finished run's summary becomes the marker in one atomic rename, so no kill
    // can leave a directory that is marked unfinished yet holds a summary, or one that has
    // lost its summary without being marked.
    let summary = dir.join("summary.json");
    if summary.is_file() {
        let marker = dir.join(MARKER);
        std::fs::rename(&summary, &marker).map_err(|e| Error::io(&summary, e))?;
        sync_dir(dir);
    }
    mark_unfinished(dir)?;
    for name in RUN_FILES {
        for n in [name.to_string(), format!("{name}.tmp")] {
            remove_if_present(&dir.join(n))?;
        }
    }
    sync_dir(dir);
    Ok(())
}

/// Removes a file; one that is not there is not an error.
fn remove_if_present(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(p, e)),
    }
}

/// Ends a run whose `summary.json` is written: removes the marker.
///
/// # Errors
/// [`Error::Io`] if it cannot be removed.
pub fn finish(dir: &Path) -> Result<()> {
    remove_if_present(&dir.join(MARKER))?;
    sync_dir(dir);
    Ok(())
}

/// Best-effort fsync of a directory (so that renames and removals in it are durable).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
