//! A low-rank approximation of the empirical NTK from a few of its columns, and the
//! preconditioner it gives for the damped dual Gauss-Newton system.
//!
//! # The approximation
//!
//! For a set `S` of kernel columns (all `C` outputs of a few training samples), the
//! Nyström approximation is `Θ̂ = Θ[:, S] Θ[S, S]⁻¹ Θ[S, :]`. It is computed as a partial
//! Cholesky factorisation `Θ̂ = F Fᵀ` (`F` is `(N·C) × r`): each column `j ∈ S` in turn,
//! less the part the earlier factors explain, `c = Θ[:, j] − F F[j, :]ᵀ`, is scaled by the
//! square root of its pivot, `f = c / √c_j`; columns whose pivot is below `N·C·ε·max_i Θ_ii`
//! (already explained) are skipped. `Θ − Θ̂` is the Schur complement, so `0 ⪯ Θ̂ ⪯ Θ`. A thin
//! SVD `F = U Σ Vᵀ` then gives `Θ̂ = U Λ Uᵀ` with `Λ = Σ²` (descending) and orthonormal `U`.
//!
//! The columns are chosen either uniformly (a seeded sample of training rows) or greedily
//! (pivoted Cholesky: repeatedly the samples with the largest residual diagonal
//! `Θ_ii − (F Fᵀ)_ii`). Either way the model computes only `Θ[:, S]`
//! ([`Model::ntk_columns`]) and, for the greedy rule, `diag Θ` ([`Model::ntk_diagonal`]):
//! `(N·C) × r` numbers, never `(N·C)²`.
//!
//! # The preconditioner
//!
//! For the SPD system `(K + μI) α = b` with `K ≈ U Λ Uᵀ` (rank `r`), Frangella, Tropp & Udell
//! (*Randomized Nyström preconditioning*, SIAM J. Matrix Anal. Appl. 2023) use
//!
//! ```text
//! P⁻¹ = (λ_r + μ) U (Λ + μI)⁻¹ Uᵀ + (I − U Uᵀ)
//! ```
//!
//! (`λ_r` the smallest retained eigenvalue): on the range of `U` it inverts `K̂ + μI`, and on
//! its complement it scales by `1/(λ_r + μ)` times the same constant, treating the unresolved
//! eigenvalues as about `λ_r`. The preconditioned matrix then has condition number about
//! `(λ_{r+1} + μ)/μ` instead of `(λ_1 + μ)/μ`. When every column was examined (`r` covers
//! all `N·C`), the complement is the null space of `K` and `λ_r` is replaced by 0, so that
//! `P⁻¹ = (K + μI)⁻¹` up to a constant and CG ends in one iteration. The factor does not
//! depend on `μ`: one factorisation per linearisation serves every damping and every step
//! at the same `θ̃` (MSE).
//!
//! For cross-entropy the dual system is written symmetric as `(LᵀΘL + μI) β = ·` with
//! `H = L Lᵀ` (see [`Form::Cg`](super::Form::Cg)); its approximation `Lᵀ Θ̂ L = Z Zᵀ`,
//! `Z = Lᵀ U Λ^{1/2}`, is re-diagonalised by a thin SVD of `Z` (`(N·C) r²` flops, per
//! step, since `H` changes with the outputs).

use super::cg::Preconditioner;
use crate::kernels::cpu::CpuKernels;
use crate::linalg::par;
use crate::{Model, Real};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use std::borrow::Cow;

/// How the kernel columns of a [`NtkNystrom`] are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sampling {
    /// Training samples drawn uniformly without replacement from a ChaCha8 stream seeded
    /// with `seed`.
    Uniform {
        /// Seed of the draw.
        seed: u64,
    },
    /// Greedy pivoted Cholesky on the kernel diagonal (deterministic; ties to the lower
    /// index).
    Greedy,
}

/// An orthonormal `U` (`m × r`) and eigenvalues `Λ` (descending, `≥ 0`): `K̂ = U Λ Uᵀ`.
#[derive(Clone, Debug)]
pub(crate) struct EigenFactor {
    u: Mat<f64>,
    lambda: Vec<f64>,
    /// Whether `U` spans everything `K` has (every column was examined): the complement
    /// is then `K`'s null space.
    complete: bool,
}

/// A rank-`r` Nyström approximation of the empirical NTK at one `θ`,
/// `Θ ≈ Θ̂ = U Λ Uᵀ`, and the preconditioner it gives for `(Θ + μI)` (or, for
/// cross-entropy, `(LᵀΘL + μI)`) at any damping `μ = Nλ`.
///
/// From the kernel columns `Θ[:, S]` of a few samples (all `C` outputs each;
/// [`Model::ntk_columns`]), `Θ̂ = Θ[:, S] Θ[S, S]⁻¹ Θ[S, :]` is computed as a partial
/// Cholesky factor `Θ̂ = F Fᵀ` (each column less what the earlier factors explain, scaled by
/// the square root of its pivot; pivots below `N·C·ε·max Θ_ii` skipped), so `0 ⪯ Θ̂ ⪯ Θ`,
/// then a thin SVD `F = U Σ Vᵀ`, `Λ = Σ²`. Samples are drawn uniformly
/// ([`Sampling::Uniform`]) or chosen greedily by the largest residual diagonal
/// `Θ_ii − (FFᵀ)_ii` ([`Sampling::Greedy`], pivoted Cholesky; needs
/// [`Model::ntk_diagonal`]). The preconditioner (Frangella, Tropp & Udell, *Randomized
/// Nyström preconditioning*, 2023) is
///
/// ```text
/// P⁻¹ = (λ_r + μ) U (Λ + μI)⁻¹ Uᵀ + (I − U Uᵀ)
/// ```
///
/// (`λ_r` the smallest retained eigenvalue, replaced by 0 when every sample was used, so that
/// then `P⁻¹ ∝ (Θ + μI)⁻¹`). It does not depend on `μ`: one factor per linearisation serves
/// every damping. `(N·C) × r` numbers are held, never `(N·C)²`.
///
/// ```
/// use itlin::{Mlp, Activation, Init};
/// use itlin::solve::{NtkNystrom, Sampling};
/// let mlp = Mlp::new(&[4, 16, 3], Activation::Tanh).unwrap();
/// let theta: Vec<f64> = mlp.init(Init::Standard, 0);
/// let x = faer::Mat::from_fn(20, 4, |i, j| ((i * 7 + j * 3) % 11) as f64 / 5.0 - 1.0);
/// let ny = NtkNystrom::new(&mlp, &theta, x.as_ref(), 12, Sampling::Uniform { seed: 1 });
/// assert!(ny.rank() <= 12);
/// assert!(ny.eigenvalues().windows(2).all(|w| w[0] >= w[1]));
/// ```
#[derive(Clone, Debug)]
pub struct NtkNystrom {
    eig: EigenFactor,
    samples: Vec<usize>,
    outputs: usize,
}

/// Samples per round of column evaluations (the columns of one round are one
/// [`Model::ntk_columns`] call).
fn round_size(samples: usize) -> usize {
    samples.div_ceil(8).max(1)
}

impl NtkNystrom {
    /// The approximation from `⌈rank / C⌉` training samples (at most `N`), chosen by
    /// `sampling`, at θ on `X`. Its rank is at most `C·⌈rank / C⌉` (columns the earlier
    /// ones already explain are skipped).
    ///
    /// # Panics
    /// If `θ` or `X` do not fit the model.
    #[track_caller]
    pub fn new<T: Real, M: Model<T> + ?Sized>(
        model: &M,
        theta: &[T],
        x: MatRef<'_, T>,
        rank: usize,
        sampling: Sampling,
    ) -> Self {
        let (n, c) = (x.nrows(), model.n_outputs());
        let m = n * c;
        let ns = rank.div_ceil(c.max(1)).min(n);
        let tol_scale = m as f64 * T::EPSILON.to_f64();
        let mut f = Mat::<f64>::zeros(m, ns * c);
        let mut k = 0;
        let mut chosen = Vec::with_capacity(ns);
        let bs = round_size(ns);
        match sampling {
            Sampling::Uniform { seed } => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let mut all = sample(&mut rng, n, ns).into_vec();
                all.sort_unstable();
                // the tolerance from the largest sampled diagonal entry (known after the
                // first round; later rounds only skip more)
                let mut dmax = 0.0f64;
                for block in all.chunks(bs) {
                    let y = model.ntk_columns(theta, x, block);
                    for (j, &s) in block.iter().enumerate() {
                        for kk in 0..c {
                            dmax = dmax.max(y[(s * c + kk, j * c + kk)].to_f64());
                        }
                    }
                    eliminate(&mut f, &mut k, y.as_ref(), block, c, tol_scale * dmax, None);
                    chosen.extend_from_slice(block);
                }
            }
            Sampling::Greedy => {
                let mut d: Vec<f64> = model
                    .ntk_diagonal(theta, x)
                    .iter()
                    .map(|v| v.to_f64())
                    .collect();
                let tol = tol_scale * d.iter().copied().fold(0.0, f64::max);
                let mut picked = vec![false; n];
                while chosen.len() < ns {
                    let want = bs.min(ns - chosen.len());
                    let mut cand: Vec<(f64, usize)> = (0..n)
                        .filter(|&s| !picked[s])
                        .map(|s| (d[s * c..(s + 1) * c].iter().sum::<f64>(), s))
                        .collect();
                    cand.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                    let mut block: Vec<usize> = cand
                        .iter()
                        .take(want)
                        .filter(|(score, _)| *score > tol)
                        .map(|&(_, s)| s)
                        .collect();
                    if block.is_empty() {
                        break; // everything is explained
                    }
                    block.sort_unstable();
                    block.iter().for_each(|&s| picked[s] = true);
                    let y = model.ntk_columns(theta, x, &block);
                    eliminate(&mut f, &mut k, y.as_ref(), &block, c, tol, Some(&mut d));
                    chosen.extend_from_slice(&block);
                }
            }
        }
        let complete = chosen.len() == n;
        chosen.sort_unstable();
        Self {
            eig: eigen_of_factor(f.as_ref().subcols(0, k), complete),
            samples: chosen,
            outputs: c,
        }
    }

    /// The approximation a [`Preconditioner::Nystrom`] (uniform, seeded with `seed`) or
    /// [`Preconditioner::PivotedCholesky`] asks for; `None` for the other preconditioners
    /// and for rank 0.
    ///
    /// # Panics
    /// If `θ` or `X` do not fit the model.
    #[track_caller]
    pub fn for_preconditioner<T: Real, M: Model<T> + ?Sized>(
        model: &M,
        theta: &[T],
        x: MatRef<'_, T>,
        preconditioner: Preconditioner,
        seed: u64,
    ) -> Option<Self> {
        let sampling = match preconditioner {
            Preconditioner::Nystrom { .. } => Sampling::Uniform { seed },
            Preconditioner::PivotedCholesky { .. } => Sampling::Greedy,
            _ => return None,
        };
        let rank = preconditioner.nystrom_rank().filter(|&r| r > 0)?;
        Some(Self::new(model, theta, x, rank, sampling))
    }

    /// Rank `r` of the approximation.
    pub fn rank(&self) -> usize {
        self.eig.lambda.len()
    }
    /// Kernel dimension `N·C`.
    pub fn dim(&self) -> usize {
        self.eig.u.nrows()
    }
    /// Outputs `C` per sample.
    pub fn outputs(&self) -> usize {
        self.outputs
    }
    /// `Λ`, descending.
    pub fn eigenvalues(&self) -> &[f64] {
        &self.eig.lambda
    }
    /// `U` (`(N·C) × r`, orthonormal columns).
    pub fn eigenvectors(&self) -> MatRef<'_, f64> {
        self.eig.u.as_ref()
    }
    /// The training samples whose columns were used (ascending).
    pub fn samples(&self) -> &[usize] {
        &self.samples
    }
    /// Bytes held (`U` and `Λ`).
    pub fn bytes(&self) -> u64 {
        8 * (self.eig.u.nrows() as u64 + 1) * self.eig.u.ncols() as u64
    }

    /// The factor of the system's kernel: `Θ̂` itself for MSE (`probs` `None`), else
    /// `Lᵀ Θ̂ L` re-diagonalised for the cross-entropy factor `L` of [`apply_lt`].
    pub(crate) fn system_factor<T: Real>(&self, probs: Option<&Mat<T>>) -> Cow<'_, EigenFactor> {
        let Some(pr) = probs else {
            return Cow::Borrowed(&self.eig);
        };
        let (m, r) = (self.eig.u.nrows(), self.eig.u.ncols());
        let c = self.outputs;
        let mut z = Mat::<f64>::zeros(m, r);
        let sqrt_p = sqrt_probs(pr);
        let mut col = vec![0.0; m];
        for j in 0..r {
            let s = self.eig.lambda[j].sqrt();
            for (i, v) in col.iter_mut().enumerate() {
                *v = self.eig.u[(i, j)] * s;
            }
            let out = apply_lt(&sqrt_p, pr, &col, c);
            for (i, v) in out.iter().enumerate() {
                z[(i, j)] = *v;
            }
        }
        Cow::Owned(eigen_of_factor(z.as_ref(), self.eig.complete))
    }
}

/// `√p` of each probability, in f64.
pub(crate) fn sqrt_probs<T: Real>(probs: &Mat<T>) -> Mat<f64> {
    Mat::from_fn(probs.nrows(), probs.ncols(), |i, j| {
        probs[(i, j)].to_f64().max(0.0).sqrt()
    })
}

/// `Lᵀ v` for the factor `H = L Lᵀ` of the cross-entropy output Hessian, per sample
/// `L_n = (I − p_n 1ᵀ) diag(√p_n)` (so `L_n L_nᵀ = diag(p_n) − p_n p_nᵀ` as `Σ p = 1`):
/// `(Lᵀ v)_n = √p_n ⊙ (v_n − (p_nᵀ v_n) 1)`.
pub(crate) fn apply_lt<T: Real>(
    sqrt_p: &Mat<f64>,
    probs: &Mat<T>,
    v: &[f64],
    c: usize,
) -> Vec<f64> {
    let mut out = vec![0.0; v.len()];
    for (n, (o, vi)) in out.chunks_exact_mut(c).zip(v.chunks_exact(c)).enumerate() {
        let pv: f64 = (0..c).map(|k| probs[(n, k)].to_f64() * vi[k]).sum();
        for k in 0..c {
            o[k] = sqrt_p[(n, k)] * (vi[k] - pv);
        }
    }
    out
}

/// `L v` for the same factor: `(L v)_n = w − p_n (1ᵀ w)`, `w = √p_n ⊙ v_n`.
pub(crate) fn apply_l<T: Real>(sqrt_p: &Mat<f64>, probs: &Mat<T>, v: &[f64], c: usize) -> Vec<f64> {
    let mut out = vec![0.0; v.len()];
    for (n, (o, vi)) in out.chunks_exact_mut(c).zip(v.chunks_exact(c)).enumerate() {
        let mut sw = 0.0;
        for k in 0..c {
            o[k] = sqrt_p[(n, k)] * vi[k];
            sw += o[k];
        }
        for k in 0..c {
            o[k] -= probs[(n, k)].to_f64() * sw;
        }
    }
    out
}

/// One round of partial Cholesky: the kernel columns `y` of the samples `block` (all `C`
/// outputs each) less what the `k` factors so far explain, then eliminated one by one,
/// skipping pivots `≤ tol`. Appends the new factors to `f` and, when given, takes their
/// squares off the residual diagonal `d`.
fn eliminate<T: Real>(
    f: &mut Mat<f64>,
    k: &mut usize,
    y: MatRef<'_, T>,
    block: &[usize],
    c: usize,
    tol: f64,
    mut d: Option<&mut Vec<f64>>,
) {
    let m = y.nrows();
    let w = y.ncols();
    let mut y = Mat::from_fn(m, w, |i, j| y[(i, j)].to_f64());
    let idx: Vec<usize> = block.iter().flat_map(|&s| (s * c)..(s * c + c)).collect();
    if *k > 0 {
        // y ← y − F F[idx, :]ᵀ
        let fk = f.as_ref().subcols(0, *k);
        let f_idx = Mat::from_fn(w, *k, |i, j| fk[(idx[i], j)]);
        matmul(
            y.as_mut(),
            Accum::Add,
            fk,
            f_idx.as_ref().transpose(),
            -1.0,
            par(),
        );
    }
    for jj in 0..w {
        let piv = y[(idx[jj], jj)];
        if piv.is_nan() || piv <= tol || *k >= f.ncols() {
            continue;
        }
        let s = piv.sqrt();
        for (fi, &yi) in f.col_as_slice_mut(*k).iter_mut().zip(y.col_as_slice(jj)) {
            *fi = yi / s;
        }
        let fk = f.col_as_slice(*k);
        for j2 in jj + 1..w {
            let a = fk[idx[j2]];
            if a != 0.0 {
                f64::axpy(-a, fk, y.col_as_slice_mut(j2));
            }
        }
        if let Some(d) = d.as_deref_mut() {
            for (di, &v) in d.iter_mut().zip(fk) {
                *di -= v * v;
            }
        }
        *k += 1;
    }
}

/// `F Fᵀ = U Λ Uᵀ` by a thin SVD of `F` (zero singular values dropped).
fn eigen_of_factor(f: MatRef<'_, f64>, complete: bool) -> EigenFactor {
    let (m, r) = (f.nrows(), f.ncols());
    if r == 0 || m == 0 {
        return EigenFactor {
            u: Mat::zeros(m, 0),
            lambda: Vec::new(),
            complete,
        };
    }
    let Ok(svd) = f.thin_svd() else {
        return EigenFactor {
            u: Mat::zeros(m, 0),
            lambda: Vec::new(),
            complete: false,
        };
    };
    let s = svd.S().column_vector();
    let keep = (0..r.min(m))
        .filter(|&i| s[i] > 0.0 && s[i].is_finite())
        .count();
    let u = svd.U().subcols(0, keep).to_owned();
    let lambda = (0..keep).map(|i| s[i] * s[i]).collect();
    EigenFactor {
        u,
        lambda,
        complete,
    }
}

impl EigenFactor {
    /// The largest eigenvalue of the approximation (0 when empty): `λ_1(K̂) ≤ ‖K‖₂`.
    pub(crate) fn top(&self) -> f64 {
        self.lambda.first().copied().unwrap_or(0.0)
    }

    /// `z ← P⁻¹ r` with `P⁻¹ = (λ_r + μ) U (Λ + μI)⁻¹ Uᵀ + (I − U Uᵀ)`, i.e.
    /// `z = r + U diag((λ_r + μ)/(λ_i + μ) − 1) Uᵀ r` (`λ_r → 0` when complete; for `μ = 0`
    /// with a complete factor the complement weight is `1/λ_r`).
    pub(crate) fn apply(&self, mu: f64, r: &[f64], z: &mut [f64]) {
        z.copy_from_slice(r);
        let k = self.lambda.len();
        if k == 0 {
            return;
        }
        let mut tail = if self.complete {
            0.0
        } else {
            self.lambda[k - 1]
        } + mu;
        if tail <= 0.0 {
            // μ = 0 with a complete factor: the null space has no curvature at all; any
            // positive weight keeps P SPD
            tail = self.lambda[k - 1];
        }
        let mut t = Mat::<f64>::zeros(k, 1);
        let rv = MatRef::from_column_major_slice(r, r.len(), 1);
        matmul(
            t.as_mut(),
            Accum::Replace,
            self.u.transpose(),
            rv,
            1.0,
            par(),
        );
        for (i, &l) in self.lambda.iter().enumerate() {
            let w = tail / (l + mu) - 1.0;
            t[(i, 0)] *= if w.is_finite() { w } else { 0.0 };
        }
        let zv = faer::MatMut::from_column_major_slice_mut(z, r.len(), 1);
        matmul(zv, Accum::Add, self.u.as_ref(), t.as_ref(), 1.0, par());
    }
}
