//! Outer products written with non-temporal (streaming) stores, for destinations far larger
//! than the caches that will not be read again soon: the explicit Jacobian.
//!
//! A normal store to a line that is not in cache first reads the line from memory
//! ("read for ownership"), so writing a large buffer costs twice its size in memory traffic.
//! Streaming stores skip that read. They are weakly ordered, so every function here ends
//! with `sfence`, after which the writes are ordered like ordinary stores for every later
//! access, by this thread or (after the usual synchronisation) by others.
//!
//! Only x86-64 with AVX-512F has a streaming path; elsewhere (or on older x86 CPUs) the
//! functions return `false` and the caller uses the ordinary SIMD kernel. The same holds when
//! `ITLIN_SIMD` caps the level below AVX-512 (see [`super::level`]).

/// Streams `out[i·k + j] ← (α gᵢ) aⱼ` (`k = a.len()`). Returns `false`, touching nothing,
/// when the CPU has no AVX-512F or the kernels are capped below it. Lengths must already be checked (`out.len() == g.len()·k`).
#[inline]
pub fn outer_f32(alpha: f32, g: &[f32], a: &[f32], out: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if super::level::simd_level() == super::level::SimdLevel::V4
            && std::arch::is_x86_feature_detected!("avx512f")
        {
            // SAFETY: AVX-512F is available (checked just above).
            unsafe { x86::outer_f32(alpha, g, a, out) };
            return true;
        }
    }
    let _ = (alpha, g, a, out);
    false
}

/// As [`outer_f32`], for `f64`.
#[inline]
pub fn outer_f64(alpha: f64, g: &[f64], a: &[f64], out: &mut [f64]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if super::level::simd_level() == super::level::SimdLevel::V4
            && std::arch::is_x86_feature_detected!("avx512f")
        {
            // SAFETY: AVX-512F is available (checked just above).
            unsafe { x86::outer_f64(alpha, g, a, out) };
            return true;
        }
    }
    let _ = (alpha, g, a, out);
    false
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;

    macro_rules! outer_impl {
        ($name:ident, $t:ty, $lanes:expr, $mask:ty, $set1:ident, $mul:ident, $loadu:ident,
         $maskz_loadu:ident, $mask_storeu:ident, $stream:ident) => {
            /// Streaming outer product (see the module docs).
            ///
            /// # Safety
            /// The CPU must support AVX-512F.
            #[target_feature(enable = "avx512f")]
            pub unsafe fn $name(alpha: $t, g: &[$t], a: &[$t], out: &mut [$t]) {
                const L: usize = $lanes;
                let k = a.len();
                if k == 0 {
                    return;
                }
                let src = a.as_ptr();
                for (&gi, dst) in g.iter().zip(out.chunks_exact_mut(k)) {
                    let cv = $set1(alpha * gi);
                    let ptr = dst.as_mut_ptr();
                    // Elements before the first 64-byte boundary of `dst` (at most L − 1).
                    let mis = (ptr as usize) % 64;
                    let head = if mis == 0 {
                        0
                    } else {
                        ((64 - mis) / size_of::<$t>()).min(k)
                    };
                    if head > 0 {
                        let m: $mask = ((1u32 << head) - 1) as $mask;
                        // SAFETY: the mask selects lanes 0..head, all inside `a` and
                        // `dst` (head ≤ k); masked-off lanes are not accessed.
                        unsafe {
                            let x = $maskz_loadu(m, src);
                            $mask_storeu(ptr, m, $mul(cv, x));
                        }
                    }
                    let body = (k - head) / L;
                    for b in 0..body {
                        let off = head + b * L;
                        // SAFETY: off + L ≤ k, so both accesses are in bounds; `ptr + off`
                        // is 64-byte aligned because `ptr + head` is and L lanes are 64 bytes.
                        unsafe {
                            let x = $loadu(src.add(off));
                            $stream(ptr.add(off), $mul(cv, x));
                        }
                    }
                    let done = head + body * L;
                    let rest = k - done;
                    if rest > 0 {
                        let m: $mask = ((1u32 << rest) - 1) as $mask;
                        // SAFETY: rest < L lanes starting at `done` lie inside `a` and `dst`.
                        unsafe {
                            let x = $maskz_loadu(m, src.add(done));
                            $mask_storeu(ptr.add(done), m, $mul(cv, x));
                        }
                    }
                }
                // Order the streaming stores before any later access (see module docs).
                _mm_sfence();
            }
        };
    }

    outer_impl!(
        outer_f32,
        f32,
        16,
        __mmask16,
        _mm512_set1_ps,
        _mm512_mul_ps,
        _mm512_loadu_ps,
        _mm512_maskz_loadu_ps,
        _mm512_mask_storeu_ps,
        _mm512_stream_ps
    );
    outer_impl!(
        outer_f64,
        f64,
        8,
        __mmask8,
        _mm512_set1_pd,
        _mm512_mul_pd,
        _mm512_loadu_pd,
        _mm512_maskz_loadu_pd,
        _mm512_mask_storeu_pd,
        _mm512_stream_pd
    );
}
