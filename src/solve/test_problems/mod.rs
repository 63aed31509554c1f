//! The Moré–Garbow–Hillstrom test problems for nonlinear least squares, with analytic
//! Jacobians, standard starting points and known minima.
//!
//! Source: J. J. Moré, B. S. Garbow, K. E. Hillstrom, *Testing unconstrained optimization
//! software*, ACM Trans. Math. Software 7(1):17–41, 1981 ("MGH"); problem numbers below are
//! the paper's. Data and Jacobians agree with MINPACK's test drivers (`ssqfcn`, `ssqjac`).
//!
//! Every problem is a [`TestProblem`], which implements [`LeastSquares<T>`] for `f32` and
//! `f64` (it computes in f64 and rounds). [`TestProblem::known_cost`] is MGH's `f*` halved,
//! because the solvers minimise `½‖r‖²` while the paper lists `‖r‖²`. Where the paper gives
//! other local minima they are in [`TestProblem::other_minima`].
//!
//! [`TestProblem::lmder`] holds what MINPACK's own Fortran `lmder1` (tolerance `√ε`, at most
//! `100 (n+1)` evaluations) reports on the same problem and start, as printed in the
//! reference output of MINPACK's `lmddrv` test driver (file `examples/ref/lmddrv.fortran.ref`
//! of the cminpack distribution); only problems in that driver have one.
//!
//! ```
//! use itlin::solve::{LevenbergMarquardt, test_problems};
//! for p in test_problems::all() {
//!     let mut theta = p.start();
//!     let report = LevenbergMarquardt::new().minimize(&p, &mut theta);
//!     println!("{:24} cost {:.6e} (known {:.6e}), {} evaluations",
//!              p.name(), report.cost, p.known_cost(), report.evaluations);
//! }
//! ```

mod catalogue;
mod fixed;
mod variable;

pub use catalogue::{all, by_name};

use super::least_squares::LeastSquares;
use crate::Real;
use faer::{Mat, MatMut};

type ResidualFn = fn(&[f64], &mut [f64]);
type JacobianFn = fn(&[f64], MatMut<'_, f64>);

/// What MINPACK's Fortran `lmder1` reports on a problem from its standard start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LmderReference {
    /// Residual evaluations (`nfev`).
    pub nfev: usize,
    /// Jacobian evaluations (`njev`).
    pub njev: usize,
    /// Exit parameter (`info`): 1 ftol, 2 xtol, 3 both, 4 gtol, 5 `maxfev` reached.
    pub info: u8,
    /// Final `‖r‖` (not squared, not halved).
    pub final_norm: f64,
}

/// One Moré–Garbow–Hillstrom problem at a fixed size (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct TestProblem {
    name: String,
    mgh: u8,
    n: usize,
    m: usize,
    start: Vec<f64>,
    known_f: f64,
    other_f: &'static [f64],
    lmder: Option<LmderReference>,
    residuals: ResidualFn,
    jacobian: JacobianFn,
}

impl TestProblem {
    /// Short name, unique in [`all`] (e.g. `"watson_n9"`).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Problem number in the MGH paper.
    pub fn mgh_number(&self) -> u8 {
        self.mgh
    }
    /// Standard starting point of the paper.
    pub fn start(&self) -> Vec<f64> {
        self.start.clone()
    }
    /// Standard start times `factor` (MINPACK's `initpt` convention: for Watson, whose
    /// standard start is 0, every entry is `factor` when `factor ≠ 1`).
    pub fn scaled_start(&self, factor: f64) -> Vec<f64> {
        if factor == 1.0 {
            self.start()
        } else if self.start.iter().all(|v| *v == 0.0) {
            vec![factor; self.n]
        } else {
            self.start.iter().map(|v| v * factor).collect()
        }
    }
    /// Standard start converted to `T`.
    pub fn start_as<T: Real>(&self) -> Vec<T> {
        self.start.iter().map(|v| T::from_f64(*v)).collect()
    }
    /// Known minimum of `½‖r‖²` (MGH's `f*` / 2); the global minimum where the paper gives it.
    pub fn known_cost(&self) -> f64 {
        self.known_f / 2.0
    }
    /// Costs `½‖r‖²` of other local minima (or limits at infinity) listed by the paper.
    pub fn other_minima(&self) -> Vec<f64> {
        self.other_f.iter().map(|f| f / 2.0).collect()
    }
    /// MINPACK `lmder1`'s result on this problem from the standard start, where known.
    pub fn lmder(&self) -> Option<LmderReference> {
        self.lmder
    }
}

impl<T: Real> LeastSquares<T> for TestProblem {
    fn n_params(&self) -> usize {
        self.n
    }
    fn n_residuals(&self) -> usize {
        self.m
    }
    fn residuals(&self, theta: &[T], r: &mut [T]) {
        let x: Vec<f64> = theta.iter().map(|v| v.to_f64()).collect();
        let mut out = vec![0.0; self.m];
        (self.residuals)(&x, &mut out);
        for (ri, o) in r.iter_mut().zip(&out) {
            *ri = T::from_f64(*o);
        }
    }
    fn jacobian(&self, theta: &[T], mut j: MatMut<'_, T>) {
        let x: Vec<f64> = theta.iter().map(|v| v.to_f64()).collect();
        let mut out = Mat::<f64>::zeros(self.m, self.n);
        (self.jacobian)(&x, out.as_mut());
        for k in 0..self.n {
            for i in 0..self.m {
                j[(i, k)] = T::from_f64(out[(i, k)]);
            }
        }
    }
}
