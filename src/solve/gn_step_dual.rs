//! The builder options and entry points of [`GaussNewtonStep`] for the matrix-free dual CG
//! step: forcing the dual system, the Nyström seed, reusing one Nyström factor, and the step
//! at given outputs (the linearised model away from its linearisation point).

use super::gn_dual_cg::dual_cg_step;
use super::gn_step::{GaussNewtonStep, StepReport, StepStatus};
use super::nystrom::NtkNystrom;
use crate::{Model, Real};
use faer::{Mat, MatRef};

impl GaussNewtonStep {
    /// With [`Form::Cg`](super::Form::Cg)(super::Form::Cg): solve the dual system `(HΘ + NλI) α = g` by CG even without a
    /// Nyström-type preconditioner (those always use it). Default `false`.
    pub fn with_cg_dual(mut self, dual: bool) -> Self {
        self.cg_dual = dual;
        self
    }
    /// Seed of the uniform column sample of [`Preconditioner::Nystrom`](super::Preconditioner::Nystrom) (default 0).
    pub fn with_nystrom_seed(mut self, seed: u64) -> Self {
        self.nystrom_seed = seed;
        self
    }
    /// Whether [`Form::Cg`](super::Form::Cg) solves the dual system (see [`with_cg_dual`](Self::with_cg_dual)).
    pub fn cg_is_dual(&self) -> bool {
        self.cg_dual || self.cg.preconditioner.nystrom_rank().is_some()
    }
    /// As [`solve`](Self::solve), reusing a Nyström approximation of the kernel at this θ
    /// on this `X` for [`Form::Cg`](super::Form::Cg)'s dual system (built once per linearisation, it serves
    /// every damping `λ`; the configured preconditioner's rank is then ignored, and the dual
    /// system is solved whatever the preconditioner).
    ///
    /// # Panics
    /// As [`solve`](Self::solve), or if the approximation is not `N·C` square.
    #[track_caller]
    pub fn solve_with_nystrom<T: Real, M: Model<T> + ?Sized>(
        &self,
        model: &M,
        theta: &[T],
        x: MatRef<'_, T>,
        y: MatRef<'_, T>,
        nystrom: &NtkNystrom,
    ) -> (Vec<T>, StepReport) {
        assert_eq!(
            nystrom.dim(),
            x.nrows() * model.n_outputs(),
            "solve_with_nystrom: the approximation is of dimension {}, N·C = {}",
            nystrom.dim(),
            x.nrows() * model.n_outputs()
        );
        self.solve_impl(model, theta, x, y, None, Some(nystrom))
    }

    /// The step with `H` and `g` taken at the given outputs `f` (`N × C`) instead of at
    /// `f(X; θ)`: the Gauss-Newton step of the linearised model `f_lin` at `θ̃ = θ`, whose
    /// outputs are `f` (cross-entropy away from the linearisation point).
    pub(crate) fn solve_at_outputs<T: Real, M: Model<T> + ?Sized>(
        &self,
        model: &M,
        theta: &[T],
        x: MatRef<'_, T>,
        y: MatRef<'_, T>,
        f: MatRef<'_, T>,
        nystrom: Option<&NtkNystrom>,
    ) -> (Vec<T>, StepReport) {
        self.solve_impl(model, theta, x, y, Some(f), nystrom)
    }

    /// The dual CG step (`g` sample-major with the softmax outputs for cross-entropy),
    /// its outcome and times written into `report`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn dual_cg<T: Real, M: Model<T> + ?Sized>(
        &self,
        model: &M,
        theta: &[T],
        x: MatRef<'_, T>,
        (g, probs): (&[T], Option<&Mat<T>>),
        shift: f64,
        nystrom: Option<&NtkNystrom>,
        report: &mut StepReport,
    ) -> Option<Vec<T>> {
        let r = dual_cg_step(
            model,
            theta,
            x,
            g,
            probs,
            shift,
            &self.cg,
            nystrom,
            self.nystrom_seed,
        );
        report.seconds_assemble = r.seconds_assemble;
        report.seconds_solve = r.seconds_solve;
        report.seconds_map_back = r.seconds_map_back;
        if r.outcome.is_some_and(|o| !o.converged) {
            report.status = StepStatus::NotConverged;
        }
        report.cg = r.outcome;
        r.delta
    }
}
