//! Average and max pooling over `K×K` windows with stride `K` (no padding; a remainder
//! row/column is dropped), on one sample `C × H × W` at a time, with their adjoints.
//!
//! Average: `out[c,y,x] = (1/K²) Σ_{u,v<K} a[c, yK+u, xK+v]`. Max: `out[c,y,x]` is the
//! largest window entry and `idx[c,y,x]` the flat input index of the *first* maximal entry
//! in row-major window order (so the derivative of a tie goes to that entry).

use super::shape::Shape;
use crate::Real;

/// Average pooling of one sample.
pub(crate) fn avg_forward<T: Real>(s: Shape, k: usize, a: &[T], out: &mut [T]) {
    let (ho, wo) = (s.h / k, s.w / k);
    let inv = T::from_f64(1.0 / (k * k) as f64);
    for c in 0..s.c {
        let plane = &a[c * s.h * s.w..(c + 1) * s.h * s.w];
        for y in 0..ho {
            for x in 0..wo {
                let mut acc = T::zero_impl();
                for u in 0..k {
                    let row = &plane[(y * k + u) * s.w + x * k..(y * k + u) * s.w + x * k + k];
                    for &v in row {
                        acc += v;
                    }
                }
                out[(c * ho + y) * wo + x] = acc * inv;
            }
        }
    }
}

/// Adjoint of average pooling: `din[c, yK+u, xK+v] = dout[c,y,x]/K²` (zero on the dropped
/// remainder).
pub(crate) fn avg_backward<T: Real>(s: Shape, k: usize, dout: &[T], din: &mut [T]) {
    let (ho, wo) = (s.h / k, s.w / k);
    let inv = T::from_f64(1.0 / (k * k) as f64);
    let zero = T::zero_impl();
    for c in 0..s.c {
        let plane = &mut din[c * s.h * s.w..(c + 1) * s.h * s.w];
        for y in 0..ho {
            let g = &dout[(c * ho + y) * wo..(c * ho + y + 1) * wo];
            // The first input row of the window row, then copies of it.
            let first = y * k * s.w;
            {
                let row = &mut plane[first..first + s.w];
                if k == 2 {
                    for (pair, &gv) in row[..2 * wo].chunks_exact_mut(2).zip(g) {
                        let v = gv * inv;
                        pair[0] = v;
                        pair[1] = v;
                    }
                } else {
                    for (win, &gv) in row[..k * wo].chunks_exact_mut(k).zip(g) {
                        win.fill(gv * inv);
                    }
                }
                row[k * wo..].fill(zero);
            }
            for u in 1..k {
                plane.copy_within(first..first + s.w, first + u * s.w);
            }
        }
        plane[ho * k * s.w..].fill(zero);
    }
}

/// Max pooling of one sample; `idx` receives the flat input index of each window's first
/// maximum.
pub(crate) fn max_forward<T: Real>(s: Shape, k: usize, a: &[T], out: &mut [T], idx: &mut [u32]) {
    let (ho, wo) = (s.h / k, s.w / k);
    for c in 0..s.c {
        let base = c * s.h * s.w;
        for y in 0..ho {
            for x in 0..wo {
                let mut best = base + (y * k) * s.w + x * k;
                let mut m = a[best];
                for u in 0..k {
                    for v in 0..k {
                        let j = base + (y * k + u) * s.w + x * k + v;
                        if a[j] > m {
                            m = a[j];
                            best = j;
                        }
                    }
                }
                let o = (c * ho + y) * wo + x;
                out[o] = m;
                idx[o] = best as u32;
            }
        }
    }
}

/// Tangent (and primal gather) of max pooling: `out[j] = t[idx[j]]`.
pub(crate) fn max_gather<T: Real>(idx: &[u32], t: &[T], out: &mut [T]) {
    for (o, &j) in out.iter_mut().zip(idx) {
        *o = t[j as usize];
    }
}

/// Adjoint of max pooling: `din[idx[j]] = dout[j]`, zero elsewhere (windows do not overlap).
pub(crate) fn max_backward<T: Real>(idx: &[u32], dout: &[T], din: &mut [T]) {
    din.fill(T::zero_impl());
    for (&g, &j) in dout.iter().zip(idx) {
        din[j as usize] += g;
    }
}
