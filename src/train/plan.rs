//! What one Gauss-Newton or spectral inner step will cost, known before it is taken: the
//! linear system it factors, the bytes it holds and a flop count ([`inner_step_plan`]).

use super::config::{Inner, Period, TrainConfig};
use super::loss::Loss;
use crate::solve::{Form, GaussNewtonStep};
use crate::{Error, Real, Result};

/// The cost of one second-order inner step of a run (see [`inner_step_plan`]).
#[derive(Clone, Debug, PartialEq)]
pub struct StepPlan {
    /// Training rows per solve, `n = min(gn_batch, N)`.
    pub rows: usize,
    /// Dimension of the system factored (`n·C` for the dual and spectral forms, `P` for the
    /// primal one).
    pub dim: usize,
    /// How it is solved, e.g. `LU of the 15000×15000 dual system`.
    pub what: String,
    /// Bytes of the dense matrices the step holds at once (kernel or Gram matrix, its factor
    /// and, for the primal form, `J`).
    pub bytes: u64,
    /// Floating-point operations of the factorisation (for the primal form also of forming
    /// `JᵀJ`; for CG its iteration limit); forming a kernel comes on top.
    pub flops: f64,
    /// Dense bytes per `(n·C)²` entry pair, so that [`max_rows`](Self::max_rows) can say
    /// what fits (0 for the primal and CG forms, whose size does not grow as `n²`).
    per_entry: u64,
    /// Outputs `C`.
    outputs: usize,
}

impl StepPlan {
    /// The most rows per solve whose `(n·C)²` matrices fit in `budget` bytes (`None` for
    /// forms whose memory is not quadratic in `n`).
    pub fn max_rows(&self, budget: u64) -> Option<usize> {
        (self.per_entry > 0).then(|| {
            let m = ((budget / self.per_entry) as f64).sqrt().floor() as usize;
            m / self.outputs.max(1)
        })
    }

    /// Refuses the plan when it needs more than `budget` bytes, naming what it needs and how
    /// many rows per solve would fit.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`].
    pub fn check(&self, budget: u64) -> Result<()> {
        if self.bytes <= budget {
            return Ok(());
        }
        let hint = match self.max_rows(budget) {
            Some(0) => "no --gn-batch fits; raise the budget (ITLIN_MEMORY_BUDGET_MB)".to_string(),
            Some(r) => format!("lower --gn-batch (rows per solve) to at most {r}"),
            None => "lower the widths in --arch or --gn-batch".to_string(),
        };
        Err(Error::OutOfMemory {
            what: format!(
                "each inner step ({}, {} rows per solve)",
                self.what, self.rows
            ),
            needed: self.bytes,
            budget,
            hint,
        })
    }

    /// Whether a step is large enough to be worth a word before the run: more than 1 GiB or
    /// more than 1e11 flops (a few seconds on a desktop CPU).
    pub fn is_heavy(&self) -> bool {
        self.bytes > (1 << 30) || self.flops > 1e11
    }
}

/// The plan of one inner step of `cfg` on a training set of `n_train` rows for a model of
/// `n_outputs` outputs and `n_params` parameters in precision `T`; `None` for the
/// first-order inners. Gauss-Newton: the form [`Form::Auto`] picks (cross-entropy away from
/// `θ̃`: the LU of the linearised dual system); spectral: the eigendecomposition of the
/// `(n·C)²` kernel. Flops: `⅓d³` (Cholesky), `⅔d³` (LU), `4d³` (symmetric eigensolver), plus
/// `nC·P²` to form the primal Gram matrix.
pub fn inner_step_plan<T: Real>(
    cfg: &TrainConfig,
    n_train: usize,
    n_outputs: usize,
    n_params: usize,
) -> Option<StepPlan> {
    let n = cfg.gn_batch.map_or(n_train, |b| b.min(n_train));
    let (c, p) = (n_outputs, n_params);
    let m = n.saturating_mul(c);
    let s = size_of::<T>() as u64;
    let (m64, p64) = (m as u64, p as u64);
    let (mf, pf) = (m as f64, p as f64);
    let sq = |a: u64| a.saturating_mul(a);
    let plan = |dim, what: String, k: u64, extra: u64, flops| StepPlan {
        rows: n,
        dim,
        what,
        bytes: k
            .saturating_mul(s)
            .saturating_mul(sq(m64))
            .saturating_add(extra),
        flops,
        per_entry: k * s,
        outputs: c,
    };
    let dual = |k: u64, lu: bool| {
        let (name, f) = if lu {
            ("LU", 2.0 / 3.0)
        } else {
            ("Cholesky", 1.0 / 3.0)
        };
        plan(
            m,
            format!("{name} of the {m}×{m} dual system"),
            k,
            0,
            f * mf.powi(3),
        )
    };
    match cfg.inner {
        Inner::Spectral { .. } => Some(plan(
            m,
            format!("eigendecomposition of the {m}×{m} kernel"),
            3,
            0,
            4.0 * mf.powi(3),
        )),
        Inner::GaussNewton { .. } => {
            let gn = GaussNewtonStep::new(cfg.loss)
                .with_form(cfg.gn_solver.form)
                .with_cg_preconditioner(cfg.gn_solver.preconditioner);
            let form = gn.resolve_form::<T>(n, c, p);
            let dual_cg = form == Form::Cg && gn.cg_is_dual();
            let at_tilde = match form {
                Form::Cg if dual_cg => {
                    // the factor (F, one round of columns, U) in f64, the NTK columns of a
                    // round in T, and CG's few N·C vectors; no (n·C)² matrix
                    let r = cfg
                        .gn_solver
                        .preconditioner
                        .nystrom_rank()
                        .unwrap_or(0)
                        .div_ceil(c.max(1))
                        .min(n)
                        * c;
                    let r64 = r as u64;
                    StepPlan {
                        rows: n,
                        dim: m,
                        what: if r > 0 {
                            format!(
                                "matrix-free preconditioned CG on the {m}×{m} dual system (Nyström rank {r})"
                            )
                        } else {
                            format!("matrix-free CG on the {m}×{m} dual system")
                        },
                        bytes: m64
                            .saturating_mul(r64)
                            .saturating_mul(2 * 8 + s)
                            .saturating_add(m64.saturating_mul(16 * 8)),
                        flops: 500.0 * 4.0 * mf * pf + 2.0 * mf * (r as f64).powi(2),
                        per_entry: 0,
                        outputs: c,
                    }
                }
                Form::Primal => StepPlan {
                    rows: n,
                    dim: p,
                    what: format!("Cholesky of the {p}×{p} primal system"),
                    bytes: s
                        .saturating_mul(m64.saturating_mul(p64))
                        .saturating_add(2u64.saturating_mul(s).saturating_mul(sq(p64))),
                    flops: pf.powi(3) / 3.0 + mf * pf * pf,
                    per_entry: 0,
                    outputs: c,
                },
                Form::Cg => StepPlan {
                    rows: n,
                    dim: p,
                    what: format!("conjugate gradients on the {p}×{p} system"),
                    bytes: 0,
                    flops: 500.0 * 4.0 * mf * pf,
                    per_entry: 0,
                    outputs: c,
                },
                _ => dual(
                    if cfg.loss == Loss::CrossEntropy { 3 } else { 2 },
                    cfg.loss == Loss::CrossEntropy,
                ),
            };
            // cross-entropy away from θ̃ solves the linearised dual system by LU (K > 1)
            // (the matrix-free dual CG step solves it in place)
            let off_tilde =
                cfg.loss == Loss::CrossEntropy && cfg.period != Period::Steps(1) && !dual_cg;
            Some(if off_tilde {
                let lin = dual(3, true);
                if lin.bytes >= at_tilde.bytes {
                    lin
                } else {
                    at_tilde
                }
            } else {
                at_tilde
            })
        }
        Inner::Sgd { .. } | Inner::Adam { .. } => None,
    }
}
