//! Atomic checkpoints of a [`TrainState`]: a small JSON header (step, counters, batcher,
//! damping as exact bits) followed by the raw little-endian arrays `θ, θ̃, θ₀` and the
//! optimiser buffers. Written to a temporary file, fsynced, then renamed over the target, so
//! a crash leaves either the old or the new checkpoint, never a torn one.

use super::metrics::Timings;
use super::optim::OptState;
use super::trainer::TrainState;
use crate::data::Batcher;
use crate::{Error, Real, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

const MAGIC: &[u8; 8] = b"ITLINCK1";

#[derive(Serialize, Deserialize)]
struct Header {
    dtype: String,
    p: usize,
    step: u64,
    n_train: usize,
    relinearisations: u64,
    since_relin: u64,
    damping_bits: u64,
    rejected: u64,
    seconds: f64,
    timings: Timings,
    opt_t: u64,
    m_len: usize,
    v_len: usize,
    batcher: Option<Batcher>,
}

/// Writes `state` to `path` atomically (temporary file in the same directory, fsync, rename).
///
/// # Errors
/// [`Error::Io`] if the file cannot be written.
pub fn save<T: Real>(path: &Path, state: &TrainState<T>) -> Result<()> {
    if cfg!(target_endian = "big") {
        return Err(Error::config("checkpoints are little-endian only"));
    }
    let header = Header {
        dtype: T::NAME.into(),
        p: state.theta.len(),
        step: state.step,
        n_train: state.n_train,
        relinearisations: state.relinearisations,
        since_relin: state.since_relin,
        damping_bits: state.damping.to_bits(),
        rejected: state.rejected,
        seconds: state.seconds,
        timings: state.timings,
        opt_t: state.opt.t,
        m_len: state.opt.m.len(),
        v_len: state.opt.v.len(),
        batcher: state.batcher.clone(),
    };
    let json = serde_json::to_vec(&header).expect("header serialises");
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let io = |e| Error::io(&tmp, e);
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
        f.write_all(MAGIC).map_err(io)?;
        f.write_all(&(json.len() as u64).to_le_bytes())
            .map_err(io)?;
        f.write_all(&json).map_err(io)?;
        for a in [
            &state.theta,
            &state.theta_tilde,
            &state.theta0,
            &state.opt.m,
            &state.opt.v,
        ] {
            f.write_all(bytemuck::cast_slice(a)).map_err(io)?;
        }
        let f = f.into_inner().map_err(|e| io(e.into_error()))?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all(); // best effort: directories cannot be fsynced everywhere
    }
    Ok(())
}

/// Reads a checkpoint written by [`save`] with the same precision `T`.
///
/// # Errors
/// [`Error::Io`] if it cannot be read; [`Error::Format`] if it is not a checkpoint, is
/// truncated, or was written with the other precision.
pub fn load<T: Real>(path: &Path) -> Result<TrainState<T>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |m: &str| Error::format(path, m.to_string());
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(bad("not an itlin checkpoint (bad magic)"));
    }
    let hlen = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
    let body = bytes
        .get(16..16usize.saturating_add(hlen))
        .ok_or_else(|| bad("truncated header"))?;
    let h: Header = serde_json::from_slice(body).map_err(|e| bad(&format!("bad header: {e}")))?;
    if h.dtype != T::NAME {
        return Err(bad(&format!(
            "checkpoint holds {} values, this run uses {}; pass --precision {}",
            h.dtype,
            T::NAME,
            h.dtype
        )));
    }
    let mut rest = &bytes[16 + hlen..];
    let mut take = |len: usize| -> Result<Vec<T>> {
        let nb = len * size_of::<T>();
        if rest.len() < nb {
            return Err(bad("truncated data"));
        }
        let (a, b) = rest.split_at(nb);
        rest = b;
        Ok(bytemuck::pod_collect_to_vec(a))
    };
    let theta = take(h.p)?;
    let theta_tilde = take(h.p)?;
    let theta0 = take(h.p)?;
    let m = take(h.m_len)?;
    let v = take(h.v_len)?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes after the arrays"));
    }
    Ok(TrainState {
        step: h.step,
        theta,
        theta_tilde,
        theta0,
        opt: OptState { m, v, t: h.opt_t },
        batcher: h.batcher,
        n_train: h.n_train,
        relinearisations: h.relinearisations,
        since_relin: h.since_relin,
        damping: f64::from_bits(h.damping_bits),
        rejected: h.rejected,
        seconds: h.seconds,
        timings: h.timings,
    })
}
