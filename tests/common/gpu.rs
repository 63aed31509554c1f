//! The CUDA backend shared by the tests of one GPU test binary (feature `cuda`).

use itlin::kernels::cuda::CudaBackend;
use std::sync::{Arc, OnceLock};

/// Whether the GPU tests must run (`ITLIN_REQUIRE_GPU=1`) rather than skip.
pub fn require_gpu() -> bool {
    std::env::var("ITLIN_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

/// One backend for the binary's tests, or `None` (after printing why) when no GPU is usable;
/// with `ITLIN_REQUIRE_GPU=1` that is a panic instead.
pub fn shared_backend() -> Option<Arc<CudaBackend>> {
    static BE: OnceLock<Option<Arc<CudaBackend>>> = OnceLock::new();
    let be = BE.get_or_init(|| match CudaBackend::new() {
        Ok(be) => {
            println!(
                "CUDA device: {} ({})",
                be.device_name().unwrap_or_default(),
                be.arch()
            );
            Some(Arc::new(be))
        }
        Err(e) if require_gpu() => panic!("ITLIN_REQUIRE_GPU=1 but {e}"),
        Err(e) => {
            println!("skipping: {e}");
            None
        }
    });
    if be.is_none() {
        println!("skipping: no usable CUDA device (see the first message)");
    }
    be.clone()
}
