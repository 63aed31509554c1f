//! `itlin train`.

use super::args::TrainArgs;
use super::prepare_out;
use super::run::{RunConfig, print_summary, run_any};
use itlin::{Error, Result};

/// Runs `itlin train`: a fresh run, or `--resume DIR` with that run's saved flags.
pub fn main(a: &TrainArgs) -> Result<()> {
    if let Some(dir) = &a.resume {
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        let saved: RunConfig = serde_json::from_str(&text)
            .map_err(|e| Error::format(&cfg_path, format!("not an itlin run config: {e}")))?;
        let mut args = saved.args;
        args.quiet = a.quiet;
        let summary = run_any(&args, dir, true)?;
        print_summary(&summary, dir);
        return Ok(());
    }
    let dir = prepare_out(a.out.as_deref(), "train", a.force)?;
    let summary = run_any(a, &dir, false)?;
    print_summary(&summary, &dir);
    Ok(())
}
