//! Solvers: damped Gauss–Newton and Levenberg–Marquardt.
//!
//! Generic nonlinear least squares (no network needed): implement [`LeastSquares`] (residuals
//! and Jacobian) and call [`LevenbergMarquardt::minimize`] or [`GaussNewton::minimize`]; the
//! outcome is a [`Report`] with a [`Termination`] reason, costs, evaluation counts, the λ history
//! and a time split. [`test_problems`] holds the Moré–Garbow–Hillstrom problems for checking and
//! benchmarking solvers; [`check_jacobian`] compares an analytic Jacobian with finite differences.

mod gauss_newton_lsq;
mod least_squares;
mod levenberg_marquardt;
mod lsq_common;
mod report;
pub mod test_problems;

pub use gauss_newton_lsq::GaussNewton;
pub use least_squares::{JacobianCheck, LeastSquares, check_jacobian};
pub use levenberg_marquardt::LevenbergMarquardt;
pub use report::{IterationInfo, Report, Termination, Timings};
