#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod backend;
#[cfg(feature = "cli")]
pub mod bench;
pub mod data;
pub mod device;
pub mod dist;
pub mod error;
pub mod kernels;
pub mod linalg;
pub mod linearise;
pub mod loss;
pub mod maths;
pub mod memory;
pub mod model;
pub mod ntk;
pub mod real;
#[cfg(feature = "cli")]
pub mod report;
pub mod solve;
pub mod train;

pub use device::Device;
pub use error::{Error, Result};
pub use model::{
    Activation, Init, InputShape, Jacobian, LayerKind, LayerNtk, Mlp, Model, NetLayer, Network,
    Parameterization, Shape,
};
pub use real::Real;
