//! Solvers: the damped Gauss-Newton step for networks in its four forms (primal, dual, CG,
//! spectral; CG also on the dual system, matrix-free, with a Nyström preconditioner), the closed-form K-step gradient descent, and generic nonlinear least squares.
//!
//! The damped GN subproblem ([damped GN step](crate::maths#damped-gauss-newton-step)), mean loss, damping `λ`:
//! minimise `(1/N) Σ_n [g_nᵀ (Jδ)_n + ½ (Jδ)_nᵀ H_n (Jδ)_n] + (λ/2)‖δ‖²`, so
//! `(JᵀHJ + NλI) δ = −Jᵀg`, with `g_n = f_n − y_n`, `H_n = I` for MSE and
//! `g_n = p_n − y_n`, `H_n = diag(p_n) − p_n p_nᵀ` for softmax cross-entropy.
//! Every form returns the same `δ` (up to the CG tolerance).
//!
//! Generic nonlinear least squares (no network needed): implement [`LeastSquares`] (residuals
//! and Jacobian) and call [`LevenbergMarquardt::minimize`] or [`GaussNewton::minimize`]; the
//! outcome is a [`Report`] with a [`Termination`] reason, costs, evaluation counts, the λ history
//! and a time split. [`test_problems`] holds the Moré–Garbow–Hillstrom problems for checking and
//! benchmarking solvers; [`check_jacobian`] compares an analytic Jacobian with finite differences.

mod cg;
mod dense;
mod gauss_newton_lsq;
mod gn_dual_cg;
mod gn_dual_cg_sharded;
mod gn_dual_on;
mod gn_step;
mod gn_step_dual;
mod least_squares;
mod levenberg_marquardt;
mod lm_linear;
mod lsq_common;
mod network_lm;
mod nystrom;
mod report;
mod spectral;
pub mod test_problems;

pub use crate::loss::{Loss, accuracy, loss_gradient, loss_value};
pub use cg::{CgOutcome, Preconditioner};
pub use gauss_newton_lsq::GaussNewton;
pub use gn_dual_cg_sharded::{ShardedCg, ShardedCgReport, dual_cg_step_sharded};
pub use gn_dual_on::{DualWorkspace, dual_step_on};
pub use gn_step::{Form, GaussNewtonStep, StepReport, StepStatus, gauss_newton_step};
pub use least_squares::{JacobianCheck, LeastSquares, check_jacobian};
pub use levenberg_marquardt::LevenbergMarquardt;
pub use network_lm::{NetworkLm, NetworkLmReport, NetworkTermination};
pub use nystrom::{NtkNystrom, Sampling};
pub use report::{IterationInfo, Report, Termination, Timings};
pub use spectral::{Filter, SpectralCache, gradient_descent_closed_form};
