//! Benchmark support shared by `itlin bench`, the criterion benches and `BENCHMARKS.md`:
//! the machine ceilings (memory bandwidth, GEMM rate) that each kernel's rate is compared
//! against, and a small timing helper.

pub mod ceilings;
pub mod suite;

pub use ceilings::{
    Ceiling, Timing, copy_bandwidth, gemm_gflops, median_time, read_bandwidth, write_bandwidth,
};
