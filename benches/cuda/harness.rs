//! The timing harness: rows, the bench state, one pass's inputs, and the checks.

use cudarc::driver::CudaSlice;
use cudarc::driver::sys::CUevent_flags;
use itlin::kernels::cuda::{CudaBackend, CudaReal, cudarc};
use itlin::{Mlp, Real};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::error::Error;

pub(crate) type Res<T> = Result<T, Box<dyn Error>>;

pub(crate) struct Row {
    pub(crate) op: String,
    pub(crate) n: usize,
    pub(crate) dtype: &'static str,
    pub(crate) median_s: f64,
    pub(crate) rate: f64,
    pub(crate) unit: &'static str,
    pub(crate) ceiling: f64,
    pub(crate) note: String,
}

pub(crate) struct Bench {
    pub(crate) be: CudaBackend,
    pub(crate) rows: Vec<Row>,
    pub(crate) quick: bool,
    /// Device-to-device copy bandwidth (GB read + written / s), measured once.
    pub(crate) copy_gbs: f64,
    /// Write-only ceiling: the better of `cuMemsetD8` and the `fill` kernel (GB written / s).
    pub(crate) write_gbs: f64,
    /// cuBLAS GEMM rate per dtype (f32, f64), GFLOP/s.
    pub(crate) gemm_gflops: [f64; 2],
    /// Whether the ceilings of each dtype (f32, f64) have been measured.
    pub(crate) ceilings_done: [bool; 2],
}

impl Bench {
    /// Median seconds of `op` over several timed calls (events on the backend's stream),
    /// after one warm-up call; `prep` runs before each call, outside the timed region.
    pub(crate) fn time(
        &self,
        target_s: f64,
        mut prep: impl FnMut() -> Res<()>,
        mut op: impl FnMut() -> Res<()>,
    ) -> Res<f64> {
        let ctx = self.be.context();
        let st = self.be.stream();
        let once =
            |prep: &mut dyn FnMut() -> Res<()>, op: &mut dyn FnMut() -> Res<()>| -> Res<f64> {
                prep()?;
                let a = ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
                let b = ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
                a.record(st)?;
                op()?;
                b.record(st)?;
                Ok(a.elapsed_ms(&b)? as f64 * 1e-3)
            };
        let first = once(&mut prep, &mut op)?;
        let max_reps = if self.quick { 5 } else { 20 };
        // Calls of seconds (Cholesky of order 81920) get one timed repeat after the warm-up.
        let min_reps = if first > 2.0 { 1 } else { 3 };
        let reps = ((target_s / first.max(1e-6)) as usize).clamp(min_reps, max_reps);
        let mut t: Vec<f64> = (0..reps)
            .map(|_| once(&mut prep, &mut op))
            .collect::<Res<_>>()?;
        t.sort_by(|a, b| a.total_cmp(b));
        Ok(t[t.len() / 2])
    }

    /// Pushes the row of a non-default variant from its timing result (its note made from the
    /// median seconds); a failure prints one `FAILED` line and the benchmark goes on.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn report(
        &mut self,
        op: &str,
        n: usize,
        dtype: &'static str,
        timed: Res<f64>,
        work: f64,
        unit: &'static str,
        ceiling: f64,
        note: impl FnOnce(f64) -> String,
    ) -> Option<f64> {
        match timed {
            Ok(t) => {
                self.push(op, n, dtype, t, work, unit, ceiling, note(t));
                Some(t)
            }
            Err(e) => {
                println!("{op:<22} N={n:<5} {dtype:<4} FAILED: {e}");
                None
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push(
        &mut self,
        op: &str,
        n: usize,
        dtype: &'static str,
        s: f64,
        work: f64,
        unit: &'static str,
        ceiling: f64,
        note: impl Into<String>,
    ) {
        let rate = work / s / 1e9;
        let row = Row {
            op: op.into(),
            n,
            dtype,
            median_s: s,
            rate,
            unit,
            ceiling,
            note: note.into(),
        };
        println!(
            "{:<22} N={:<5} {:<4} {:>10.3} ms {:>9.1} {:<7} ceiling {:>8.1} ratio {:>5.2} {}",
            row.op,
            n,
            dtype,
            s * 1e3,
            rate,
            unit,
            ceiling,
            if ceiling > 0.0 {
                rate / ceiling
            } else {
                f64::NAN
            },
            row.note
        );
        self.rows.push(row);
    }
}

/// The inputs of one (N, dtype) pass.
pub(crate) struct Pass<T: CudaReal> {
    pub(crate) mlp: Mlp,
    pub(crate) n: usize,
    /// Rows of `J`: `N · C`.
    pub(crate) m: usize,
    /// Parameters: columns of `J`.
    pub(crate) p: usize,
    pub(crate) dt: &'static str,
    /// Bytes of `J`.
    pub(crate) j_bytes: f64,
    /// Flops of one forward pass.
    pub(crate) flops_fwd: f64,
    pub(crate) td: CudaSlice<T>,
    pub(crate) xd: CudaSlice<T>,
    /// Random vector of length `P`.
    pub(crate) vd: CudaSlice<T>,
    /// Random vector of length `N · C`.
    pub(crate) ud: CudaSlice<T>,
    /// Random targets, `N × C`.
    pub(crate) yd: CudaSlice<T>,
}

impl<T: CudaReal> Pass<T> {
    pub(crate) fn gemm(&self, b: &Bench) -> f64 {
        b.gemm_gflops[dtype_index::<T>()]
    }
}

pub(crate) fn rand_host<T: Real>(rng: &mut ChaCha8Rng, n: usize) -> Vec<T> {
    (0..n)
        .map(|_| T::from_f64(rng.random::<f64>() * 2.0 - 1.0))
        .collect()
}

pub(crate) fn dtype_index<T: Real>() -> usize {
    usize::from(T::NAME == "f64")
}

/// Largest `|a_i − b_i|` over the largest `|a_i|` (0 when equal; a NaN is an infinite
/// difference).
pub(crate) fn max_rel<T: Real>(a: &[T], b: &[T]) -> f64 {
    let scale = a.iter().map(|x| x.to_f64().abs()).fold(0.0, f64::max);
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x.to_f64() - y.to_f64()).abs())
        // a NaN (an element some kernel never wrote) is an infinite difference, not skipped
        .map(|d| if d.is_nan() { f64::INFINITY } else { d })
        .fold(0.0, f64::max);
    if diff == 0.0 {
        0.0
    } else {
        diff / scale.max(f64::MIN_POSITIVE)
    }
}

/// Prints the check of `what` against its reference: `max relative difference`, and
/// `MISMATCH` when it exceeds `tol` (`0.0`: must be exact); `FAILED` if the check itself
/// could not run.
pub(crate) fn print_check(what: &str, d: Res<f64>, tol: f64) {
    match d {
        Ok(d) => println!(
            "{what}: max relative difference {d:.2e}{}",
            if d <= tol { "" } else { "  MISMATCH" }
        ),
        Err(e) => println!("{what}: check FAILED: {e}"),
    }
}
