//! A naive reference for networks, written straight from the layer formulas (loops over
//! every index, f64), independent of the crate's im2col/GEMM kernels. It reads only the
//! layer table (kinds, shapes, θ offsets and scales) of a `Network`.
#![allow(dead_code)]

use itlin::{Activation, LayerKind, Network};

/// `φ(z)` written independently of the crate.
pub fn phi(act: Activation, z: f64) -> f64 {
    match act {
        Activation::Identity => z,
        Activation::Relu => z.max(0.0),
        Activation::Tanh => z.tanh(),
        Activation::Gelu => 0.5 * z * (1.0 + libm::erf(z * std::f64::consts::FRAC_1_SQRT_2)),
        Activation::Softplus => z.max(0.0) + (-z.abs()).exp().ln_1p(),
    }
}

/// `f(x; θ)` for one sample `x` (flattened `(c, h, w)`), by direct summation.
pub fn forward(net: &Network, theta: &[f64], x: &[f64]) -> Vec<f64> {
    let mut a = x.to_vec();
    for l in net.layers() {
        let (ci, hi, wi) = l.input.dims();
        let (co, ho, wo) = l.output.dims();
        let mut z = vec![0.0; co * ho * wo];
        match l.kind {
            LayerKind::Dense { out } => {
                let p = l.params.unwrap();
                let fan_in = ci * hi * wi;
                for o in 0..out {
                    let mut s = 0.0;
                    for i in 0..fan_in {
                        s += theta[p.w_offset + o * fan_in + i] * a[i];
                    }
                    z[o] = p.w_scale * s + p.b_scale * theta[p.b_offset + o];
                }
            }
            LayerKind::Conv {
                out,
                kernel: k,
                stride: st,
                pad,
            } => {
                let p = l.params.unwrap();
                for o in 0..out {
                    for y in 0..ho {
                        for x in 0..wo {
                            let mut s = 0.0;
                            for i in 0..ci {
                                for u in 0..k {
                                    for v in 0..k {
                                        let yy = (y * st + u) as isize - pad as isize;
                                        let xx = (x * st + v) as isize - pad as isize;
                                        if yy < 0
                                            || xx < 0
                                            || yy >= hi as isize
                                            || xx >= wi as isize
                                        {
                                            continue;
                                        }
                                        let w = theta[p.w_offset + ((o * ci + i) * k + u) * k + v];
                                        s += w * a[(i * hi + yy as usize) * wi + xx as usize];
                                    }
                                }
                            }
                            z[(o * ho + y) * wo + x] =
                                p.w_scale * s + p.b_scale * theta[p.b_offset + o];
                        }
                    }
                }
            }
            LayerKind::AvgPool { size: k } | LayerKind::MaxPool { size: k } => {
                let is_max = matches!(l.kind, LayerKind::MaxPool { .. });
                for c in 0..ci {
                    for y in 0..ho {
                        for x in 0..wo {
                            let mut acc = if is_max { f64::NEG_INFINITY } else { 0.0 };
                            for u in 0..k {
                                for v in 0..k {
                                    let e = a[(c * hi + y * k + u) * wi + x * k + v];
                                    acc = if is_max { acc.max(e) } else { acc + e };
                                }
                            }
                            z[(c * ho + y) * wo + x] =
                                if is_max { acc } else { acc / (k * k) as f64 };
                        }
                    }
                }
            }
            LayerKind::Flatten => z.copy_from_slice(&a),
            LayerKind::Activation(act) => {
                for (zi, &ai) in z.iter_mut().zip(&a) {
                    *zi = phi(act, ai);
                }
            }
        }
        a = z;
    }
    a
}
