#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod bench;
pub mod error;
pub mod kernels;
pub mod model;
pub mod real;

pub use error::{Error, Result};
pub use model::{Activation, Init, Jacobian, Mlp, Model, Parameterization};
pub use real::Real;
