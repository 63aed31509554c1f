//! Large zeroed buffers that are cheap to fill for the first time.
//!
//! A fresh multi-gigabyte buffer (an explicit Jacobian) is mapped lazily by the OS: the first
//! write to each 4 KiB page traps into the kernel, which zeroes the page. For a 1.2 GB
//! Jacobian that is 300,000 page faults, and on a virtual machine they can cost more than
//! writing the Jacobian itself. Backing the buffer with transparent huge pages (2 MiB) cuts
//! the number of faults 512-fold.

use crate::Real;

/// Size of a transparent huge page on x86-64 and most aarch64 Linux systems.
const HUGE_PAGE: usize = 2 << 20;

/// Asks the OS (Linux: `madvise(MADV_HUGEPAGE)`) to back the whole 2 MiB pages inside `buf`
/// with transparent huge pages when they are first touched. A hint only: contents are
/// unchanged, errors are ignored, and on other systems it does nothing. Worth it only for
/// buffers of many megabytes that have not been written yet.
pub fn advise_huge_pages<T: Copy>(buf: &mut [T]) {
    #[cfg(target_os = "linux")]
    {
        let start = buf.as_mut_ptr() as usize;
        let end = start + std::mem::size_of_val(buf);
        let lo = start.next_multiple_of(HUGE_PAGE);
        let hi = end / HUGE_PAGE * HUGE_PAGE;
        if hi > lo {
            // SAFETY: [lo, hi) lies inside `buf`, which we borrow mutably; MADV_HUGEPAGE
            // changes only how the pages are backed, never their contents or mapping.
            unsafe {
                libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (buf, HUGE_PAGE);
}

/// A vector of `n` zeros. The memory comes zeroed from the allocator (`calloc`, so a large
/// buffer is not written here) and, when it spans at least one huge page, is advised to be
/// backed by huge pages ([`advise_huge_pages`]), so that the first pass over it (the
/// Jacobian assembly) is not dominated by page faults.
pub fn zeroed_vec<T: Real>(n: usize) -> Vec<T> {
    // `vec![0.0; n]` allocates with `alloc_zeroed` for floats: no pages are touched yet.
    let mut v = vec![T::zero_impl(); n];
    if std::mem::size_of_val(v.as_slice()) >= 2 * HUGE_PAGE {
        advise_huge_pages(&mut v);
    }
    v
}
