//! The matrix-free dual CG step holds no `(N·C)²` matrix and no `(N·C) × P` Jacobian: a
//! global allocator records the largest single allocation the step makes on the calling
//! thread (where the solvers allocate their matrices), with the Nyström and pivoted-Cholesky
//! preconditioners and for both losses. The dense dual step on the same problem is measured
//! too, so the test would see such a buffer if one were made. Other threads are left out:
//! the GEMM library gives each thread that first multiplies a cache-sized scratch slab of
//! its own (tens of MB on large-L3 CPUs), which is its, not the step's; the dense run comes
//! first so the calling thread's slab exists before the measured runs.

use faer::Mat;
use itlin::solve::{Form, GaussNewtonStep, Loss, Preconditioner, StepStatus};
use itlin::{Activation, Init, Mlp};
use rand::{Rng, SeedableRng};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Largest;

static ARMED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Whether this thread's allocations are recorded (const-initialised: reading it
    /// never allocates).
    static MEASURED: Cell<bool> = const { Cell::new(false) };
}

fn record(size: usize) {
    if ARMED.load(Ordering::Relaxed) && MEASURED.with(Cell::get) {
        LARGEST.fetch_max(size, Ordering::Relaxed);
    }
}
static LARGEST: AtomicUsize = AtomicUsize::new(0);
/// The tests of this binary take turns (the allocator is global).
static TURN: Mutex<()> = Mutex::new(());

// SAFETY: every call is forwarded unchanged to the system allocator; the record is a relaxed
// atomic and never allocates.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation is).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        // SAFETY: as `alloc`; `ptr` and `layout` come from an earlier allocation here.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Largest = Largest;

/// The largest single allocation (bytes) made on this thread while `f` runs.
fn largest_during(f: impl FnOnce()) -> usize {
    MEASURED.with(|m| m.set(true));
    LARGEST.store(0, Ordering::Relaxed);
    ARMED.store(true, Ordering::Relaxed);
    f();
    ARMED.store(false, Ordering::Relaxed);
    LARGEST.load(Ordering::Relaxed)
}

#[test]
fn matrix_free_dual_step_allocates_no_kernel_or_jacobian() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    // N·C = 1500 < P = 3978: (N·C)² in f64 is 18 MB, J is 48 MB.
    let (n, widths) = (150usize, [20usize, 128, 10]);
    let mlp = Mlp::new(&widths, Activation::Tanh).unwrap();
    let theta: Vec<f64> = mlp.init(Init::Standard, 1);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let x = Mat::from_fn(n, 20, |_, _| rng.random::<f64>() * 2.0 - 1.0);
    let y = Mat::from_fn(n, 10, |i, k| f64::from(u8::from(i % 10 == k)));
    let m = n * 10;
    let kernel_bytes = m * m * 8;
    for loss in [Loss::Mse, Loss::CrossEntropy] {
        let gn = GaussNewtonStep::new(loss).with_damping(1e-3);
        let dense = largest_during(|| {
            let (_, rep) =
                gn.clone()
                    .with_form(Form::Dual)
                    .solve(&mlp, &theta, x.as_ref(), y.as_ref());
            assert_eq!(rep.status, StepStatus::Solved);
        });
        assert!(dense >= kernel_bytes, "dense dual: largest {dense} B");
        for pre in [
            Preconditioner::Nystrom { rank: 100 },
            Preconditioner::PivotedCholesky { rank: 100 },
            Preconditioner::Nystrom { rank: 0 },
        ] {
            let free = largest_during(|| {
                let (_, rep) = gn
                    .clone()
                    .with_form(Form::Cg)
                    .with_cg_preconditioner(pre)
                    .solve(&mlp, &theta, x.as_ref(), y.as_ref());
                assert!(rep.cg.is_some(), "{pre}: {rep:?}");
            });
            // the largest buffers are (N·C) × rank and (N·C) × width: a few MB
            assert!(
                8 * free < kernel_bytes,
                "{loss:?} {pre}: largest allocation {free} B, (N·C)² f64 is {kernel_bytes} B"
            );
        }
    }
}
