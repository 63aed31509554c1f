//! Networks of layers: a sequence of dense, conv, pooling, flatten and activation layers built
//! from a spec string (see [`spec`]), implementing [`Model`](crate::Model) on the CPU.
//!
//! The input of a network has shape `C×H×W`; a row of `X` is one sample flattened in
//! `(c, h, w)` order (index `(c·H + h)·W + w`), and every intermediate tensor is stored the
//! same way, one sample per row. θ is the concatenation, over the dense and conv layers in
//! order, of `W` (row-major: `OUT × IN` for dense, `OUT × C_in × K × K` for conv, index
//! `((o·C_in + i)·K + u)·K + v`) then `b`. A network of dense layers and activations is the
//! [`Mlp`](crate::Mlp) with the same θ, outputs and derivatives.
//!
//! The files: [`spec`] parses the spec string, `shape` propagates shapes and lays out θ,
//! `init` draws θ, `conv` holds im2col/col2im, `pool` the pooling kernels, `forward` the
//! trace and JVP, `vjp` the reverse pass, `jacobian` the per-output backprop signals and the
//! explicit Jacobian, `ntk` the structured NTK.

mod conv;
mod forward;
mod init;
mod jacobian;
mod model_impl;
mod net;
mod ntk;
mod pool;
mod shape;
pub mod spec;
mod vjp;

pub use net::Network;
pub use ntk::LayerNtk;
pub use shape::{InputShape, NetLayer, Shape};
pub use spec::LayerKind;
