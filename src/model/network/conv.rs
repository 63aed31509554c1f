//! The geometry of a 2-D convolution and its patch matrix (im2col) and adjoint (col2im).
//!
//! For one sample with input `a` (`C_in × H × W`, row-major), the patch matrix `P` has one
//! row per output position `p = (y, x)` and one column per kernel entry `q = (i, u, v)`:
//! `P[p, q] = a[i, y·S+u−P, x·S+v−P]` (zero outside the input). It is stored column-major,
//! i.e. as the row-major `(C_in·K·K) × (H'·W')` array `cols[q·H'W' + p]`, so that each
//! kernel entry's row is a strided copy of one input row. Then
//! `z = s_w W Pᵀ + s_b b 1ᵀ` (`OUT × H'W'`, the `(o, y, x)` layout of the output),
//! `∂/∂W = s_w δ P`, and the input cotangent is `col2im(s_w Wᵀ δ)`.

use super::shape::NetLayer;
use super::spec::LayerKind;
use crate::Real;

/// The shapes of one conv layer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvGeom {
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub s: usize,
    pub p: usize,
    pub ho: usize,
    pub wo: usize,
    pub out: usize,
}

impl ConvGeom {
    /// The geometry of a conv layer (`None` for any other kind).
    pub fn of(layer: &NetLayer) -> Option<Self> {
        match layer.kind {
            LayerKind::Conv {
                out,
                kernel,
                stride,
                pad,
            } => Some(Self {
                c_in: layer.input.c,
                h: layer.input.h,
                w: layer.input.w,
                k: kernel,
                s: stride,
                p: pad,
                ho: layer.output.h,
                wo: layer.output.w,
                out,
            }),
            _ => None,
        }
    }
    /// Kernel entries `C_in·K·K` (the fan-in).
    pub fn patch_len(&self) -> usize {
        self.c_in * self.k * self.k
    }
    /// Output positions `H'·W'`.
    pub fn positions(&self) -> usize {
        self.ho * self.wo
    }
    /// Entries of one sample's input.
    pub fn in_len(&self) -> usize {
        self.c_in * self.h * self.w
    }

    /// The range of output columns `x` whose input column `x·S + v − P` lies inside
    /// `[0, W)`, for kernel column `v`.
    #[inline]
    fn x_range(&self, v: usize) -> (usize, usize) {
        // x·S + v ≥ P  ⇔  x ≥ ⌈(P − v)/S⌉ ; x·S + v − P < W  ⇔  x < ⌈(W + P − v)/S⌉
        let lo = if self.p > v {
            (self.p - v).div_ceil(self.s)
        } else {
            0
        };
        let hi = if self.w + self.p > v {
            (self.w + self.p - v).div_ceil(self.s).min(self.wo)
        } else {
            0
        };
        (lo.min(hi), hi)
    }

    /// `cols ← P` (column-major patch matrix, `(C_in·K·K) × (H'·W')` row-major) of one
    /// sample's input `a`.
    ///
    /// # Panics
    /// If the slices do not have the geometry's sizes.
    pub fn im2col<T: Real>(&self, a: &[T], cols: &mut [T]) {
        assert_eq!(a.len(), self.in_len(), "im2col: input length");
        let np = self.positions();
        assert_eq!(cols.len(), self.patch_len() * np, "im2col: patch length");
        let zero = T::zero_impl();
        for i in 0..self.c_in {
            let plane = &a[i * self.h * self.w..(i + 1) * self.h * self.w];
            for u in 0..self.k {
                for v in 0..self.k {
                    let q = (i * self.k + u) * self.k + v;
                    let dst = &mut cols[q * np..(q + 1) * np];
                    let (x0, x1) = self.x_range(v);
                    for y in 0..self.ho {
                        let row = &mut dst[y * self.wo..(y + 1) * self.wo];
                        let yy = (y * self.s + u) as isize - self.p as isize;
                        if yy < 0 || yy >= self.h as isize {
                            row.fill(zero);
                            continue;
                        }
                        let src = &plane[yy as usize * self.w..(yy as usize + 1) * self.w];
                        row[..x0].fill(zero);
                        row[x1..].fill(zero);
                        if self.s == 1 {
                            let s0 = x0 + v - self.p;
                            row[x0..x1].copy_from_slice(&src[s0..s0 + (x1 - x0)]);
                        } else {
                            for (x, d) in row[x0..x1].iter_mut().enumerate() {
                                *d = src[(x0 + x) * self.s + v - self.p];
                            }
                        }
                    }
                }
            }
        }
    }

    /// `a ← col2im(cols)`, the adjoint of [`im2col`](Self::im2col):
    /// `a[i, y·S+u−P, x·S+v−P] = Σ cols[(i,u,v), (y,x)]` over the positions that read it.
    ///
    /// # Panics
    /// If the slices do not have the geometry's sizes.
    pub fn col2im<T: Real>(&self, cols: &[T], a: &mut [T]) {
        assert_eq!(a.len(), self.in_len(), "col2im: input length");
        let np = self.positions();
        assert_eq!(cols.len(), self.patch_len() * np, "col2im: patch length");
        a.fill(T::zero_impl());
        let (w, wo, s, p) = (self.w, self.wo, self.s, self.p);
        for i in 0..self.c_in {
            let plane = &mut a[i * self.h * w..(i + 1) * self.h * w];
            for u in 0..self.k {
                // Output rows y whose input row y·S + u − P lies inside [0, H).
                let (y0, y1) = self.y_range(u);
                for v in 0..self.k {
                    let q = (i * self.k + u) * self.k + v;
                    let src = &cols[q * np..(q + 1) * np];
                    let (x0, x1) = self.x_range(v);
                    if x0 >= x1 {
                        continue;
                    }
                    for y in y0..y1 {
                        let yy = y * s + u - p;
                        let row = &src[y * wo + x0..y * wo + x1];
                        if s == 1 {
                            let s0 = yy * w + x0 + v - p;
                            let dst = &mut plane[s0..s0 + row.len()];
                            for (d, &c) in dst.iter_mut().zip(row) {
                                *d += c;
                            }
                        } else {
                            let dst = &mut plane[yy * w..(yy + 1) * w];
                            for (x, &c) in row.iter().enumerate() {
                                dst[(x0 + x) * s + v - p] += c;
                            }
                        }
                    }
                }
            }
        }
    }

    /// The range of output rows `y` whose input row `y·S + u − P` lies inside `[0, H)`.
    #[inline]
    fn y_range(&self, u: usize) -> (usize, usize) {
        let lo = if self.p > u {
            (self.p - u).div_ceil(self.s)
        } else {
            0
        };
        let hi = if self.h + self.p > u {
            (self.h + self.p - u).div_ceil(self.s).min(self.ho)
        } else {
            0
        };
        (lo.min(hi), hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(c_in: usize, h: usize, w: usize, k: usize, s: usize, p: usize) -> ConvGeom {
        ConvGeom {
            c_in,
            h,
            w,
            k,
            s,
            p,
            ho: (h + 2 * p - k) / s + 1,
            wo: (w + 2 * p - k) / s + 1,
            out: 1,
        }
    }

    /// im2col against the formula, and col2im as its adjoint: ⟨P(a), c⟩ = ⟨a, P*(c)⟩.
    #[test]
    fn im2col_formula_and_adjoint() {
        for &(c_in, h, w, k, s, p) in &[
            (1, 5, 5, 3, 1, 0),
            (2, 5, 7, 3, 2, 1),
            (3, 4, 4, 4, 1, 0),
            (1, 3, 3, 5, 1, 1),
            (2, 6, 5, 1, 3, 0),
            (1, 7, 6, 3, 3, 2),
            (2, 2, 3, 2, 1, 3),
        ] {
            let g = geom(c_in, h, w, k, s, p);
            let a: Vec<f64> = (0..g.in_len()).map(|i| (i as f64 * 0.37).sin()).collect();
            let mut cols = vec![f64::NAN; g.patch_len() * g.positions()];
            g.im2col(&a, &mut cols);
            for i in 0..c_in {
                for u in 0..k {
                    for v in 0..k {
                        for y in 0..g.ho {
                            for x in 0..g.wo {
                                let yy = (y * s + u) as isize - p as isize;
                                let xx = (x * s + v) as isize - p as isize;
                                let want =
                                    if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < w
                                    {
                                        a[(i * h + yy as usize) * w + xx as usize]
                                    } else {
                                        0.0
                                    };
                                let q = (i * k + u) * k + v;
                                assert_eq!(cols[q * g.positions() + y * g.wo + x], want);
                            }
                        }
                    }
                }
            }
            let c: Vec<f64> = (0..cols.len()).map(|i| (i as f64 * 0.71).cos()).collect();
            let mut back = vec![f64::NAN; g.in_len()];
            g.col2im(&c, &mut back);
            let lhs: f64 = cols.iter().zip(&c).map(|(x, y)| x * y).sum();
            let rhs: f64 = a.iter().zip(&back).map(|(x, y)| x * y).sum();
            assert!(
                (lhs - rhs).abs() <= 1e-12 * lhs.abs().max(1.0),
                "{lhs} {rhs}"
            );
        }
    }
}
