//! Run-directory output: `metrics.jsonl` (one JSON object per evaluation), atomically written
//! JSON files (`config.json`, `summary.json`), and line plots as SVG and PNG.

mod plot;

pub use crate::error::one_line;
pub use plot::{Series, line_plot, line_plot_with_ticks};

use crate::train::Metrics;
use crate::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Appends one JSON object per line to a `metrics.jsonl` file, flushing after each line so
/// that an interrupted run keeps every evaluation it made.
pub struct MetricsWriter {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsWriter {
    /// Opens `path` for appending (creating it).
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be opened.
    pub fn append(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }
    /// Writes one evaluation as a line.
    ///
    /// # Errors
    /// [`Error::Io`] if the write fails.
    pub fn write(&mut self, m: &Metrics) -> Result<()> {
        let mut line = serde_json::to_vec(m).expect("metrics serialise");
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// Reads every line of a `metrics.jsonl` file.
///
/// # Errors
/// [`Error::Io`] / [`Error::Format`] when it cannot be read or parsed.
pub fn read_metrics(path: &Path) -> Result<Vec<Metrics>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                Error::format(
                    path,
                    format!("line {}: {}", i + 1, one_line(&e.to_string())),
                )
            })
        })
        .collect()
}

/// The evaluations of a `metrics.jsonl` that a resumed run can keep
/// ([`read_metrics_resumable`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ResumableMetrics {
    /// Every parsed line: its text (without the newline) and its evaluation.
    pub lines: Vec<(String, Metrics)>,
    /// A note when a torn last line was dropped.
    pub torn: Option<String>,
}

/// The evaluations of a `metrics.jsonl` that a resumed run can keep: every line with its
/// text, and a note when the last line was torn (an interrupted write: it does not parse and
/// the file does not end in a newline), which is dropped. Blank lines are skipped.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::Format`] naming the file and the line
/// if any line other than a torn last one does not parse.
pub fn read_metrics_resumable(path: &Path) -> Result<ResumableMetrics> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let complete = bytes.last().is_none_or(|&b| b == b'\n');
    let lines: Vec<(usize, &[u8])> = bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.trim_ascii().is_empty())
        .collect();
    let mut out = Vec::with_capacity(lines.len());
    let mut note = None;
    for (k, &(i, l)) in lines.iter().enumerate() {
        match serde_json::from_slice::<Metrics>(l) {
            Ok(m) => out.push((String::from_utf8_lossy(l).into_owned(), m)),
            Err(_) if k + 1 == lines.len() && !complete => {
                note = Some(format!(
                    "{}: dropped its torn last line {} ({} bytes, an interrupted write)",
                    path.display(),
                    i + 1,
                    l.len()
                ));
            }
            Err(e) => {
                return Err(Error::format(
                    path,
                    format!("line {}: {}", i + 1, one_line(&e.to_string())),
                ));
            }
        }
    }
    Ok(ResumableMetrics {
        lines: out,
        torn: note,
    })
}

/// Writes `value` as pretty JSON to `path` atomically (temporary file, fsync, rename).
///
/// # Errors
/// [`Error::Io`] if the file cannot be written.
pub fn write_json_atomic<S: serde::Serialize>(path: &Path, value: &S) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(value).expect("value serialises");
    text.push(b'\n');
    write_atomic(path, &text)
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename).
///
/// # Errors
/// [`Error::Io`] if the file cannot be written.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    {
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// The standard plots of one run, into `dir`: `loss`, `accuracy` (when labels exist) and
/// `kernel_distance` (when measured), each as `.svg` and `.png`.
///
/// # Errors
/// [`Error::Io`] if a plot cannot be written.
pub fn plot_run(dir: &Path, history: &[Metrics], title: &str) -> Result<()> {
    let pts = |f: &dyn Fn(&Metrics) -> Option<f64>| -> Vec<(f64, f64)> {
        history
            .iter()
            .filter_map(|m| f(m).map(|v| (m.step as f64, v)))
            .collect()
    };
    let mut loss = vec![Series::new("train (f_lin)", pts(&|m| Some(m.train_loss)))];
    let test = pts(&|m| m.test_loss);
    if !test.is_empty() {
        loss.push(Series::new("test (f_lin)", test));
        loss.push(Series::new("test (network)", pts(&|m| m.net_test_loss)));
    }
    line_plot(
        &dir.join("loss"),
        &format!("{title}: loss"),
        "step",
        "mean loss",
        &loss,
        false,
        true,
    )?;
    let acc_train = pts(&|m| m.train_acc);
    if !acc_train.is_empty() {
        let mut acc = vec![Series::new("train (f_lin)", acc_train)];
        let t = pts(&|m| m.test_acc);
        if !t.is_empty() {
            acc.push(Series::new("test (f_lin)", t));
            acc.push(Series::new("test (network)", pts(&|m| m.net_test_acc)));
        }
        line_plot(
            &dir.join("accuracy"),
            &format!("{title}: accuracy"),
            "step",
            "accuracy",
            &acc,
            false,
            false,
        )?;
    }
    let kd = pts(&|m| m.kernel_distance);
    if !kd.is_empty() {
        let series = vec![
            Series::new("network NTK to the initial NTK", kd),
            Series::new(
                "features of f_lin (NTK at the linearisation point) to the initial NTK",
                pts(&|m| m.kernel_distance_features),
            ),
            Series::new(
                "network NTK to the NTK at the linearisation point",
                pts(&|m| m.kernel_distance_lin),
            ),
        ];
        line_plot(
            &dir.join("kernel_distance"),
            &format!("{title}: kernel distance"),
            "step",
            "kernel distance",
            &series,
            false,
            false,
        )?;
    }
    Ok(())
}
