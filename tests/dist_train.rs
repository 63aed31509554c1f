//! Data-parallel training ([`Trainer::with_comm`]) with ranks as threads ([`ThreadComm`]):
//! `R` ranks, each holding a shard of the rows, train like one process with the same global
//! batches (θ to ~1e-12 relative in f64), every rank holds the same θ bit for bit, the metrics
//! are those of the whole data set, checkpoints and resumption work, and a rank that stops
//! makes the others fail with a communication error instead of hanging. The same code runs
//! between processes with `MpiComm` (tests/dist_mpi.rs).

mod common;

use common::{rand_mat, rel_err, rng};
use faer::{Mat, MatRef};
use itlin::dist::{Comm, Shard, ThreadComm};
use itlin::train::{
    DataRef, Inner, Loss, Metrics, OnEval, Period, Report, TrainConfig, Trainer, checkpoint,
};
use itlin::{Activation, Error, Init, Mlp, Real};
use std::time::Duration;

/// A classification set: `n` rows, 6 features, 3 one-hot classes.
fn data<T: Real>(n: usize, seed: u64) -> (Mat<T>, Mat<T>, Vec<u32>) {
    let mut r = rng(seed);
    let x = rand_mat::<T>(&mut r, n, 6);
    let labels: Vec<u32> = (0..n)
        .map(|i| {
            let s: f64 = (0..6).map(|j| x[(i, j)].to_f64() * (j as f64 - 2.5)).sum();
            if s < -0.5 {
                0
            } else if s < 0.5 {
                1
            } else {
                2
            }
        })
        .collect();
    let y = Mat::from_fn(n, 3, |i, c| {
        if labels[i] as usize == c {
            T::from_f64(1.0)
        } else {
            T::from_f64(0.0)
        }
    });
    (x, y, labels)
}

fn view<'a, T: Real>(x: &'a Mat<T>, y: &'a Mat<T>, labels: &'a [u32], s: Shard) -> DataRef<'a, T> {
    let sub = |m: &'a Mat<T>| -> MatRef<'a, T> { m.as_ref().subrows(s.offset, s.len) };
    DataRef::new(sub(x), sub(y), Some(&labels[s.range()]))
}

struct Set<T: Real> {
    train: (Mat<T>, Mat<T>, Vec<u32>),
    test: (Mat<T>, Mat<T>, Vec<u32>),
}

fn set<T: Real>() -> Set<T> {
    Set {
        train: data(41, 1),
        test: data(13, 2),
    }
}

fn config(inner: Inner, loss: Loss) -> TrainConfig {
    TrainConfig::new()
        .with_period(Period::Steps(4))
        .with_inner(inner)
        .with_loss(loss)
        .with_weight_decay(1e-3)
        .with_batch(9)
        .with_steps(24)
        .with_eval_every(8)
        .with_probe(5)
        .with_kernel_distance(true)
        .with_seed(7)
}

/// What one rank's run ends with: θ, the report, the evaluations.
type RankRun<T> = (Vec<T>, Report, Vec<Metrics>);

/// One rank's run: its trainer over its shards of `s`.
fn fit_rank<T: Real>(
    mlp: &Mlp,
    cfg: &TrainConfig,
    s: &Set<T>,
    comm: Option<&dyn Comm>,
    resume: Option<&std::path::Path>,
) -> itlin::Result<RankRun<T>> {
    let (r, size) = comm.map_or((0, 1), |c| (c.rank(), c.size()));
    let (tr, te) = (
        Shard::of(s.train.0.nrows(), r, size),
        Shard::of(s.test.0.nrows(), r, size),
    );
    let mut trainer = match resume {
        Some(p) => Trainer::from_state(mlp, checkpoint::load::<T>(p)?, cfg.clone())?,
        None => Trainer::new(mlp, mlp.init::<T>(Init::Standard, 3), cfg.clone())?,
    };
    if let Some(c) = comm {
        trainer = trainer.with_comm(c, tr, Some(te));
    }
    let mut seen = Vec::new();
    let mut obs = OnEval(|m: &Metrics| seen.push(m.clone()));
    let report = trainer.fit(
        view(&s.train.0, &s.train.1, &s.train.2, tr),
        Some(view(&s.test.0, &s.test.1, &s.test.2, te)),
        &mut obs,
    )?;
    Ok((trainer.theta().to_vec(), report, seen))
}

/// Runs `size` ranks as threads; returns each rank's result.
fn fit_ranks<T: Real>(
    size: usize,
    mlp: &Mlp,
    cfg: &TrainConfig,
    s: &Set<T>,
    resume: Option<&std::path::Path>,
) -> Vec<itlin::Result<RankRun<T>>> {
    let comms = ThreadComm::group(size, Duration::from_secs(60));
    std::thread::scope(|sc| {
        let hs: Vec<_> = comms
            .into_iter()
            .map(|c| sc.spawn(move || fit_rank(mlp, cfg, s, Some(&c), resume)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn to64<T: Real>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

/// The ranks agree bit for bit with each other and with the one-process run within `tol`.
fn check_like_one_process<T: Real>(inner: Inner, loss: Loss, tol: f64) {
    let mlp = Mlp::new(&[6, 12, 3], Activation::Tanh).unwrap();
    let cfg = config(inner, loss);
    let s = set::<T>();
    let (theta1, rep1, hist1) = fit_rank(&mlp, &cfg, &s, None, None).unwrap();
    for size in [2, 3, 5] {
        let out: Vec<_> = fit_ranks(size, &mlp, &cfg, &s, None)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let (theta0, rep0, hist0) = &out[0];
        for (r, (th, rep, _)) in out.iter().enumerate() {
            assert_eq!(th, theta0, "R {size}: rank {r}'s θ differs from rank 0's");
            assert_eq!(rep.steps, rep1.steps);
        }
        assert_eq!(rep0.termination, rep1.termination);
        let e = rel_err(&to64(theta0), &to64(&theta1));
        assert!(
            e < tol,
            "{} R {size}: θ differs from one process by {e:e}",
            T::NAME
        );
        assert_eq!(hist0.len(), hist1.len());
        for (a, b) in hist0.iter().zip(&hist1) {
            assert_eq!(a.step, b.step);
            assert_eq!(a.epoch, b.epoch);
            let pairs = [
                (Some(a.train_loss), Some(b.train_loss)),
                (a.train_acc, b.train_acc),
                (a.test_loss, b.test_loss),
                (a.test_acc, b.test_acc),
                (a.net_test_loss, b.net_test_loss),
                (a.net_test_acc, b.net_test_acc),
                (a.lin_error, b.lin_error),
                (a.kernel_distance, b.kernel_distance),
                (Some(a.dist_init), Some(b.dist_init)),
            ];
            for (k, (u, v)) in pairs.into_iter().enumerate() {
                let (u, v) = (u.expect("present"), v.expect("present"));
                assert!(
                    (u - v).abs() <= tol.max(1e-15) * v.abs().max(1.0),
                    "R {size} step {} metric {k}: {u} vs {v}",
                    a.step
                );
            }
        }
    }
}

#[test]
fn sgd_with_momentum_f64_equals_one_process() {
    let inner = Inner::Sgd {
        lr: 0.2,
        momentum: 0.9,
        nesterov: true,
    };
    check_like_one_process::<f64>(inner, Loss::CrossEntropy, 1e-12);
}

#[test]
fn adam_f64_mse_equals_one_process() {
    check_like_one_process::<f64>(Inner::adam(0.01), Loss::Mse, 1e-12);
}

#[test]
fn adam_f32_equals_one_process_to_f32_rounding() {
    check_like_one_process::<f32>(Inner::adam(0.01), Loss::CrossEntropy, 2e-4);
}

#[test]
fn a_planted_error_in_the_gradient_sum_is_seen() {
    // The comparison above can fail: a run whose ranks do not sum their gradients (each
    // rank's own shard only, a plausible bug) is far from the one-process run.
    let mlp = Mlp::new(&[6, 12, 3], Activation::Tanh).unwrap();
    let cfg = config(Inner::sgd(0.3), Loss::Mse);
    let s = set::<f64>();
    let (theta1, ..) = fit_rank(&mlp, &cfg, &s, None, None).unwrap();
    let solo = itlin::dist::Solo;
    // rank 0's shard alone with a one-rank communicator that claims to be a shard
    let tr = Shard::of(41, 0, 2);
    let te = Shard::of(13, 0, 2);
    let mut t = Trainer::new(&mlp, mlp.init::<f64>(Init::Standard, 3), cfg).unwrap();
    t = t.with_comm(&solo, tr, Some(te));
    t.fit(
        view(&s.train.0, &s.train.1, &s.train.2, tr),
        Some(view(&s.test.0, &s.test.1, &s.test.2, te)),
        &mut (),
    )
    .unwrap();
    let e = rel_err(&to64(t.theta()), &to64(&theta1));
    assert!(e > 1e-4, "a run over half the rows matched: {e:e}");
}

#[test]
fn checkpoint_and_resume_of_a_distributed_run() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck.bin");
    let mlp = Mlp::new(&[6, 12, 3], Activation::Tanh).unwrap();
    let s = set::<f64>();
    let full = config(Inner::adam(0.01), Loss::CrossEntropy);
    let (theta_full, ..) = fit_rank(&mlp, &full, &s, None, None).unwrap();
    // 3 ranks: stop after 12 of 24 steps with a checkpoint, then 3 new ranks resume
    let half = full.clone().with_steps(12).with_checkpoint(&ck, 6);
    for r in fit_ranks(3, &mlp, &half, &s, None) {
        r.unwrap();
    }
    assert_eq!(checkpoint::load::<f64>(&ck).unwrap().step, 12);
    let rest = full.clone().with_checkpoint(&ck, 6);
    let out = fit_ranks(3, &mlp, &rest, &s, Some(&ck));
    let out: Vec<_> = out.into_iter().map(Result::unwrap).collect();
    for (th, rep, _) in &out {
        assert_eq!(th, &out[0].0);
        assert_eq!(rep.steps, 24);
    }
    let e = rel_err(&to64(&out[0].0), &to64(&theta_full));
    assert!(e < 1e-12, "resumed distributed θ differs by {e:e}");
    assert_eq!(checkpoint::load::<f64>(&ck).unwrap().step, 24);
}

#[test]
fn a_rank_that_stops_fails_the_others_with_a_comm_error() {
    let mlp = Mlp::new(&[6, 12, 3], Activation::Tanh).unwrap();
    let cfg = config(Inner::sgd(0.1), Loss::Mse);
    let s = set::<f64>();
    let comms = ThreadComm::group(3, Duration::from_secs(60));
    let t = std::time::Instant::now();
    let results: Vec<_> = std::thread::scope(|sc| {
        let hs: Vec<_> = comms
            .into_iter()
            .map(|c| {
                let (mlp, cfg, s) = (&mlp, &cfg, &s);
                sc.spawn(move || {
                    if c.rank() == 2 {
                        // this rank dies before training: its communicator is dropped
                        return Err(Error::config("rank 2 gave up"));
                    }
                    fit_rank(mlp, cfg, s, Some(&c), None)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(t.elapsed() < Duration::from_secs(30), "the ranks hung");
    for r in &results[..2] {
        match r {
            Err(Error::Comm(m)) => assert!(m.contains("rank 2 left the group"), "{m}"),
            other => panic!(
                "expected a communication error, got {other:?}",
                other = other.as_ref().map(|_| ())
            ),
        }
    }
}

/// The one-line error of `t.fit` on the rows `train` of the training set (the whole test
/// set).
fn fit_error(t: &mut Trainer<'_, f64, Mlp>, s: &Set<f64>, train: Shard) -> String {
    t.fit(
        view(&s.train.0, &s.train.1, &s.train.2, train),
        Some(view(&s.test.0, &s.test.1, &s.test.2, Shard::whole(13))),
        &mut (),
    )
    .unwrap_err()
    .to_string()
}

#[test]
fn unsupported_set_ups_are_refused() {
    let mlp = Mlp::new(&[6, 12, 3], Activation::Tanh).unwrap();
    let s = set::<f64>();
    let solo = itlin::dist::Solo;
    let gn = config(Inner::sgd(0.1), Loss::Mse).with_inner(Inner::Spectral { lr: 0.1 });
    let t = Trainer::new(&mlp, mlp.init::<f64>(Init::Standard, 3), gn).unwrap();
    let sh = Shard::whole(41);
    let mut t = t.with_comm(&solo, sh, Some(Shard::whole(13)));
    let e = fit_error(&mut t, &s, sh);
    assert!(e.contains("SGD, Adam or Gauss-Newton"), "{e}");
    // a shard that does not match the rows given
    let t = Trainer::new(
        &mlp,
        mlp.init::<f64>(Init::Standard, 3),
        config(Inner::sgd(0.1), Loss::Mse),
    )
    .unwrap();
    let mut t = t.with_comm(&solo, Shard::of(41, 0, 2), Some(Shard::whole(13)));
    let e = fit_error(&mut t, &s, Shard::whole(41));
    assert!(e.contains("training shard"), "{e}");
}

/// Gauss-Newton (MSE, dual CG over the shards) on `R` ranks against one rank of the same
/// code and against the one-process dense dual step.
/// `tol`: R ranks against one (CG to a backward error of 8ε on each, so δ agrees to about
/// κ(Θ + NλI)·ε, which grows as the adaptive rule lowers λ).
fn check_gn(adaptive: bool, gn_batch: Option<usize>, landmarks: usize, tol: f64) {
    use itlin::solve::{Form, Preconditioner};
    use itlin::train::GnSolver;
    let mlp = Mlp::new(&[6, 12, 3], Activation::Tanh).unwrap();
    let base = config(
        Inner::GaussNewton {
            damping: 1e-2,
            adaptive,
        },
        Loss::Mse,
    )
    .with_steps(9)
    .with_eval_every(3)
    .with_gn_batch(gn_batch)
    .with_kernel_distance(false);
    let sharded = base.clone().with_gn_solver(GnSolver {
        form: Form::Cg,
        preconditioner: if landmarks > 0 {
            Preconditioner::Nystrom { rank: landmarks }
        } else {
            Preconditioner::None
        },
    });
    let dense = base.with_gn_solver(GnSolver {
        form: Form::Dual,
        preconditioner: Preconditioner::Auto,
    });
    let s = set::<f64>();
    let (theta_dense, rep_dense, _) = fit_rank(&mlp, &dense, &s, None, None).unwrap();
    let one = fit_ranks(1, &mlp, &sharded, &s, None).remove(0).unwrap();
    let e = rel_err(&to64(&one.0), &to64(&theta_dense));
    assert!(e < 1e-9, "1 rank vs the dense step: {e:e}");
    assert_eq!(one.1.rejected_steps, rep_dense.rejected_steps);
    for size in [2, 3] {
        let out: Vec<_> = fit_ranks(size, &mlp, &sharded, &s, None)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        for (th, rep, _) in &out {
            assert_eq!(th, &out[0].0);
            assert_eq!(rep.steps, 9);
            assert_eq!(rep.rejected_steps, one.1.rejected_steps);
        }
        let e = rel_err(&to64(&out[0].0), &to64(&one.0));
        assert!(e < tol, "R {size} vs 1 rank: {e:e}");
    }
}

#[test]
fn gauss_newton_over_shards_equals_one_process() {
    check_gn(false, None, 0, 1e-12);
    check_gn(false, Some(17), 12, 1e-12);
    // 2 rows per solve on 3 ranks: a rank with none of a solve's rows takes part with none
    check_gn(false, Some(2), 0, 1e-12);
}

#[test]
fn adaptive_gauss_newton_over_shards_equals_one_process() {
    // λ falls to 1e-2/3⁹ over the 9 kept steps
    check_gn(true, None, 9, 1e-9);
}

/// Each rank's resident engine ([`BackendEngine`] on the CPU backend with a host-staged
/// collective) takes the same data-parallel steps as the ranks' host path (to rounding), and
/// the engines of all ranks hold the same θ bit for bit.
#[test]
fn resident_engines_with_a_collective_train_like_the_host_ranks() {
    use itlin::backend::{Cpu, HostStaged};
    use itlin::train::BackendEngine;
    use std::sync::Arc;
    let mlp = Mlp::new(&[6, 12, 3], Activation::Tanh).unwrap();
    let s = set::<f64>();
    for inner in [
        Inner::Sgd {
            lr: 0.2,
            momentum: 0.9,
            nesterov: false,
        },
        Inner::adam(0.01),
    ] {
        let cfg = config(inner, Loss::CrossEntropy);
        for size in [2, 3, 5] {
            let host: Vec<_> = fit_ranks(size, &mlp, &cfg, &s, None)
                .into_iter()
                .map(Result::unwrap)
                .collect();
            let comms: Vec<Arc<dyn Comm>> = ThreadComm::group(size, Duration::from_secs(60))
                .into_iter()
                .map(|c| Arc::new(c) as Arc<dyn Comm>)
                .collect();
            let engines: Vec<_> = std::thread::scope(|sc| {
                let hs: Vec<_> = comms
                    .into_iter()
                    .map(|comm| {
                        let (mlp, cfg, s) = (&mlp, &cfg, &s);
                        sc.spawn(move || {
                            let (tr, te) = (
                                Shard::of(41, comm.rank(), size),
                                Shard::of(13, comm.rank(), size),
                            );
                            let engine = BackendEngine::<f64, Cpu>::new(mlp.clone(), Arc::new(Cpu))
                                .with_collective(Arc::new(HostStaged::new(Arc::clone(&comm))));
                            let mut t =
                                Trainer::new(mlp, mlp.init::<f64>(Init::Standard, 3), cfg.clone())
                                    .unwrap()
                                    .with_engine(Box::new(engine))
                                    .with_comm(&*comm, tr, Some(te));
                            t.fit(
                                view(&s.train.0, &s.train.1, &s.train.2, tr),
                                Some(view(&s.test.0, &s.test.1, &s.test.2, te)),
                                &mut (),
                            )
                            .unwrap();
                            t.theta().to_vec()
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for (r, th) in engines.iter().enumerate() {
                assert_eq!(th, &engines[0], "{inner:?} R {size}: rank {r}'s engine θ");
                // not bit for bit: on a rank with one row of a batch the engine's row-major
                // 1 × d batch and the host path's column-major one take different GEMM
                // kernels (the two agree bit for bit from two rows on)
                let e = rel_err(&to64(th), &to64(&host[r].0));
                assert!(
                    e < 1e-13,
                    "{inner:?} R {size}: rank {r}: engine vs host {e:e}"
                );
            }
        }
    }
}

#[test]
fn an_engine_without_a_collective_refuses_data_parallel_steps() {
    use itlin::backend::Cpu;
    use itlin::train::BackendEngine;
    use std::sync::Arc;
    let mlp = Mlp::new(&[6, 12, 3], Activation::Tanh).unwrap();
    let s = set::<f64>();
    let solo = itlin::dist::Solo;
    let sh = Shard::whole(41);
    let mut t = Trainer::new(
        &mlp,
        mlp.init::<f64>(Init::Standard, 3),
        config(Inner::sgd(0.1), Loss::Mse),
    )
    .unwrap()
    .with_engine(Box::new(BackendEngine::<f64, Cpu>::new(
        mlp.clone(),
        Arc::new(Cpu),
    )))
    .with_comm(&solo, sh, Some(Shard::whole(13)));
    let e = fit_error(&mut t, &s, sh);
    assert!(e.contains("no collective"), "{e}");
}

/// A non-finite loss on one rank's rows is non-finite in the reduced metrics, as in one
/// process (a NaN target in the last test row, held by the last rank).
#[test]
fn a_non_finite_loss_on_one_rank_is_not_hidden() {
    let mlp = Mlp::new(&[6, 12, 3], Activation::Tanh).unwrap();
    let cfg = config(Inner::sgd(0.1), Loss::Mse).with_kernel_distance(false);
    let mut s = set::<f64>();
    s.test.1[(12, 0)] = f64::NAN;
    let (_, _, one) = fit_rank(&mlp, &cfg, &s, None, None).unwrap();
    assert!(one.iter().all(|m| m.test_loss.is_some_and(f64::is_nan)));
    for (r, out) in fit_ranks(3, &mlp, &cfg, &s, None).into_iter().enumerate() {
        let (_, _, hist) = out.unwrap();
        assert_eq!(hist.len(), one.len());
        for m in &hist {
            assert!(m.test_loss.is_some_and(f64::is_nan), "rank {r}: {m:?}");
            assert!(m.train_loss.is_finite());
        }
    }
}
