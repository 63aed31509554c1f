//! Machine ceilings measured on the current rayon thread pool.
//!
//! Each function runs a simple, well-understood operation that is bound by one resource and
//! reports its rate:
//!
//! | function | operation | rate |
//! |---|---|---|
//! | [`read_bandwidth`] | `Σ xᵢ²` over a buffer (SIMD, rows split between threads) | bytes read / s |
//! | [`write_bandwidth`] | fill a buffer, with ordinary and with streaming stores; the faster | bytes written / s |
//! | [`copy_bandwidth`] | `memcpy` of one buffer into another, split between threads | (bytes read + bytes written) / s |
//! | [`gemm_gflops`] | faer `C ← A B`, `n × n`, column-major | `2n³` flop / s |
//!
//! Every measurement is the median of several repeats after one warm-up run (which also
//! faults in the pages), so that one slow repeat (another process, a page fault) does not
//! move it. Rates are in units of 10⁹ (GB/s, GFLOP/s). Buffers should be much larger than
//! the last-level cache (the default in `itlin bench` is 1 GiB); each call takes well under
//! a second to a few seconds.

use crate::Real;
use crate::kernels::cpu::CpuKernels;
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};
use rayon::prelude::*;
use std::fmt;
use std::hint::black_box;
use std::time::Instant;

/// Timing of repeated runs of one operation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Median wall time of one run, seconds.
    pub median_s: f64,
    /// Fastest run, seconds.
    pub min_s: f64,
    /// Number of timed runs (after one untimed warm-up run).
    pub repeats: usize,
}

/// Runs `f` once untimed (warm-up), then `repeats` times (at least 1), and returns the
/// median and minimum wall time.
pub fn median_time(repeats: usize, mut f: impl FnMut()) -> Timing {
    let repeats = repeats.max(1);
    f();
    let mut t: Vec<f64> = (0..repeats)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    let median_s = if repeats % 2 == 1 {
        t[repeats / 2]
    } else {
        0.5 * (t[repeats / 2 - 1] + t[repeats / 2])
    };
    Timing {
        median_s,
        min_s: t[0],
        repeats,
    }
}

/// One measured machine ceiling.
#[derive(Clone, Debug, PartialEq)]
pub struct Ceiling {
    /// What was measured (`"read"`, `"write"`, `"copy"`, `"gemm_f32"`, `"gemm_f64"`).
    pub what: &'static str,
    /// The rate, in `unit`.
    pub value: f64,
    /// `"GB/s"` (10⁹ bytes per second) or `"GFLOP/s"`.
    pub unit: &'static str,
    /// How it was measured (operation, size, threads, repeats).
    pub method: String,
    /// The timing the rate was computed from.
    pub timing: Timing,
}

impl fmt::Display for Ceiling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {:.1} {} ({}; median {:.3} ms)",
            self.what,
            self.value,
            self.unit,
            self.method,
            self.timing.median_s * 1e3
        )
    }
}

const REPEATS: usize = 5;

/// A buffer of `bytes` (rounded down to whole `f64`s, at least one) filled with ones.
fn ones(bytes: usize) -> Vec<f64> {
    let n = (bytes / 8).max(1);
    let mut v: Vec<f64> = Vec::with_capacity(n);
    v.par_extend((0..n).into_par_iter().map(|_| 1.0));
    v
}

/// Equal contiguous pieces, one per rayon thread, so each thread streams through its part.
fn piece(len: usize) -> usize {
    len.div_ceil(rayon::current_num_threads().max(1)).max(1)
}

/// Streaming read bandwidth: `Σ xᵢ²` over a buffer of `bytes` bytes with the crate's SIMD
/// kernel, one contiguous piece per thread. Rate = `bytes / median time`.
pub fn read_bandwidth(bytes: usize) -> Ceiling {
    let buf = ones(bytes);
    let chunk = piece(buf.len());
    let timing = median_time(REPEATS, || {
        let s: f64 = buf.par_chunks(chunk).map(f64::sum_sq).sum();
        black_box(s);
    });
    let b = (buf.len() * 8) as f64;
    Ceiling {
        what: "read",
        value: b / timing.median_s * 1e-9,
        unit: "GB/s",
        method: format!(
            "sum of squares of {:.0} MiB, {} threads, median of {REPEATS}",
            b / (1 << 20) as f64,
            rayon::current_num_threads()
        ),
        timing,
    }
}

/// Write bandwidth: fills a buffer of `bytes` bytes, one contiguous piece per thread, once
/// with ordinary stores (`slice::fill`) and once with streaming (non-temporal) stores where
/// the CPU has them (the kernel behind [`crate::kernels::cpu::CpuKernels::outer_into_stream`]);
/// reports the faster. Rate = `bytes / median time`.
pub fn write_bandwidth(bytes: usize) -> Ceiling {
    let mut buf = ones(bytes);
    let chunk = piece(buf.len());
    let plain = median_time(REPEATS, || {
        buf.par_chunks_mut(chunk)
            .for_each(|c| c.fill(black_box(2.0)));
        black_box(&mut buf);
    });
    // A streaming fill: each piece written as rows of an outer product 1 ⊗ a, a = ones.
    const ROW: usize = 4096;
    let a = vec![1.0f64; ROW];
    let g = vec![1.0f64; chunk / ROW + 1];
    let stream = median_time(REPEATS, || {
        buf.par_chunks_mut(chunk).for_each(|c| {
            let rows = c.len() / ROW;
            let (body, tail) = c.split_at_mut(rows * ROW);
            f64::outer_into_stream(1.0, &g[..rows], &a, body);
            tail.fill(1.0);
        });
        black_box(&mut buf);
    });
    let b = (buf.len() * 8) as f64;
    let (timing, how) = if stream.median_s < plain.median_s {
        (stream, "streaming stores")
    } else {
        (plain, "ordinary stores")
    };
    Ceiling {
        what: "write",
        value: b / timing.median_s * 1e-9,
        unit: "GB/s",
        method: format!(
            "fill of {:.0} MiB with {how} (ordinary {:.1} GB/s, streaming {:.1} GB/s), {} threads, median of {REPEATS}",
            b / (1 << 20) as f64,
            b / plain.median_s * 1e-9,
            b / stream.median_s * 1e-9,
            rayon::current_num_threads()
        ),
        timing,
    }
}

/// Copy bandwidth: `memcpy` of a buffer of `bytes / 2` bytes into another, one contiguous
/// piece per thread. Rate = `(bytes read + bytes written) / median time` (as STREAM counts).
pub fn copy_bandwidth(bytes: usize) -> Ceiling {
    let src = ones(bytes / 2);
    let mut dst = ones(bytes / 2);
    let chunk = piece(src.len());
    let timing = median_time(REPEATS, || {
        dst.par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk))
            .for_each(|(d, s)| d.copy_from_slice(s));
        black_box(&mut dst);
    });
    let b = (src.len() * 8) as f64;
    Ceiling {
        what: "copy",
        value: 2.0 * b / timing.median_s * 1e-9,
        unit: "GB/s",
        method: format!(
            "memcpy of {:.0} MiB (read + write counted), {} threads, median of {REPEATS}",
            b / (1 << 20) as f64,
            rayon::current_num_threads()
        ),
        timing,
    }
}

/// faer GEMM rate: `C ← A B` with `n × n` column-major matrices in `T`, parallel on the
/// current rayon pool. Rate = `2n³ / median time`. `n = 2048` takes about a second in
/// total on two cores.
pub fn gemm_gflops<T: Real>(n: usize) -> Ceiling {
    let n = n.max(1);
    let a = Mat::<T>::from_fn(n, n, |i, j| {
        T::from_f64(((i * 7 + j * 3) % 11) as f64 - 5.0)
    });
    let b = Mat::<T>::from_fn(n, n, |i, j| T::from_f64(((i * 5 + j) % 13) as f64 - 6.0));
    let mut c = Mat::<T>::zeros(n, n);
    let par = Par::rayon(rayon::current_num_threads());
    let timing = median_time(REPEATS, || {
        matmul(
            c.as_mut(),
            Accum::Replace,
            a.as_ref(),
            b.as_ref(),
            T::one_impl(),
            par,
        );
        black_box(&mut c);
    });
    let flops = 2.0 * (n as f64).powi(3);
    Ceiling {
        what: if T::NAME == "f32" {
            "gemm_f32"
        } else {
            "gemm_f64"
        },
        value: flops / timing.median_s * 1e-9,
        unit: "GFLOP/s",
        method: format!(
            "faer matmul {n}×{n}×{n} {}, {} threads, median of {REPEATS}",
            T::NAME,
            rayon::current_num_threads()
        ),
        timing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let mut k = 0u64;
        let t = median_time(3, || {
            k += 1;
            std::thread::sleep(std::time::Duration::from_millis(if k == 2 {
                20
            } else {
                1
            }));
        });
        assert_eq!(t.repeats, 3);
        assert!(t.min_s < t.median_s + 1e-12 && t.median_s < 0.015, "{t:?}");
        let t = median_time(0, || {});
        assert_eq!(t.repeats, 1);
    }

    #[test]
    fn ceilings_are_positive_and_finite() {
        for c in [
            read_bandwidth(1 << 20),
            write_bandwidth(1 << 20),
            copy_bandwidth(1 << 20),
            gemm_gflops::<f32>(32),
            gemm_gflops::<f64>(32),
        ] {
            assert!(c.value.is_finite() && c.value > 0.0, "{c}");
        }
    }
}
