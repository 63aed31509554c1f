//! Atomic checkpoints of a [`TrainState`]: a small JSON header (step, counters, batcher,
//! damping as exact bits) followed by the raw little-endian arrays `θ, θ̃, θ₀` and the
//! optimiser buffers. Written to a temporary file, fsynced, then renamed over the target, so
//! a crash leaves either the old or the new checkpoint, never a torn one.
//!
//! Layout (format 2, magic `ITLINCK2`):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `ITLINCK2` |
//! | 8 | `h`, the header length (u64, little-endian) |
//! | `h` | the header (JSON) |
//! | `(3P + m + v)·s` | `θ, θ̃, θ₀`, the optimiser buffers `m`, `v` (`s` = 4 or 8 bytes) |
//! | 4 | CRC-32 (IEEE, little-endian) of every byte before it |
//!
//! The checksum is verified before anything is parsed, so any single flipped bit (and any
//! burst of up to 32 bits) is refused with an error naming the file. Format 1 (`ITLINCK1`,
//! no checksum) is still read, without that protection. Every length in the header is checked
//! against the bytes actually present before anything is allocated from it.

use super::metrics::Timings;
use super::optim::OptState;
use super::state::TrainState;
use crate::data::Batcher;
use crate::{Error, Real, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// The magic of the format written now (with a CRC-32 trailer).
const MAGIC: &[u8; 8] = b"ITLINCK2";
/// The magic of format 1 (no checksum), still read.
const MAGIC_V1: &[u8; 8] = b"ITLINCK1";

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
        let mut crc = crc32fast::Hasher::new();
        let mut put = |f: &mut std::io::BufWriter<std::fs::File>, b: &[u8]| {
            crc.update(b);
            f.write_all(b).map_err(io)
        };
        put(&mut f, MAGIC)?;
        put(&mut f, &(json.len() as u64).to_le_bytes())?;
        put(&mut f, &json)?;
        for a in [
            &state.theta,
            &state.theta_tilde,
            &state.theta0,
            &state.opt.m,
            &state.opt.v,
        ] {
            put(&mut f, bytemuck::cast_slice(a))?;
        }
        f.write_all(&crc.finalize().to_le_bytes()).map_err(io)?;
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

/// Reads a checkpoint written by [`save`] with the same precision `T` (format 2, checksum
/// verified first; format 1 files are read without one).
///
/// # Errors
/// [`Error::Io`] if it cannot be read; [`Error::Format`] (one line, naming the file) if it is
/// not a checkpoint, fails its checksum, is truncated, holds inconsistent lengths or counters,
/// or was written with the other precision.
pub fn load<T: Real>(path: &Path) -> Result<TrainState<T>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode(&bytes, path)
}

/// [`load`] on the bytes of a checkpoint file already in memory; `path` names it in errors.
///
/// # Errors
/// As [`load`], less the I/O.
pub fn decode<T: Real>(bytes: &[u8], path: &Path) -> Result<TrainState<T>> {
    parse::<T>(bytes).map_err(|m| Error::format(path, m))
}

/// The checks of [`load`] on the bytes of a file; the error is the problem, in one line.
fn parse<T: Real>(bytes: &[u8]) -> std::result::Result<TrainState<T>, String> {
    if bytes.len() < 16 {
        return Err(
            "not an itlin checkpoint (bad magic: shorter than its 16-byte preamble)".into(),
        );
    }
    let body = if &bytes[..8] == MAGIC {
        let Some(split) = bytes.len().checked_sub(4).filter(|&s| s >= 16) else {
            return Err("truncated: no room for the checksum".into());
        };
        let (body, tail) = bytes.split_at(split);
        let stored = u32::from_le_bytes(tail.try_into().expect("4 bytes"));
        let computed = crc32fast::hash(body);
        if stored != computed {
            return Err(format!(
                "checksum mismatch (stored CRC-32 {stored:08x}, computed {computed:08x}): the \
                 file is damaged or truncated; resume from an intact copy or start the run again"
            ));
        }
        body
    } else if &bytes[..8] == MAGIC_V1 {
        bytes
    } else {
        return Err("not an itlin checkpoint (bad magic)".into());
    };
    let hlen = u64::from_le_bytes(body[8..16].try_into().expect("8 bytes"));
    let end = usize::try_from(hlen)
        .ok()
        .and_then(|h| h.checked_add(16))
        .filter(|&e| e <= body.len())
        .ok_or_else(|| {
            format!(
                "truncated header: it claims {hlen} bytes, the file holds {}",
                body.len() - 16
            )
        })?;
    let h: Header = serde_json::from_slice(&body[16..end])
        .map_err(|e| format!("bad header: {}", crate::error::one_line(&e.to_string())))?;
    if h.dtype != T::NAME {
        if h.dtype == "f32" || h.dtype == "f64" {
            return Err(format!(
                "checkpoint holds {} values, this run uses {}; pass --precision {}",
                h.dtype,
                T::NAME,
                h.dtype
            ));
        }
        return Err("bad header: dtype is neither f32 nor f64".into());
    }
    if (h.m_len != 0 && h.m_len != h.p) || (h.v_len != 0 && h.v_len != h.p) {
        return Err(format!(
            "bad header: optimiser buffers of {} and {} values for {} parameters",
            h.m_len, h.v_len, h.p
        ));
    }
    if h.since_relin > h.step || h.rejected > h.step || h.opt_t > h.step {
        return Err("bad header: counters larger than the step count".into());
    }
    if let Some(b) = &h.batcher
        && b.n() != h.n_train
    {
        return Err(format!(
            "bad header: a batcher over {} rows for a training set of {}",
            b.n(),
            h.n_train
        ));
    }
    let damping = f64::from_bits(h.damping_bits);
    if !(damping.is_finite() && damping >= 0.0 && h.seconds.is_finite()) {
        return Err("bad header: non-finite damping or time".into());
    }
    // every array length is checked against the bytes present before anything is allocated
    let sz = size_of::<T>();
    let want =
        h.p.checked_mul(3)
            .and_then(|v| v.checked_add(h.m_len))
            .and_then(|v| v.checked_add(h.v_len))
            .and_then(|v| v.checked_mul(sz));
    let have = body.len() - end;
    match want {
        Some(w) if w == have => {}
        Some(w) if w > have => {
            return Err(format!(
                "truncated data: the header claims {w} bytes of arrays, the file holds {have}"
            ));
        }
        Some(_) => return Err("trailing bytes after the arrays".into()),
        None => return Err("bad header: array lengths overflow".into()),
    }
    let mut rest = &body[end..];
    let mut take = |len: usize| -> Vec<T> {
        let (a, b) = rest.split_at(len * sz);
        rest = b;
        bytemuck::pod_collect_to_vec(a)
    };
    let theta = take(h.p);
    let theta_tilde = take(h.p);
    let theta0 = take(h.p);
    let m = take(h.m_len);
    let v = take(h.v_len);
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
        damping,
        rejected: h.rejected,
        seconds: h.seconds,
        timings: h.timings,
    })
}
