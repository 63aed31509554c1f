//! Dense f64 oracles built only from the explicit Jacobian with plain loops: the damped
//! Gauss-Newton normal equations, Gaussian elimination, and `J v`, `Jᵀ u`, `J Jᵀ`. They use
//! none of the crate's kernels or factorisations, so a bug there cannot hide in the oracle.

use faer::MatRef;
use itlin::solve::Loss;
use itlin::{Jacobian, Mlp, Model};

/// Dense reference for one damped GN step: `(JᵀHJ + NλI) δ = −Jᵀg`, assembled by
/// [`gn_system`] and solved by Gaussian elimination in f64.
pub fn gn_reference(
    mlp: &Mlp,
    theta: &[f64],
    x: MatRef<'_, f64>,
    y: MatRef<'_, f64>,
    loss: Loss,
    lambda: f64,
) -> Vec<f64> {
    gauss_solve(gn_system(mlp, theta, x, y, loss, lambda))
}

/// The damped GN normal equations as augmented rows `[JᵀHJ + NλI | −Jᵀg]` (`P × (P+1)`),
/// assembled entry by entry from the explicit `J` (`H_n = I` for MSE,
/// `diag(p_n) − p_n p_nᵀ` for softmax cross-entropy).
pub fn gn_system(
    mlp: &Mlp,
    theta: &[f64],
    x: MatRef<'_, f64>,
    y: MatRef<'_, f64>,
    loss: Loss,
    lambda: f64,
) -> Vec<Vec<f64>> {
    let j = mlp.jacobian(theta, x);
    let (n, c, p) = (x.nrows(), y.ncols(), theta.len());
    let f = mlp.forward(theta, x);
    let g = itlin::loss::output_residual(loss, f.as_ref(), y);
    let pr = itlin::loss::softmax(f.as_ref());
    let mut a = vec![vec![0.0; p + 1]; p];
    for s in 0..n {
        // H_s
        let h = |u: usize, v: usize| match loss {
            Loss::Mse => f64::from(u8::from(u == v)),
            Loss::CrossEntropy => {
                pr[(s, u)] * f64::from(u8::from(u == v)) - pr[(s, u)] * pr[(s, v)]
            }
        };
        for u in 0..c {
            for v in 0..c {
                let huv = h(u, v);
                if huv == 0.0 {
                    continue;
                }
                let (ru, rv) = (j.row(s * c + u), j.row(s * c + v));
                for (a_row, &jp) in a.iter_mut().zip(ru) {
                    for (aq, &jq) in a_row[..p].iter_mut().zip(rv) {
                        *aq += huv * jp * jq;
                    }
                }
            }
            let gu = g[(s, u)];
            for (a_row, &jp) in a.iter_mut().zip(j.row(s * c + u)) {
                a_row[p] -= jp * gu;
            }
        }
    }
    for (i, row) in a.iter_mut().enumerate() {
        row[i] += n as f64 * lambda;
    }
    a
}

/// Solves the square system whose augmented rows `[A | b]` are given, by Gaussian
/// elimination with partial pivoting.
pub fn gauss_solve(mut a: Vec<Vec<f64>>) -> Vec<f64> {
    let p = a.len();
    for k in 0..p {
        let piv = (k..p)
            .max_by(|&i, &j| a[i][k].abs().total_cmp(&a[j][k].abs()))
            .unwrap();
        a.swap(k, piv);
        let pivot_row = a[k].clone();
        for row in a.iter_mut().skip(k + 1) {
            let f = row[k] / pivot_row[k];
            for (v, &pv) in row[k..].iter_mut().zip(&pivot_row[k..]) {
                *v -= f * pv;
            }
        }
    }
    let mut x = vec![0.0; p];
    for k in (0..p).rev() {
        let s: f64 = (k + 1..p).map(|jj| a[k][jj] * x[jj]).sum();
        x[k] = (a[k][p] - s) / a[k][k];
    }
    x
}

/// `J v` by plain row loops.
pub fn jv_naive(j: &Jacobian<f64>, v: &[f64]) -> Vec<f64> {
    assert_eq!(v.len(), j.ncols());
    (0..j.nrows())
        .map(|i| j.row(i).iter().zip(v).map(|(a, b)| a * b).sum())
        .collect()
}

/// `Jᵀ u` by plain row loops.
pub fn jtu_naive(j: &Jacobian<f64>, u: &[f64]) -> Vec<f64> {
    assert_eq!(u.len(), j.nrows());
    let mut out = vec![0.0; j.ncols()];
    for (i, &ui) in u.iter().enumerate() {
        for (o, &jv) in out.iter_mut().zip(j.row(i)) {
            *o += ui * jv;
        }
    }
    out
}

/// `J₁ J₂ᵀ`, column-major (as [`mat_to_vec`](super::mat_to_vec) lays out a faer matrix).
pub fn j_jt_naive(j1: &Jacobian<f64>, j2: &Jacobian<f64>) -> Vec<f64> {
    let (m1, m2) = (j1.nrows(), j2.nrows());
    let mut out = vec![0.0; m1 * m2];
    for b in 0..m2 {
        for a in 0..m1 {
            out[b * m1 + a] = j1.row(a).iter().zip(j2.row(b)).map(|(x, y)| x * y).sum();
        }
    }
    out
}
