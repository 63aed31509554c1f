//! `itlin train`.

use super::args::TrainArgs;
use super::prepare_out;
use super::run::{RunConfig, Summary, print_summary, run_any};
use itlin::{Error, Result};
use std::path::Path;

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
    if let Some(dir) = &a.resume {
        let cfg_path = dir.join("config.json");
        let saved = read_run_config(&cfg_path)?;
        let mut args = saved.args;
        args.quiet = a.quiet;
        // a bad saved flag is reported against the file it came from
        let summary = run_any(&args, dir, true).map_err(|e| match e {
            Error::Config(m) => Error::format(&cfg_path, m),
            e => e,
        })?;
        report(&summary, dir);
        return Ok(());
    }
    let dir = prepare_out(a.out.as_deref(), "train", a.force)?;
    let summary = run_any(a, &dir, false)?;
    report(&summary, &dir);
    Ok(())
}

/// Prints the summary; after a divergence also the one-line reason on stderr, and exits.
fn report(summary: &Summary, dir: &Path) {
    print_summary(summary, dir);
    if let Some(d) = &summary.divergence {
        eprintln!("error: {d} (see {})", dir.join("summary.json").display());
        std::process::exit(EXIT_DIVERGED);
    }
}
