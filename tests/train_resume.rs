//! Checkpoint + resume continues bit-for-bit (f64), for stateful optimisers and schedules.

use faer::Mat;
use itlin::train::{
    Control, DataRef, Inner, Loss, Metrics, Observer, Period, Schedule, TrainConfig, Trainer,
    checkpoint,
};
use itlin::{Activation, Init, Mlp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct StopAt(u64);
impl Observer for StopAt {
    fn on_eval(&mut self, m: &Metrics) -> Control {
        if m.step >= self.0 {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

fn data() -> (Mat<f64>, Mat<f64>, Vec<u32>) {
    let mut r = ChaCha8Rng::seed_from_u64(42);
    let x = Mat::from_fn(50, 6, |_, _| r.random::<f64>() * 2.0 - 1.0);
    let labels: Vec<u32> = (0..50)
        .map(|i| u32::from(x[(i, 0)] + x[(i, 1)] > 0.0))
        .collect();
    let y = Mat::from_fn(50, 2, |i, k| f64::from(labels[i] as usize == k));
    (x, y, labels)
}

fn check(inner: Inner, loss: Loss) {
    let (x, y, labels) = data();
    let d = DataRef::new(x.as_ref(), y.as_ref(), Some(&labels));
    let mlp = Mlp::new(&[6, 9, 2], Activation::Gelu).unwrap();
    let theta0 = mlp.init::<f64>(Init::Standard, 3);
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck.bin");
    let cfg = TrainConfig::new()
        .with_period(Period::Steps(4))
        .with_inner(inner)
        .with_loss(loss)
        .with_schedule(Schedule::Cosine)
        .with_weight_decay(1e-3)
        .with_batch(7)
        .with_gn_batch(Some(20))
        .with_steps(40)
        .with_eval_every(5)
        .with_probe(5)
        .with_seed(9);

    let mut full = Trainer::new(&mlp, theta0.clone(), cfg.clone()).unwrap();
    full.fit(d, None, &mut ()).unwrap();

    // interrupted: checkpoints every 10 steps, stops (as if killed) at step 25
    let cfg_ck = cfg.clone().with_checkpoint(&ck, 10);
    let mut first = Trainer::new(&mlp, theta0, cfg_ck.clone()).unwrap();
    let r = first.fit(d, None, &mut StopAt(25)).unwrap();
    assert_eq!(r.steps, 25);
    let state = checkpoint::load::<f64>(&ck).unwrap();
    assert_eq!(state.step, 20);
    let mut resumed = Trainer::from_state(&mlp, state, cfg_ck).unwrap();
    let r = resumed.fit(d, None, &mut ()).unwrap();
    assert_eq!(r.steps, 40);
    let a: Vec<u64> = full.theta().iter().map(|v| v.to_bits()).collect();
    let b: Vec<u64> = resumed.theta().iter().map(|v| v.to_bits()).collect();
    assert_eq!(
        a, b,
        "resumed θ differs from the uninterrupted run ({inner:?})"
    );
    assert_eq!(
        full.state().relinearisations,
        resumed.state().relinearisations
    );
    assert_eq!(full.state().opt, resumed.state().opt);
    // the final checkpoint is the final state
    let last = checkpoint::load::<f64>(&ck).unwrap();
    assert_eq!(last.theta, resumed.theta());
}

#[test]
fn resume_adam_is_bit_for_bit() {
    check(Inner::adam(0.01), Loss::CrossEntropy);
}

#[test]
fn resume_sgd_nesterov_is_bit_for_bit() {
    check(
        Inner::Sgd {
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
        },
        Loss::Mse,
    );
}

#[test]
fn resume_adaptive_gn_is_bit_for_bit() {
    check(
        Inner::GaussNewton {
            damping: 0.1,
            adaptive: true,
        },
        Loss::CrossEntropy,
    );
}

#[test]
fn bad_checkpoints_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ck.bin");
    assert!(checkpoint::load::<f64>(&p).is_err(), "missing file");
    std::fs::write(&p, b"not a checkpoint").unwrap();
    let e = checkpoint::load::<f64>(&p).unwrap_err().to_string();
    assert!(e.contains("bad magic"), "{e}");
    // a real one, truncated, and read with the wrong precision
    let (x, y, labels) = data();
    let mlp = Mlp::new(&[6, 3, 2], Activation::Tanh).unwrap();
    let cfg = TrainConfig::new()
        .with_steps(3)
        .with_probe(0)
        .with_checkpoint(&p, 1);
    let mut t = Trainer::new(&mlp, mlp.init::<f64>(Init::Standard, 0), cfg).unwrap();
    t.fit(
        DataRef::new(x.as_ref(), y.as_ref(), Some(&labels)),
        None,
        &mut (),
    )
    .unwrap();
    let e = checkpoint::load::<f32>(&p).unwrap_err().to_string();
    assert!(e.contains("--precision f64"), "{e}");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
    let e = checkpoint::load::<f64>(&p).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
}
