//! Preconditioned conjugate gradients for the SPD Gauss-Newton system, matrix-free.

use crate::Real;

/// CG settings (see [`GaussNewtonStep`](super::GaussNewtonStep)'s builder).
#[derive(Clone, Debug)]
pub(crate) struct CgConfig {
    /// Stop when `‖b − A x‖ ≤ rtol ‖b‖` (`None`: 1e-10 for f64, 1e-5 for f32).
    pub rtol: Option<f64>,
    /// Iteration limit.
    pub max_iterations: usize,
    /// Martens' relative-progress test on the quadratic `φ(x) = ½xᵀAx − bᵀx`: stop when
    /// `(φ_i − φ_{i−k}) / φ_i < k ε` with `k = max(10, i/10)`; `None` disables it.
    pub progress_tol: Option<f64>,
}

impl Default for CgConfig {
    fn default() -> Self {
        Self {
            rtol: None,
            max_iterations: 500,
            progress_tol: None,
        }
    }
}

/// How a CG solve ended.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CgOutcome {
    /// Iterations (operator applications after the initial residual).
    pub iterations: usize,
    /// Final `‖b − A x‖ / ‖b‖` (recurrence residual).
    pub relative_residual: f64,
    /// Whether the tolerance (or the progress test) was met.
    pub converged: bool,
}

fn norm<T: Real>(v: &[T]) -> f64 {
    T::dot(v, v).to_f64().sqrt()
}

/// Solves `A x = b` for SPD `A` given as `op(v, out)` (`out ← A v`), with an optional
/// diagonal preconditioner given as the *inverse* diagonal and an optional warm start.
pub(crate) fn conjugate_gradient<T: Real>(
    mut op: impl FnMut(&[T], &mut [T]),
    b: &[T],
    inv_diag: Option<&[T]>,
    x0: Option<&[T]>,
    cfg: &CgConfig,
) -> (Vec<T>, CgOutcome) {
    let n = b.len();
    let rtol = cfg.rtol.unwrap_or(if T::EPSILON.to_f64() < 1e-10 {
        1e-10
    } else {
        1e-5
    });
    let bnorm = norm(b);
    let mut x = x0.map_or_else(|| vec![T::zero_impl(); n], <[T]>::to_vec);
    let mut ap = vec![T::zero_impl(); n];
    // r = b − A x
    let mut r = b.to_vec();
    if x0.is_some() {
        op(&x, &mut ap);
        T::axpy(-T::one_impl(), &ap, &mut r);
    }
    if bnorm == 0.0 {
        return (
            vec![T::zero_impl(); n],
            CgOutcome {
                iterations: 0,
                relative_residual: 0.0,
                converged: true,
            },
        );
    }
    let precondition = |r: &[T], z: &mut [T]| match inv_diag {
        Some(d) => z
            .iter_mut()
            .zip(r.iter().zip(d))
            .for_each(|(zi, (&ri, &di))| *zi = ri * di),
        None => z.copy_from_slice(r),
    };
    let mut z = vec![T::zero_impl(); n];
    precondition(&r, &mut z);
    let mut p = z.clone();
    let mut rz = T::dot(&r, &z).to_f64();
    let mut phis: Vec<f64> = Vec::new();
    let mut rel = norm(&r) / bnorm;
    let mut it = 0;
    while it < cfg.max_iterations && rel > rtol {
        op(&p, &mut ap);
        let pap = T::dot(&p, &ap).to_f64();
        if pap.is_nan() || pap <= 0.0 || !pap.is_finite() {
            break; // A is not SPD along p (or not finite): keep the current iterate
        }
        let alpha = rz / pap;
        T::axpy(T::from_f64(alpha), &p, &mut x);
        T::axpy(T::from_f64(-alpha), &ap, &mut r);
        it += 1;
        rel = norm(&r) / bnorm;
        if let Some(eps) = cfg.progress_tol {
            // φ(x) = −½ xᵀ(b + r)
            let phi = -0.5 * (T::dot(&x, b).to_f64() + T::dot(&x, &r).to_f64());
            phis.push(phi);
            let k = 10usize.max(it / 10);
            if it > k && phi < 0.0 && (phi - phis[it - 1 - k]) / phi < k as f64 * eps {
                return (
                    x,
                    CgOutcome {
                        iterations: it,
                        relative_residual: rel,
                        converged: true,
                    },
                );
            }
        }
        precondition(&r, &mut z);
        let rz_new = T::dot(&r, &z).to_f64();
        let beta = rz_new / rz;
        rz = rz_new;
        for (pi, &zi) in p.iter_mut().zip(&z) {
            *pi = zi + T::from_f64(beta) * *pi;
        }
    }
    (
        x,
        CgOutcome {
            iterations: it,
            relative_residual: rel,
            converged: rel <= rtol,
        },
    )
}
