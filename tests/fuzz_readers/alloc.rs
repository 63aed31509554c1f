//! A global allocator that measures, for the calling thread only, the largest single request
//! and the peak of live bytes while a closure runs, so that a test fails when a reader sizes
//! an allocation by what a header claims instead of by what the file holds.
//!
//! Only the thread inside [`measure`] is counted (other tests run on other threads of the
//! same binary). While measuring, a single request above [`REFUSE`] is refused (the process
//! then aborts with "memory allocation of N bytes failed"), so that a reader that trusts a
//! header claiming gigabytes fails the run instead of taking the machine's memory.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator with per-thread accounting.
pub struct Watch;

/// Single requests above this many bytes are refused while measuring.
pub const REFUSE: usize = 1 << 30;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// Records a change of `grow` live bytes and a request of `size` bytes; `false` refuses it.
fn note(grow: isize, size: usize) -> bool {
    ON.try_with(|on| {
        if !on.get() {
            return true;
        }
        if size > REFUSE {
            return false;
        }
        let live = LIVE.get() + grow;
        LIVE.set(live);
        PEAK.set(PEAK.get().max(live));
        LARGEST.set(LARGEST.get().max(size));
        true
    })
    .unwrap_or(true)
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the bookkeeping touches only const-initialised thread-locals
// without destructors, which never allocate.
unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size() as isize, layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's `layout` contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size() as isize, layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize), 0);
        // SAFETY: `ptr` was returned by `System` for this `layout` (every path above).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !note(new_size as isize - layout.size() as isize, new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: `ptr` was returned by `System` for `layout`; the caller guarantees
        // `new_size` is valid for its alignment.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// What [`measure`] saw.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    /// The largest single request, in bytes.
    pub largest: usize,
    /// The peak of bytes allocated and not yet freed since the start, in bytes.
    pub peak: usize,
}

/// Stops counting when dropped (also when the closure panics).
struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        ON.set(false);
    }
}

/// Runs `f`, counting the allocations this thread makes meanwhile.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Stats) {
    LIVE.set(0);
    PEAK.set(0);
    LARGEST.set(0);
    ON.set(true);
    let guard = Guard;
    let r = f();
    drop(guard);
    let stats = Stats {
        largest: LARGEST.get(),
        peak: PEAK.get().max(0) as usize,
    };
    (r, stats)
}
