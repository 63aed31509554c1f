//! The host first-order inner step allocates nothing after the first step: a counting global
//! allocator counts every heap allocation made by the stepping thread between the end of step 1 and
//! the end of the last step of a run, for SGD (plain, momentum, Nesterov, weight decay) and
//! Adam, MSE and cross-entropy, `f32` and `f64`, with re-linearisations and a last batch of
//! each epoch smaller than the others. Evaluations are kept out of the window (they run only
//! at the end). faer's matmul runs sequentially here: its parallel form allocates its own
//! job tables per call, which is the GEMM library's, not the step's.

mod common;

use common::{rand_mat, rng};
use faer::Mat;
use itlin::backend::Cpu;
use itlin::train::{BackendEngine, DataRef, Inner, Loss, Observer, Period, TrainConfig, Trainer};
use itlin::{Activation, Init, Mlp, Real};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

struct Counting;

static ARMED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Whether this thread is the one whose steps are counted (the test's: faer runs
    /// sequentially here, so the whole step runs on it). The test harness's own thread
    /// reports the previous test's result while the next one runs, and a loaded CI machine
    /// once put 5 of its allocations inside the window when every thread was counted.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if ARMED.load(Ordering::Relaxed) && COUNTED.with(Cell::get) {
        COUNT.fetch_add(1, Ordering::Relaxed);
    }
}
/// The counter is global: the tests of this file take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
static COUNT: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// relaxed atomic and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation is).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as `dealloc`; `new_size` is the caller's, per `GlobalAlloc::realloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Arms the counter after step 1 and disarms it after the last step (before the final
/// evaluation); records the steps seen.
struct Window {
    steps: u64,
}

impl Observer for Window {
    fn on_step(&mut self, step: u64, total: u64) {
        self.steps = step;
        if step == 1 {
            COUNT.store(0, Ordering::Relaxed);
            COUNTED.with(|c| c.set(true));
            ARMED.store(true, Ordering::Relaxed);
        }
        if step == total {
            ARMED.store(false, Ordering::Relaxed);
            COUNTED.with(|c| c.set(false));
        }
    }
}

/// Allocations during steps 2..=steps of one run.
fn allocations<T: Real>(inner: Inner, loss: Loss, wd: f64, engine: bool) -> u64 {
    let (n, d, c) = (45, 7, 3);
    let x: Mat<T> = rand_mat(&mut rng(3), n, d);
    let y: Mat<T> = match loss {
        Loss::Mse => rand_mat(&mut rng(4), n, c),
        Loss::CrossEntropy => Mat::from_fn(n, c, |i, k| T::from_f64(f64::from(i % c == k))),
    };
    let mlp = Mlp::new(&[d, 16, 12, c], Activation::Tanh).unwrap();
    let steps = 40;
    let cfg = TrainConfig::new()
        .with_period(Period::Steps(3))
        .with_inner(inner)
        .with_loss(loss)
        .with_weight_decay(wd)
        .with_batch(8) // 45 = 5·8 + 5: the last batch of an epoch has 5 rows
        .with_steps(steps)
        .with_eval_every(1_000_000)
        .with_probe(0)
        .with_kernel_distance(false);
    let theta0 = mlp.init::<T>(Init::Standard, 1);
    let mut tr = Trainer::new(&mlp, theta0, cfg).unwrap();
    if engine {
        tr = tr.with_engine(Box::new(BackendEngine::<T, Cpu>::new(
            mlp.clone(),
            Arc::new(Cpu),
        )));
    }
    let mut obs = Window { steps: 0 };
    let rep = tr
        .fit(DataRef::new(x.as_ref(), y.as_ref(), None), None, &mut obs)
        .unwrap();
    ARMED.store(false, Ordering::Relaxed);
    assert_eq!(
        rep.steps, steps,
        "{inner:?} {loss:?}: the run did not complete"
    );
    assert_eq!(obs.steps, steps);
    assert!(tr.theta().iter().all(|v| v.is_finite()));
    COUNT.load(Ordering::Relaxed)
}

/// One uncounted run of each precision first: the GEMM library keeps per-thread packing
/// buffers that it allocates (or grows) the first time a shape needs them on a thread, and
/// the SIMD level is read once per process. Those are one-time costs of the libraries, not
/// of the step.
fn warm_up(inner: Inner, loss: Loss, wd: f64, engine: bool) {
    let _ = allocations::<f32>(inner, loss, wd, engine);
    let _ = allocations::<f64>(inner, loss, wd, engine);
}

#[test]
fn host_first_order_steps_allocate_nothing_after_the_first() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    faer::set_global_parallelism(faer::Par::Seq);
    let sgd = |momentum, nesterov| Inner::Sgd {
        lr: 0.05,
        momentum,
        nesterov,
    };
    let adam = Inner::Adam {
        lr: 0.01,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    let cases = [
        (sgd(0.0, false), Loss::Mse, 0.0),
        (sgd(0.9, false), Loss::CrossEntropy, 1e-3),
        (sgd(0.9, true), Loss::Mse, 1e-2),
        (adam, Loss::CrossEntropy, 0.0),
    ];
    for (inner, loss, wd) in cases {
        warm_up(inner, loss, wd, false);
        let a32 = allocations::<f32>(inner, loss, wd, false);
        let a64 = allocations::<f64>(inner, loss, wd, false);
        assert_eq!(
            (a32, a64),
            (0, 0),
            "{inner:?} {loss:?} wd={wd}: heap allocations in steps 2..40 (f32, f64)"
        );
    }
}

/// The same for the first-order step written over the backend seam (`BackendEngine`, the
/// GPU-resident engine's code) on the CPU backend: its buffers live in the engine and are
/// sized on the first step of each batch size.
#[test]
fn seam_engine_steps_allocate_nothing_after_the_first() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    faer::set_global_parallelism(faer::Par::Seq);
    let cases = [
        (Inner::sgd(0.05), Loss::Mse, 0.0),
        (
            Inner::Sgd {
                lr: 0.05,
                momentum: 0.9,
                nesterov: true,
            },
            Loss::CrossEntropy,
            1e-3,
        ),
        (Inner::adam(0.01), Loss::CrossEntropy, 1e-2),
    ];
    for (inner, loss, wd) in cases {
        warm_up(inner, loss, wd, true);
        let a32 = allocations::<f32>(inner, loss, wd, true);
        let a64 = allocations::<f64>(inner, loss, wd, true);
        assert_eq!(
            (a32, a64),
            (0, 0),
            "engine {inner:?} {loss:?} wd={wd}: heap allocations in steps 2..40 (f32, f64)"
        );
    }
}
