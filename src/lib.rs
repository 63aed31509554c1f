#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod error;
pub mod kernels;
pub mod model;
pub mod real;
pub mod report;
pub mod train;

pub use error::{Error, Result};
pub use model::{Activation, Init, Jacobian, Mlp, Model, Parameterization};
pub use real::Real;
