//! The trainer's losses are the crate's ([`crate::loss`]), re-exported for convenience.

pub use crate::loss::{Loss, accuracy, loss_gradient, loss_value};
