//! The damped dual Gauss-Newton step by preconditioned CG over sharded rows
//! ([`dual_cg_step_sharded`]) against a dense f64 reference (`J` explicit,
//! `(J Jᵀ + μI) α = g` by Cholesky, `δ = −Jᵀα`), on 1 rank and on 2, 3 and 4 ranks as
//! threads: the same δ (f64 to 1e-10 relative), the same δ bits on every rank, the
//! preconditioner cutting the CG iterations, and a rank that leaves failing the others.

mod common;

use common::{rand_mat, rand_vec, rel_err, rng};
use faer::Mat;
use itlin::dist::{Comm, Shard, Solo, ThreadComm};
use itlin::linalg::{cholesky_in_place, cholesky_solve_in_place};
use itlin::solve::{ShardedCg, ShardedCgReport, dual_cg_step_sharded};
use itlin::{Activation, Error, Init, Mlp, Model};
use std::time::Duration;

struct Problem {
    mlp: Mlp,
    theta: Vec<f64>,
    x: Mat<f64>,
    g: Vec<f64>,
    shift: f64,
}

fn problem(n: usize, lambda: f64) -> Problem {
    let mlp = Mlp::new(&[5, 24, 3], Activation::Tanh).unwrap();
    let theta = mlp.init::<f64>(Init::Standard, 11);
    let mut r = rng(5);
    let x = rand_mat::<f64>(&mut r, n, 5);
    let g = rand_vec::<f64>(&mut r, n * 3);
    Problem {
        mlp,
        theta,
        x,
        g,
        shift: n as f64 * lambda,
    }
}

/// δ = −Jᵀ (J Jᵀ + μI)⁻¹ g, dense, f64.
fn dense(p: &Problem) -> Vec<f64> {
    let j = p.mlp.jacobian(&p.theta, p.x.as_ref());
    let j = j.as_ref();
    let m = j.nrows();
    let mut a = j * j.transpose();
    for i in 0..m {
        a[(i, i)] += p.shift;
    }
    cholesky_in_place(a.as_mut()).unwrap();
    let mut alpha = Mat::from_fn(m, 1, |i, _| p.g[i]);
    cholesky_solve_in_place(a.as_ref(), alpha.as_mut());
    let d = j.transpose() * alpha;
    (0..d.nrows()).map(|i| -d[(i, 0)]).collect()
}

fn rank_step(
    p: &Problem,
    comm: &dyn Comm,
    opts: &ShardedCg,
) -> itlin::Result<(Vec<f64>, ShardedCgReport)> {
    let s = Shard::of(p.x.nrows(), comm.rank(), comm.size());
    let x = p.x.as_ref().subrows(s.offset, s.len);
    let g = &p.g[s.offset * 3..(s.offset + s.len) * 3];
    dual_cg_step_sharded(comm, &p.mlp, &p.theta, x, s, g, p.shift, opts)
}

fn threads(
    p: &Problem,
    size: usize,
    opts: &ShardedCg,
) -> Vec<itlin::Result<(Vec<f64>, ShardedCgReport)>> {
    let comms = ThreadComm::group(size, Duration::from_secs(60));
    std::thread::scope(|sc| {
        let hs: Vec<_> = comms
            .into_iter()
            .map(|c| sc.spawn(move || rank_step(p, &c, opts)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn one_rank_and_sharded_steps_equal_the_dense_step() {
    let p = problem(40, 1e-3);
    let want = dense(&p);
    for landmarks in [0, 30] {
        let opts = ShardedCg {
            landmarks,
            seed: 3,
            ..Default::default()
        };
        let (d1, rep1) = rank_step(&p, &Solo, &opts).unwrap();
        assert!(rep1.outcome.converged, "{rep1:?}");
        let e = rel_err(&d1, &want);
        assert!(e < 1e-10, "M {landmarks}, 1 rank: δ off by {e:e}");
        for size in [2, 3, 4] {
            let out: Vec<_> = threads(&p, size, &opts)
                .into_iter()
                .map(Result::unwrap)
                .collect();
            for (r, (d, rep)) in out.iter().enumerate() {
                assert_eq!(d, &out[0].0, "R {size}: rank {r}'s δ differs from rank 0's");
                assert_eq!(rep.outcome.iterations, out[0].1.outcome.iterations);
                assert_eq!(rep.preconditioner_rank, rep1.preconditioner_rank);
            }
            let e = rel_err(&out[0].0, &want);
            assert!(e < 1e-10, "M {landmarks}, R {size}: δ off by {e:e}");
        }
    }
}

#[test]
fn the_landmark_preconditioner_cuts_the_iterations() {
    // small damping: an ill-conditioned dual system
    let p = problem(60, 1e-6);
    let want = dense(&p);
    let plain = ShardedCg::default();
    let pre = ShardedCg {
        landmarks: 90,
        seed: 1,
        ..Default::default()
    };
    let (d0, r0) = &threads(&p, 2, &plain)[0].as_ref().unwrap().clone();
    let (d1, r1) = &threads(&p, 2, &pre)[0].as_ref().unwrap().clone();
    // κ(Θ + μI) is large here: both solves and the dense reference carry errors of about κε
    assert!(rel_err(d0, &want) < 1e-6, "{:e}", rel_err(d0, &want));
    assert!(rel_err(d1, &want) < 1e-6, "{:e}", rel_err(d1, &want));
    assert_eq!(r1.preconditioner_rank, 90);
    // at this small μ the Woodbury form of P⁻¹ (a difference scaled by 1/μ) stalls CG at a
    // backward error of about 1e-13 rather than 8ε: the step is still accurate
    assert!(r1.outcome.backward_error < 1e-11, "{r1:?}");
    assert!(
        !r0.outcome.converged && r0.outcome.iterations == 2000,
        "{r0:?}"
    );
    eprintln!(
        "iterations: plain {}, preconditioned {}",
        r0.outcome.iterations, r1.outcome.iterations
    );
    assert!(
        2 * r1.outcome.iterations < r0.outcome.iterations,
        "preconditioned {} vs plain {} iterations",
        r1.outcome.iterations,
        r0.outcome.iterations
    );
}

#[test]
fn a_planted_missing_sum_is_seen() {
    // rank 0's shard alone (a run that forgot to sum Jᵀv over ranks) is far from the step
    let p = problem(40, 1e-3);
    let want = dense(&p);
    let s = Shard::of(40, 0, 2);
    let x = p.x.as_ref().subrows(s.offset, s.len);
    let (d, _) = dual_cg_step_sharded(
        &Solo,
        &p.mlp,
        &p.theta,
        x,
        s,
        &p.g[..s.len * 3],
        p.shift,
        &ShardedCg::default(),
    )
    .unwrap();
    assert!(rel_err(&d, &want) > 1e-3);
}

#[test]
fn a_rank_that_leaves_fails_the_step() {
    let p = problem(40, 1e-3);
    let comms = ThreadComm::group(3, Duration::from_secs(60));
    let out: Vec<_> = std::thread::scope(|sc| {
        let hs: Vec<_> = comms
            .into_iter()
            .map(|c| {
                let p = &p;
                sc.spawn(move || {
                    if c.rank() == 1 {
                        return None;
                    }
                    Some(rank_step(
                        p,
                        &c,
                        &ShardedCg {
                            landmarks: 12,
                            ..Default::default()
                        },
                    ))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in [0, 2] {
        match &out[r] {
            Some(Err(Error::Comm(m))) => assert!(m.contains("left the group"), "{m}"),
            _ => panic!("rank {r}: expected a communication error"),
        }
    }
}

#[test]
fn bad_input_is_an_error() {
    let p = problem(10, 1e-3);
    let s = Shard::whole(10);
    let e = dual_cg_step_sharded(
        &Solo,
        &p.mlp,
        &p.theta,
        p.x.as_ref(),
        s,
        &p.g,
        0.0,
        &ShardedCg::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("positive damping"), "{e}");
    let e = dual_cg_step_sharded(
        &Solo,
        &p.mlp,
        &p.theta,
        p.x.as_ref(),
        s,
        &p.g[1..],
        1.0,
        &ShardedCg::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("right-hand-side"), "{e}");
}
