//! Data-parallel steps of the GPU-resident engine: `ResidentEngine` with a collective
//! (host-staged through a one-rank communicator; with the `nccl` feature also a one-GPU NCCL
//! communicator) trains like the resident engine alone, and two ranks as threads, each with its
//! own context on the GPU, train like one. Every test skips with the reason when no GPU is usable,
//! unless `ITLIN_REQUIRE_GPU=1`.

mod common;

use common::{rand_mat, rel_err, rng};
use faer::Mat;
use itlin::backend::{Collective, HostStaged};
use itlin::dist::{Comm, Shard, Solo, ThreadComm};
use itlin::kernels::cuda::{CudaBackend, ResidentEngine};
use itlin::train::{DataRef, Inner, Loss, Period, TrainConfig, Trainer};
use itlin::{Activation, Init, Mlp};
use std::sync::Arc;
use std::time::Duration;

fn backend() -> Option<Arc<CudaBackend>> {
    common::gpu::shared_backend()
}

fn data(n: usize) -> (Mat<f64>, Mat<f64>) {
    let mut r = rng(4);
    (rand_mat::<f64>(&mut r, n, 6), rand_mat::<f64>(&mut r, n, 3))
}

fn cfg() -> TrainConfig {
    TrainConfig::new()
        .with_period(Period::Steps(4))
        .with_inner(Inner::adam(0.01))
        .with_loss(Loss::Mse)
        .with_batch(9)
        .with_steps(20)
        .with_eval_every(10)
        .with_seed(2)
}

/// θ after training on `x, y` with the resident engine, data-parallel over `comm` when
/// given (with the collective `coll`).
fn train(
    be: &Arc<CudaBackend>,
    mlp: &Mlp,
    x: &Mat<f64>,
    y: &Mat<f64>,
    dist: Option<(&dyn Comm, DeviceSum)>,
) -> Vec<f64> {
    let mut engine = ResidentEngine::<f64>::new(mlp.clone(), be.clone());
    let (rank, size) = dist.as_ref().map_or((0, 1), |(c, _)| (c.rank(), c.size()));
    let sh = Shard::of(x.nrows(), rank, size);
    if let Some((_, coll)) = &dist {
        engine = engine.with_collective(coll.clone());
    }
    let mut t = Trainer::new(mlp, mlp.init::<f64>(Init::Standard, 1), cfg())
        .unwrap()
        .with_engine(Box::new(engine));
    if let Some((c, _)) = dist {
        t = t.with_comm(c, sh, None);
    }
    let d = DataRef::new(
        x.as_ref().subrows(sh.offset, sh.len),
        y.as_ref().subrows(sh.offset, sh.len),
        None,
    );
    t.fit(d, None, &mut ()).unwrap();
    t.theta().to_vec()
}

/// A collective of the GPU backend's f64 buffers.
type DeviceSum = Arc<dyn Collective<f64, CudaBackend>>;

#[test]
fn one_rank_with_a_collective_trains_like_the_engine_alone() {
    let Some(be) = backend() else { return };
    let mlp = Mlp::new(&[6, 16, 3], Activation::Tanh).unwrap();
    let (x, y) = data(37);
    let alone = train(&be, &mlp, &x, &y, None);
    let solo: Arc<dyn Comm> = Arc::new(Solo);
    let staged = train(
        &be,
        &mlp,
        &x,
        &y,
        Some((&*solo, Arc::new(HostStaged::new(solo.clone())))),
    );
    assert_eq!(staged, alone, "host-staged collective of one rank");
    #[cfg(feature = "nccl")]
    {
        match itlin::kernels::cuda::NcclSum::new(&be, &*solo) {
            Ok(nccl) => {
                let th = train(&be, &mlp, &x, &y, Some((&*solo, Arc::new(nccl))));
                assert_eq!(th, alone, "one-GPU NCCL communicator");
            }
            Err(e) => println!("skipping the NCCL case: {e}"),
        }
    }
}

#[test]
fn two_ranks_on_one_gpu_train_like_one() {
    let Some(be) = backend() else { return };
    let mlp = Mlp::new(&[6, 16, 3], Activation::Tanh).unwrap();
    let (x, y) = data(37);
    let alone = train(&be, &mlp, &x, &y, None);
    let comms: Vec<Arc<dyn Comm>> = ThreadComm::group(2, Duration::from_secs(60))
        .into_iter()
        .map(|c| Arc::new(c) as Arc<dyn Comm>)
        .collect();
    let out: Vec<Vec<f64>> = std::thread::scope(|s| {
        let hs: Vec<_> = comms
            .iter()
            .map(|c| {
                let (mlp, x, y) = (&mlp, &x, &y);
                s.spawn(move || {
                    // each rank its own context, stream and handles, as one process per GPU
                    let be = Arc::new(CudaBackend::new().expect("a second context"));
                    train(
                        &be,
                        mlp,
                        x,
                        y,
                        Some((&**c, Arc::new(HostStaged::new(c.clone())))),
                    )
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(out[0], out[1]);
    let e = rel_err(&out[0], &alone);
    assert!(e < 1e-12, "2 ranks vs 1: {e:e}");
}
