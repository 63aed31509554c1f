//! The `itlin` command line: argument definitions and the helpers shared by the subcommands
//! (data loading, run directories, memory plans).

pub mod arch;
pub mod args;
pub mod bench;
pub mod dist;
pub mod run;
pub mod rundir;
pub mod sweep;
pub mod train;

use itlin::data::Split;
use itlin::{Error, Real, Result};
use std::path::{Path, PathBuf};

/// Loads `--data`: `mnist` (the embedded 10k split) or a directory of IDX / NPY files, with
/// the stored shape of one sample's features (the embedded MNIST images are `28 × 28`).
pub fn load_data_shaped<T: Real>(
    spec: &str,
    n_train: Option<usize>,
) -> Result<(Split<T>, itlin::data::SampleShape)> {
    if spec.eq_ignore_ascii_case("mnist") {
        let split = match n_train {
            Some(n) => itlin::data::mnist_embedded_split(n),
            None => itlin::data::mnist_embedded(),
        }?;
        let image = vec![28, 28];
        let shape = itlin::data::SampleShape {
            train: image.clone(),
            test: image,
        };
        Ok((split, shape))
    } else {
        let dir = Path::new(spec);
        if !dir.is_dir() {
            return Err(Error::config(format!(
                "--data {spec}: not a directory; pass 'mnist' or a directory holding the four IDX files or x_train.npy, y_train.npy, x_test.npy, y_test.npy"
            )));
        }
        let (mut split, shape) = itlin::data::load_dir_with_shape(dir)?;
        if let Some(n) = n_train {
            if n > split.train.len() || n == 0 {
                return Err(Error::config(format!(
                    "--n-train {n}: the training set has {} rows",
                    split.train.len()
                )));
            }
            let rows: Vec<usize> = (0..n).collect();
            split.train = split.train.subset(&rows);
        }
        Ok((split, shape))
    }
}

/// `YYYYmmdd-HHMMSS` (UTC) of now.
pub fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // civil-from-days (H. Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Prepares the output directory. With `out = None` a fresh `runs/<prefix>-<timestamp>`
/// (suffixed `-2`, `-3`, … if taken). An explicit directory must be absent or empty unless
/// `force` (then the earlier run's files are removed when the new run starts, see
/// [`rundir`]; other files are left alone). Nothing is created here: the run creates the
/// directory once every check has passed.
pub fn prepare_out(out: Option<&Path>, prefix: &str, force: bool) -> Result<PathBuf> {
    let dir = match out {
        Some(d) => {
            if d.exists() {
                if !d.is_dir() {
                    return Err(Error::config(format!(
                        "--out {}: exists and is not a directory",
                        d.display()
                    )));
                }
                let non_empty = std::fs::read_dir(d)
                    .map_err(|e| Error::io(d, e))?
                    .next()
                    .is_some();
                if non_empty && !force {
                    return Err(Error::config(format!(
                        "--out {}: directory is not empty; choose another --out, or pass --force to overwrite the run files in it",
                        d.display()
                    )));
                }
            }
            d.to_path_buf()
        }
        None => {
            let base = PathBuf::from("runs").join(format!("{prefix}-{}", timestamp()));
            let mut d = base.clone();
            let mut i = 2;
            while d.exists() {
                d = PathBuf::from(format!("{}-{i}", base.display()));
                i += 1;
            }
            d
        }
    };
    Ok(dir)
}
