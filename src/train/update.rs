//! The fused first-order update: finiteness check of the gradient, weight decay and the
//! optimiser step in one pass over θ, with double-buffered θ and optimiser state so that a
//! failed update needs no backup copy.

use super::config::Inner;
use super::optim::OptState;
use crate::Real;

/// Entries per chunk of the fused pass (small enough to stay in L1 between its sub-steps).
const CHUNK: usize = 2048;

/// The spare buffers of the double-buffered update (swapped with θ and the optimiser state
/// when an update is kept). They only grow.
#[derive(Clone, Debug, Default)]
pub(crate) struct Spare<T> {
    theta: Vec<T>,
    m: Vec<T>,
    v: Vec<T>,
}

fn all_finite<T: Real>(x: &[T]) -> bool {
    x.iter().fold(true, |ok, v| ok & v.is_finite())
}

fn first_non_finite<T: Real>(x: &[T]) -> f64 {
    x.iter()
        .find(|v| !v.is_finite())
        .map_or(f64::NAN, |v| v.to_f64())
}

/// One first-order update, exactly as the unfused sequence
///
/// 1. if some `gᵢ` is not finite: nothing changes; returns `("batch gradient", gᵢ)` (the
///    first such entry);
/// 2. `g ← g + wd·θ` when `wd > 0` ([`axpy`](crate::kernels::cpu::CpuKernels::axpy));
/// 3. [`OptState::update`] with step size `lr` on `θ`;
/// 4. if some `θᵢ` is now not finite: θ goes back to its value before the update (the
///    optimiser state keeps the update, as in the unfused form) and returns
///    `("θ after the update", θᵢ)`,
///
/// computed chunk by chunk in one pass (each entry by the same operations in the same order,
/// so the results are bit-identical). `grad` is overwritten. The new θ and optimiser state
/// are written into `spare` and swapped in, so nothing is copied back on failure.
pub(crate) fn fused_update<T: Real>(
    inner: &Inner,
    lr: f64,
    wd: f64,
    theta: &mut Vec<T>,
    grad: &mut [T],
    opt: &mut OptState<T>,
    spare: &mut Spare<T>,
) -> Option<(&'static str, f64)> {
    let p = theta.len();
    assert_eq!(grad.len(), p, "fused_update: gradient and θ lengths differ");
    let zero = T::zero_impl();
    let (with_m, with_v) = match *inner {
        Inner::Sgd { momentum, .. } => (momentum != 0.0, false),
        Inner::Adam { .. } => (true, true),
        Inner::GaussNewton { .. } | Inner::Spectral { .. } => return None,
    };
    spare.theta.resize(p, zero);
    if with_m {
        spare.m.resize(p, zero);
    }
    if with_v {
        spare.v.resize(p, zero);
    }
    // the optimiser state is zero before its first use (OptState::update allocates it so)
    let fresh_m = opt.m.len() != p;
    let fresh_v = opt.v.len() != p;
    let wd_t = T::from_f64(wd);
    let eta = T::from_f64(lr);
    let t_next = opt.t + 1;
    let adam = match *inner {
        Inner::Adam {
            beta1, beta2, eps, ..
        } => {
            let t = t_next as i32;
            let bc1 = 1.0 - beta1.powi(t);
            let bc2 = 1.0 - beta2.powi(t);
            Some((
                T::from_f64(beta1),
                T::from_f64(beta2),
                T::from_f64(1.0 - beta1),
                T::from_f64(1.0 - beta2),
                T::from_f64(lr / bc1),
                T::from_f64(1.0 / bc2),
                T::from_f64(eps),
            ))
        }
        _ => None,
    };
    let mut theta_ok = true;
    let mut start = 0;
    while start < p {
        let end = (start + CHUNK).min(p);
        let g = &mut grad[start..end];
        if !all_finite(g) {
            return Some(("batch gradient", first_non_finite(g)));
        }
        let th = &theta[start..end];
        if wd > 0.0 {
            T::axpy(wd_t, th, g);
        }
        let th_new = &mut spare.theta[start..end];
        match *inner {
            Inner::Sgd {
                momentum, nesterov, ..
            } => {
                if momentum == 0.0 {
                    th_new.copy_from_slice(th);
                    T::axpy(-eta, g, th_new);
                } else {
                    let mu = T::from_f64(momentum);
                    let m_new = &mut spare.m[start..end];
                    let m_old = (!fresh_m).then(|| &opt.m[start..end]);
                    momentum_chunk(mu, eta, nesterov, th, g, m_old, th_new, m_new);
                }
            }
            Inner::Adam { .. } => {
                let (b1, b2, one_b1, one_b2, step, inv_bc2, e) = adam.expect("Adam constants");
                let m_new = &mut spare.m[start..end];
                let v_new = &mut spare.v[start..end];
                let adam_at = |i: usize, m_old: T, v_old: T| {
                    let gi = g[i];
                    let mi = b1 * m_old + one_b1 * gi;
                    let vi = b2 * v_old + one_b2 * gi * gi;
                    let denom = (vi * inv_bc2).sqrt() + e;
                    (mi, vi, th[i] - step * mi / denom)
                };
                for i in 0..end - start {
                    let (m_old, v_old) = if fresh_m || fresh_v {
                        (zero, zero)
                    } else {
                        (opt.m[start + i], opt.v[start + i])
                    };
                    let (mi, vi, t) = adam_at(i, m_old, v_old);
                    m_new[i] = mi;
                    v_new[i] = vi;
                    th_new[i] = t;
                }
            }
            Inner::GaussNewton { .. } | Inner::Spectral { .. } => unreachable!(),
        }
        theta_ok &= all_finite(th_new);
        start = end;
    }
    // the update was taken: the optimiser state moves on
    opt.t = t_next;
    // (a fresh state gets a full-length buffer first, so the spare one keeps its length)
    if with_m {
        if fresh_m {
            opt.m.resize(p, zero);
        }
        std::mem::swap(&mut opt.m, &mut spare.m);
    }
    if with_v {
        if fresh_v {
            opt.v.resize(p, zero);
        }
        std::mem::swap(&mut opt.v, &mut spare.v);
    }
    if theta_ok {
        std::mem::swap(theta, &mut spare.theta);
        None
    } else {
        Some(("θ after the update", first_non_finite(&spare.theta)))
    }
}

/// `v ← μ v + g`, `θ ← θ − η (g + μ v)` (Nesterov) or `θ − η v`, on one chunk; `m_old` is
/// `None` for a velocity still zero (its first use). The operations of
/// [`OptState::update`], written over slices so that the compiler vectorises them.
#[allow(clippy::too_many_arguments)]
#[inline]
fn momentum_chunk<T: Real>(
    mu: T,
    eta: T,
    nesterov: bool,
    th: &[T],
    g: &[T],
    m_old: Option<&[T]>,
    th_new: &mut [T],
    m_new: &mut [T],
) {
    let zero = T::zero_impl();
    let step = |t: T, gi: T, mo: T| {
        let vi = mu * mo + gi;
        let d = if nesterov { gi + mu * vi } else { vi };
        (vi, t - eta * d)
    };
    match m_old {
        Some(m_old) => {
            for ((((&t, &gi), &mo), tn), mn) in th.iter().zip(g).zip(m_old).zip(th_new).zip(m_new) {
                (*mn, *tn) = step(t, gi, mo);
            }
        }
        None => {
            for (((&t, &gi), tn), mn) in th.iter().zip(g).zip(th_new).zip(m_new) {
                (*mn, *tn) = step(t, gi, zero);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unfused sequence the fused update replaces (the trainer's former step).
    fn unfused(
        inner: &Inner,
        lr: f64,
        wd: f64,
        theta: &mut [f64],
        grad: &[f64],
        opt: &mut OptState<f64>,
    ) -> Option<(&'static str, f64)> {
        let mut g = grad.to_vec();
        if let Some(v) = g.iter().find(|v| !v.is_finite()) {
            return Some(("batch gradient", *v));
        }
        if wd > 0.0 {
            <f64 as crate::kernels::cpu::CpuKernels>::axpy(wd, theta, &mut g);
        }
        let backup = theta.to_vec();
        opt.update(inner, lr, theta, &g);
        if let Some(v) = theta.iter().find(|v| !v.is_finite()).copied() {
            theta.copy_from_slice(&backup);
            return Some(("θ after the update", v));
        }
        None
    }

    fn same(a: Option<(&str, f64)>, b: Option<(&str, f64)>) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some((qa, va)), Some((qb, vb))) => qa == qb && va.to_bits() == vb.to_bits(),
            _ => false,
        }
    }

    /// Bit for bit the unfused update over several steps (P spanning chunks), for every
    /// first-order optimiser, with and without weight decay, and on both failures.
    #[test]
    fn fused_update_is_the_unfused_sequence() {
        let p = 2 * CHUNK + 37;
        let inners = [
            Inner::sgd(0.1),
            Inner::Sgd {
                lr: 0.1,
                momentum: 0.9,
                nesterov: false,
            },
            Inner::Sgd {
                lr: 0.1,
                momentum: 0.8,
                nesterov: true,
            },
            Inner::Adam {
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.99,
                eps: 1e-8,
            },
        ];
        let mut failures = [0; 2];
        for inner in inners {
            for wd in [0.0, 1e-2] {
                let mut th_a: Vec<f64> = (0..p)
                    .map(|i| ((i * 37) % 101) as f64 / 50.0 - 1.0)
                    .collect();
                let mut th_b = th_a.clone();
                let (mut oa, mut ob) = (OptState::default(), OptState::default());
                let mut spare = Spare::default();
                for step in 0..6 {
                    let mut g: Vec<f64> = (0..p)
                        .map(|i| (((i + step * 13) * 29) % 97) as f64 / 40.0 - 1.2)
                        .collect();
                    if step == 3 {
                        g[CHUNK + 5] = f64::NAN; // a bad gradient: nothing changes
                    }
                    if step == 4 {
                        g[2 * CHUNK + 1] = 1e308; // θ overflows: θ restored, state moves on
                        th_a[2 * CHUNK + 1] = -1.7e308;
                        th_b[2 * CHUNK + 1] = -1.7e308;
                    }
                    let ra = unfused(&inner, 0.5, wd, &mut th_a, &g, &mut oa);
                    let rb = fused_update(&inner, 0.5, wd, &mut th_b, &mut g, &mut ob, &mut spare);
                    assert!(same(ra, rb), "{inner:?} step {step}: {ra:?} vs {rb:?}");
                    match rb {
                        Some(("batch gradient", _)) => failures[0] += 1,
                        Some(_) => failures[1] += 1,
                        None => {}
                    }
                    assert_eq!(th_a, th_b, "{inner:?} wd={wd} step {step}: θ");
                    assert_eq!(oa, ob, "{inner:?} wd={wd} step {step}: optimiser state");
                }
            }
        }
        // both failure paths were taken: every run's bad gradient, and overflows of θ
        assert!(failures[0] == 8 && failures[1] >= 6, "{failures:?}");
    }
}
