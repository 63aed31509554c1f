//! Shapes `C×H×W` and the layer table of a network: each layer's input and output shape and
//! where its parameters sit in θ.

use super::spec::{Item, LayerKind, layer_error};
use crate::model::{Layer, Parameterization};
use crate::{Error, Result};
use std::fmt;

/// A tensor shape `C×H×W` (channels, height, width). Flat data of width `D` is `D×1×1`.
///
/// Converts from `(c, h, w)`, `[c, h, w]` and a plain `D` (= `D×1×1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Channels `C`.
    pub c: usize,
    /// Height `H`.
    pub h: usize,
    /// Width `W`.
    pub w: usize,
}

/// The input shape of a network (`C×H×W`); see [`Shape`].
pub type InputShape = Shape;

impl Shape {
    /// `C×H×W`.
    pub const fn new(c: usize, h: usize, w: usize) -> Self {
        Self { c, h, w }
    }
    /// Number of entries `C·H·W`.
    pub const fn size(&self) -> usize {
        self.c * self.h * self.w
    }
    /// `(C, H, W)`.
    pub const fn dims(&self) -> (usize, usize, usize) {
        (self.c, self.h, self.w)
    }
}

impl From<(usize, usize, usize)> for Shape {
    fn from((c, h, w): (usize, usize, usize)) -> Self {
        Self { c, h, w }
    }
}
impl From<[usize; 3]> for Shape {
    fn from([c, h, w]: [usize; 3]) -> Self {
        Self { c, h, w }
    }
}
impl From<usize> for Shape {
    fn from(d: usize) -> Self {
        Self { c: d, h: 1, w: 1 }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}×{}×{}", self.c, self.h, self.w)
    }
}

/// One layer of a [`Network`](super::Network): what it does, the shapes it maps between,
/// and, for dense and conv layers, where its parameters sit in θ.
///
/// For a conv layer `params.fan_in = C_in·K·K` and `params.fan_out = OUT`, so
/// [`Layer::weights`] is the `OUT × (C_in·K·K)` row-major view of `W[o,i,u,v]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetLayer {
    /// The operation.
    pub kind: LayerKind,
    /// Input shape.
    pub input: Shape,
    /// Output shape.
    pub output: Shape,
    /// Offsets and scales of `W` and `b` (dense and conv only).
    pub params: Option<Layer>,
}

impl NetLayer {
    /// The number of parameters of this layer (`0` for layers without).
    pub fn n_params(&self) -> usize {
        self.params.map_or(0, |l| l.fan_in * l.fan_out + l.fan_out)
    }
}

/// Largest number of entries a shape, a weight matrix or θ may have (2⁴⁰): larger requests
/// are configuration errors, not allocations.
const MAX_ENTRIES: usize = 1 << 40;

/// Builds the layer table: propagates the shape, checks every layer against its input and
/// lays out θ (`W` row-major then `b`, layer by layer).
pub(crate) fn build(
    input: Shape,
    items: &[Item],
    parameterization: Parameterization,
) -> Result<Vec<NetLayer>> {
    if input.c == 0 || input.h == 0 || input.w == 0 {
        return Err(Error::config(format!(
            "network input shape {input} has a zero dimension"
        )));
    }
    if input
        .c
        .checked_mul(input.h)
        .and_then(|v| v.checked_mul(input.w))
        .is_none_or(|v| v > MAX_ENTRIES)
    {
        return Err(Error::config(format!(
            "network input shape {input} is too large"
        )));
    }
    if let Parameterization::Ntk { sigma_w, sigma_b } = parameterization
        && !(sigma_w.is_finite() && sigma_w > 0.0 && sigma_b.is_finite() && sigma_b >= 0.0)
    {
        return Err(Error::config(format!(
            "NTK parameterisation needs σ_w > 0 and σ_b ≥ 0, got σ_w={sigma_w}, σ_b={sigma_b}"
        )));
    }
    let total = items.len();
    let mut layers = Vec::with_capacity(total);
    let mut shape = input;
    let mut off = 0usize;
    for (i, item) in items.iter().enumerate() {
        let err = |m: String| layer_error(i, total, &item.text, m);
        let too_big = || err("the layer is too large".into());
        let (output, fan) = match item.kind {
            LayerKind::Dense { out } => (Shape::new(out, 1, 1), Some((shape.size(), out))),
            LayerKind::Conv {
                out,
                kernel,
                stride,
                pad,
            } => {
                let (ph, pw) = (
                    shape.h.saturating_add(pad.saturating_mul(2)),
                    shape.w.saturating_add(pad.saturating_mul(2)),
                );
                if kernel > ph || kernel > pw {
                    return Err(err(format!(
                        "kernel {kernel}×{kernel} is larger than the padded input {ph}×{pw} (input {shape}, pad {pad})"
                    )));
                }
                let fan_in = shape
                    .c
                    .checked_mul(kernel.saturating_mul(kernel))
                    .ok_or_else(too_big)?;
                (
                    Shape::new(out, (ph - kernel) / stride + 1, (pw - kernel) / stride + 1),
                    Some((fan_in, out)),
                )
            }
            LayerKind::AvgPool { size } | LayerKind::MaxPool { size } => {
                if size > shape.h || size > shape.w {
                    return Err(err(format!(
                        "window {size}×{size} is larger than the input {shape}"
                    )));
                }
                if matches!(item.kind, LayerKind::MaxPool { .. })
                    && shape.size() > u32::MAX as usize
                {
                    return Err(err(format!(
                        "input {shape} is too large for max pooling (at most 2³² entries per sample)"
                    )));
                }
                (Shape::new(shape.c, shape.h / size, shape.w / size), None)
            }
            LayerKind::Flatten => (Shape::new(shape.size(), 1, 1), None),
            LayerKind::Activation(_) => (shape, None),
        };
        if output
            .c
            .checked_mul(output.h)
            .and_then(|v| v.checked_mul(output.w))
            .is_none_or(|v| v > MAX_ENTRIES)
        {
            return Err(too_big());
        }
        let params = match fan {
            None => None,
            Some((fan_in, fan_out)) => {
                let nw = fan_in.checked_mul(fan_out).ok_or_else(too_big)?;
                let end = off
                    .checked_add(nw)
                    .and_then(|v| v.checked_add(fan_out))
                    .filter(|&v| v <= MAX_ENTRIES)
                    .ok_or_else(too_big)?;
                let (w_scale, b_scale) = match parameterization {
                    Parameterization::Standard => (1.0, 1.0),
                    Parameterization::Ntk { sigma_w, sigma_b } => {
                        (sigma_w / (fan_in as f64).sqrt(), sigma_b)
                    }
                };
                let l = Layer {
                    fan_in,
                    fan_out,
                    w_offset: off,
                    b_offset: off + nw,
                    w_scale,
                    b_scale,
                };
                off = end;
                Some(l)
            }
        };
        layers.push(NetLayer {
            kind: item.kind,
            input: shape,
            output,
            params,
        });
        shape = output;
    }
    if !layers.iter().any(|l| l.params.is_some()) {
        return Err(Error::config(format!(
            "network spec `{}` has no dense or conv layer (nothing to train)",
            items
                .iter()
                .map(|i| i.kind.to_string())
                .collect::<Vec<_>>()
                .join(",")
        )));
    }
    Ok(layers)
}
