//! The trainer on the GPU: [`CudaMlp`] (every model evaluation on the device) and the
//! GPU-resident first-order engine [`ResidentEngine`] against the CPU [`Mlp`] from the same
//! θ₀, same batches: θ after training agrees to 1e-10 relative in f64 and 1e-4 in f32 (for
//! SGD, momentum, Nesterov, Adam, weight decay, MSE and cross-entropy, K = 1, 10, ∞); the
//! resident engine's checkpoints resume to the same θ, and a non-finite step stops both
//! trainers at the same step with the same θ; and `itlin train|sweep --device cuda` end to
//! end (a complete run directory with a GPU; a one-line error and nothing written without
//! one). Every test skips with the reason when no GPU is usable, unless
//! `ITLIN_REQUIRE_GPU=1` (the GPU check script sets it), in which case it fails.
#![cfg(feature = "cuda")]

mod common;

use common::{rand_mat, rel_err, rng, to_f64};
use faer::Mat;
use itlin::kernels::cuda::{CudaBackend, CudaMlp, CudaReal, ResidentEngine};
use itlin::train::{
    DataRef, Inner, Loss, Period, Report, Termination, TrainConfig, TrainState, Trainer, checkpoint,
};
use itlin::{Activation, Init, Mlp, Model, Real};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// One backend shared by the tests (`CudaMlp` serialises the calls on it).
fn backend() -> Option<Arc<CudaBackend>> {
    common::gpu::shared_backend()
}

/// `n` rows of `d` features in [-1, 1], labels = arg-max of the first `c` features, one-hot
/// targets.
fn data<T: Real>(n: usize, d: usize, c: usize, seed: u64) -> (Mat<T>, Mat<T>, Vec<u32>) {
    let x = rand_mat::<T>(&mut rng(seed), n, d);
    let labels: Vec<u32> = (0..n)
        .map(|i| {
            (0..c)
                .max_by(|&a, &b| x[(i, a)].partial_cmp(&x[(i, b)]).unwrap())
                .unwrap() as u32
        })
        .collect();
    let y = Mat::from_fn(n, c, |i, k| {
        if labels[i] as usize == k {
            T::one_impl()
        } else {
            T::zero_impl()
        }
    });
    (x, y, labels)
}

/// Trains `model` from `theta0` with `inner` and period K = 10 for `steps` steps; returns θ.
fn train<T: Real, M: Model<T>>(
    model: &M,
    theta0: &[T],
    inner: Inner,
    loss: Loss,
    steps: u64,
    (x, y, labels): &(Mat<T>, Mat<T>, Vec<u32>),
) -> Vec<T> {
    let cfg = TrainConfig::new()
        .with_period(Period::Steps(10))
        .with_inner(inner)
        .with_loss(loss)
        .with_batch(8)
        .with_steps(steps)
        .with_seed(11)
        .with_probe(0)
        .with_kernel_distance(false)
        .with_eval_every(1_000_000);
    let mut tr = Trainer::new(model, theta0.to_vec(), cfg).unwrap();
    let rep = tr
        .fit(
            DataRef::new(x.as_ref(), y.as_ref(), Some(labels)),
            None,
            &mut (),
        )
        .unwrap();
    assert_eq!(rep.steps, steps);
    tr.theta().to_vec()
}

/// CPU and GPU training from the same θ₀ end at the same θ (and θ moved).
fn cpu_vs_gpu<T: CudaReal>(be: &Arc<CudaBackend>, inner: Inner, loss: Loss, steps: u64, tol: f64) {
    let mlp = Mlp::new(&[7, 13, 9, 3], Activation::Tanh).unwrap();
    let gpu = CudaMlp::with_backend(mlp.clone(), be.clone());
    let d = data::<T>(37, 7, 3, 5);
    let theta0 = mlp.init::<T>(Init::Standard, 3);
    let cpu_theta = to_f64(&train(&mlp, &theta0, inner, loss, steps, &d));
    let gpu_theta = to_f64(&train(&gpu, &theta0, inner, loss, steps, &d));
    let what = format!("{} {} {loss:?}, {steps} steps, K=10", T::NAME, inner.name());
    assert!(
        rel_err(&cpu_theta, &to_f64(&theta0)) > 1e-3,
        "{what}: training must move θ"
    );
    let e = rel_err(&gpu_theta, &cpu_theta);
    println!("{what}: GPU vs CPU θ relative error {e:.2e}");
    assert!(
        e <= tol,
        "{what}: GPU vs CPU θ relative error {e:e} > {tol:e}"
    );
}

#[test]
fn sgd_k10_gpu_matches_cpu_f64() {
    let Some(be) = backend() else { return };
    for loss in [Loss::Mse, Loss::CrossEntropy] {
        cpu_vs_gpu::<f64>(&be, Inner::sgd(0.3), loss, 30, 1e-10);
    }
}

#[test]
fn sgd_k10_gpu_matches_cpu_f32() {
    let Some(be) = backend() else { return };
    for loss in [Loss::Mse, Loss::CrossEntropy] {
        cpu_vs_gpu::<f32>(&be, Inner::sgd(0.3), loss, 30, 1e-4);
    }
}

/// Gauss-Newton inner steps use the NTK (`ntk_lower`, the device structured NTK) and the
/// Jacobian; a damped solve loses a few digits to the condition number, hence 1e-8.
#[test]
fn gn_k10_gpu_matches_cpu_f64() {
    let Some(be) = backend() else { return };
    let gn = Inner::GaussNewton {
        damping: 1e-2,
        adaptive: false,
    };
    cpu_vs_gpu::<f64>(&be, gn, Loss::Mse, 12, 1e-8);
}

/// Writes an uncompressed IDX file of u8 values.
fn write_idx(path: &Path, dims: &[usize], data: &[u8]) {
    let mut b = vec![0u8, 0, 0x08, dims.len() as u8];
    for &d in dims {
        b.extend_from_slice(&(d as u32).to_be_bytes());
    }
    b.extend_from_slice(data);
    std::fs::write(path, b).unwrap();
}

/// 4×4 "images" of 3 classes (class k lights row k, plus deterministic noise): 48 training
/// and 24 test rows.
fn write_data(dir: &Path) {
    let make = |n: usize, salt: usize| {
        let (mut img, mut lab) = (Vec::new(), Vec::new());
        for i in 0..n {
            let k = (i * 7 + salt) % 3;
            lab.push(k as u8);
            for p in 0..16 {
                let noise = ((i * 31 + p * 17 + salt) % 40) as u8;
                img.push(if p / 4 == k { 200 + noise / 2 } else { noise });
            }
        }
        (img, lab)
    };
    let (xi, yi) = make(48, 0);
    let (xt, yt) = make(24, 1);
    write_idx(&dir.join("train-images-idx3-ubyte"), &[48, 4, 4], &xi);
    write_idx(&dir.join("train-labels-idx1-ubyte"), &[48], &yi);
    write_idx(&dir.join("t10k-images-idx3-ubyte"), &[24, 4, 4], &xt);
    write_idx(&dir.join("t10k-labels-idx1-ubyte"), &[24], &yt);
}

/// The `itlin` binary: `ITLIN_BIN` when set (the GPU bundle carries the binary there, see
/// scripts/gpu-check.sh), else the one cargo built with this test.
fn itlin_bin() -> PathBuf {
    std::env::var_os("ITLIN_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_itlin")), PathBuf::from)
}

/// `itlin train --device cuda`: with a GPU a complete run directory; without one a one-line
/// "no usable CUDA device" error, a non-zero exit and no run directory.
#[test]
fn cli_train_device_cuda() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    write_data(&data_dir);
    let out_dir = tmp.path().join("run");
    let bin = itlin_bin();
    let out = Command::new(&bin)
        .arg("train")
        .arg("--data")
        .arg(&data_dir)
        .args([
            "--arch",
            "16,8,3",
            "--steps",
            "6",
            "--batch",
            "16",
            "--k",
            "3",
            "--eval-every",
            "3",
            "--probe",
            "8",
            "--device",
            "cuda",
            "--quiet",
            "--out",
        ])
        .arg(&out_dir)
        .current_dir(tmp.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (set ITLIN_BIN)", bin.display()));
    let err = String::from_utf8_lossy(&out.stderr);
    match CudaBackend::new() {
        Ok(_) => {
            assert!(
                out.status.success(),
                "itlin train --device cuda failed: {err}"
            );
            for name in ["config.json", "metrics.jsonl", "summary.json", "theta.npy"] {
                assert!(out_dir.join(name).is_file(), "{name} missing");
            }
            let summary = std::fs::read_to_string(out_dir.join("summary.json")).unwrap();
            assert!(summary.contains("\"steps\": 6"), "summary: {summary}");
            println!("itlin train --device cuda: run directory complete");
        }
        Err(e) => {
            assert!(!common::gpu::require_gpu(), "ITLIN_REQUIRE_GPU=1 but {e}");
            println!("no GPU ({e}): checking the refusal");
            assert!(!out.status.success(), "succeeded without a GPU");
            assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
            assert!(err.contains("no usable CUDA device"), "unexpected: {err}");
            assert!(!out_dir.exists(), "a run directory was written");
        }
    }
}

// ---- the GPU-resident first-order engine ---------------------------------------------------

/// The configuration of the resident-engine comparisons: batch 8 of 37 rows (so every epoch
/// ends with a batch of 5), evaluations off unless asked.
fn resident_cfg(inner: Inner, loss: Loss, period: Period, steps: u64, wd: f64) -> TrainConfig {
    TrainConfig::new()
        .with_period(period)
        .with_inner(inner)
        .with_loss(loss)
        .with_weight_decay(wd)
        .with_batch(8)
        .with_steps(steps)
        .with_seed(11)
        .with_probe(0)
        .with_kernel_distance(false)
        .with_eval_every(1_000_000)
}

/// Fits from `theta0` with `cfg` on the host (no engine) or with a [`ResidentEngine`];
/// evaluation uses the CPU `Mlp` either way.
fn fit_state<T: CudaReal>(
    be: Option<&Arc<CudaBackend>>,
    mlp: &Mlp,
    theta0: &[T],
    cfg: &TrainConfig,
    (x, y, labels): &(Mat<T>, Mat<T>, Vec<u32>),
) -> (TrainState<T>, Report) {
    let mut tr = Trainer::new(mlp, theta0.to_vec(), cfg.clone()).unwrap();
    if let Some(be) = be {
        tr = tr.with_engine(Box::new(ResidentEngine::<T>::new(mlp.clone(), be.clone())));
    }
    let rep = tr
        .fit(
            DataRef::new(x.as_ref(), y.as_ref(), Some(labels)),
            None,
            &mut (),
        )
        .unwrap();
    (tr.state().clone(), rep)
}

/// Host and resident states agree: counters and batcher exactly, θ, θ̃ and the optimiser
/// moments to `tol` (relative).
fn assert_states_close<T: Real>(what: &str, gpu: &TrainState<T>, cpu: &TrainState<T>, tol: f64) {
    assert_eq!(gpu.step, cpu.step, "{what}: steps");
    assert_eq!(
        gpu.relinearisations, cpu.relinearisations,
        "{what}: re-linearisations"
    );
    assert_eq!(
        gpu.since_relin, cpu.since_relin,
        "{what}: steps since re-linearisation"
    );
    assert_eq!(gpu.batcher, cpu.batcher, "{what}: batcher");
    assert_eq!(gpu.opt.t, cpu.opt.t, "{what}: optimiser updates");
    assert_eq!(
        gpu.opt.m.len(),
        cpu.opt.m.len(),
        "{what}: first moment length"
    );
    assert_eq!(
        gpu.opt.v.len(),
        cpu.opt.v.len(),
        "{what}: second moment length"
    );
    for (name, a, b) in [
        ("θ", &gpu.theta, &cpu.theta),
        ("θ̃", &gpu.theta_tilde, &cpu.theta_tilde),
        ("m", &gpu.opt.m, &cpu.opt.m),
        ("v", &gpu.opt.v, &cpu.opt.v),
    ] {
        if a.is_empty() {
            continue;
        }
        let e = rel_err(&to_f64(a), &to_f64(b));
        assert!(
            e <= tol,
            "{what}: resident vs CPU {name} relative error {e:e} > {tol:e}"
        );
    }
}

/// Resident vs host training for every period K ∈ {1, 10, ∞} and both losses.
fn resident_vs_cpu<T: CudaReal>(be: &Arc<CudaBackend>, inner: Inner, wd: f64, tol: f64) {
    let mlp = Mlp::new(&[7, 13, 9, 3], Activation::Tanh).unwrap();
    let d = data::<T>(37, 7, 3, 5);
    let theta0 = mlp.init::<T>(Init::Standard, 3);
    for loss in [Loss::Mse, Loss::CrossEntropy] {
        for period in [Period::Steps(1), Period::Steps(10), Period::Never] {
            let cfg = resident_cfg(inner, loss, period, 30, wd);
            let (cpu, _) = fit_state(None, &mlp, &theta0, &cfg, &d);
            let (gpu, rep) = fit_state(Some(be), &mlp, &theta0, &cfg, &d);
            let what = format!("{} {inner:?} {loss:?} K={period} wd={wd}", T::NAME);
            assert_eq!(rep.termination, Termination::Completed, "{what}");
            assert!(
                rel_err(&to_f64(&cpu.theta), &to_f64(&theta0)) > 1e-3,
                "{what}: training must move θ"
            );
            assert_states_close(&what, &gpu, &cpu, tol);
            println!(
                "{what}: θ relative error {:.2e}",
                rel_err(&to_f64(&gpu.theta), &to_f64(&cpu.theta))
            );
        }
    }
}

fn sgd_variants() -> [Inner; 3] {
    [
        Inner::sgd(0.3),
        Inner::Sgd {
            lr: 0.1,
            momentum: 0.9,
            nesterov: false,
        },
        Inner::Sgd {
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
        },
    ]
}

#[test]
fn resident_sgd_matches_cpu_f64() {
    let Some(be) = backend() else { return };
    for inner in sgd_variants() {
        resident_vs_cpu::<f64>(&be, inner, 0.0, 1e-10);
    }
}

#[test]
fn resident_sgd_matches_cpu_f32() {
    let Some(be) = backend() else { return };
    for inner in sgd_variants() {
        resident_vs_cpu::<f32>(&be, inner, 0.0, 1e-4);
    }
}

#[test]
fn resident_adam_matches_cpu() {
    let Some(be) = backend() else { return };
    resident_vs_cpu::<f64>(&be, Inner::adam(1e-2), 0.0, 1e-10);
    resident_vs_cpu::<f32>(&be, Inner::adam(1e-2), 0.0, 1e-4);
}

#[test]
fn resident_weight_decay_matches_cpu() {
    let Some(be) = backend() else { return };
    let momentum = sgd_variants()[1];
    for inner in [Inner::sgd(0.3), momentum, Inner::adam(1e-2)] {
        resident_vs_cpu::<f64>(&be, inner, 1e-2, 1e-10);
        resident_vs_cpu::<f32>(&be, inner, 1e-2, 1e-4);
    }
}

/// With evaluations (every 7 steps, probe rows, a test set) and the GPU model for them, the
/// resident engine's metrics match the host trainer's: the trainer syncs θ before each one.
#[test]
fn resident_metrics_match_cpu() {
    let Some(be) = backend() else { return };
    let mlp = Mlp::new(&[7, 13, 9, 3], Activation::Tanh).unwrap();
    let gpu_model = CudaMlp::with_backend(mlp.clone(), be.clone());
    let (x, y, labels) = data::<f64>(37, 7, 3, 5);
    let (xt, yt, lt) = data::<f64>(11, 7, 3, 6);
    let theta0 = mlp.init::<f64>(Init::Standard, 3);
    let cfg = resident_cfg(
        sgd_variants()[2],
        Loss::CrossEntropy,
        Period::Steps(10),
        30,
        1e-3,
    )
    .with_eval_every(7)
    .with_probe(5);
    let train = DataRef::new(x.as_ref(), y.as_ref(), Some(&labels));
    let test = DataRef::new(xt.as_ref(), yt.as_ref(), Some(&lt));
    let mut cpu = Trainer::new(&mlp, theta0.clone(), cfg.clone()).unwrap();
    let rc = cpu.fit(train, Some(test), &mut ()).unwrap();
    let mut gpu = Trainer::new(&gpu_model, theta0, cfg)
        .unwrap()
        .with_engine(Box::new(ResidentEngine::<f64>::new(
            mlp.clone(),
            be.clone(),
        )));
    let rg = gpu.fit(train, Some(test), &mut ()).unwrap();
    assert_eq!(rc.history.len(), rg.history.len(), "number of evaluations");
    assert_eq!(
        rg.history.len(),
        5,
        "evaluations at 7, 14, 21, 28 and the end"
    );
    for (c, g) in rc.history.iter().zip(&rg.history) {
        assert_eq!(c.step, g.step);
        for (name, a, b) in [
            ("train loss", c.train_loss, g.train_loss),
            ("test loss", c.test_loss.unwrap(), g.test_loss.unwrap()),
            ("‖θ − θ₀‖", c.dist_init, g.dist_init),
            ("‖θ − θ̃‖", c.dist_lin, g.dist_lin),
            (
                "linearisation error",
                c.lin_error.unwrap(),
                g.lin_error.unwrap(),
            ),
        ] {
            let e = (a - b).abs() / a.abs().max(1e-300);
            assert!(e <= 1e-8, "step {}: {name} CPU {a} GPU {b}", c.step);
        }
    }
    assert_states_close("metrics run", gpu.state(), cpu.state(), 1e-10);
}

/// A resident run checkpointed at step 20 and resumed (a fresh engine from the saved state)
/// ends where the uninterrupted resident run ends; the checkpoint holds the host trainer's
/// state at step 20 (θ, θ̃, Adam's moments and count).
#[test]
fn resident_checkpoint_resume() {
    let Some(be) = backend() else { return };
    let mlp = Mlp::new(&[7, 13, 9, 3], Activation::Tanh).unwrap();
    let d = data::<f64>(37, 7, 3, 5);
    let theta0 = mlp.init::<f64>(Init::Standard, 3);
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("checkpoint.bin");
    let base = resident_cfg(Inner::adam(1e-2), Loss::Mse, Period::Steps(7), 30, 1e-3);
    let (full, _) = fit_state(Some(&be), &mlp, &theta0, &base, &d);
    let first = base.clone().with_steps(20).with_checkpoint(&ck, 10);
    let (at20, _) = fit_state(Some(&be), &mlp, &theta0, &first, &d);
    let saved = checkpoint::load::<f64>(&ck).unwrap();
    // the checkpoint holds the synced state (its clock and timings are older)
    assert_eq!(
        (
            &saved.theta,
            &saved.theta_tilde,
            &saved.opt,
            &saved.batcher,
            saved.step
        ),
        (
            &at20.theta,
            &at20.theta_tilde,
            &at20.opt,
            &at20.batcher,
            at20.step
        ),
        "the checkpoint holds the state at step 20"
    );
    let (cpu20, _) = fit_state(None, &mlp, &theta0, &base.clone().with_steps(20), &d);
    assert_states_close("checkpoint at 20 vs CPU", &saved, &cpu20, 1e-10);
    let mut tr = Trainer::from_state(&mlp, saved, base.clone())
        .unwrap()
        .with_engine(Box::new(ResidentEngine::<f64>::new(
            mlp.clone(),
            be.clone(),
        )));
    let (x, y, labels) = &d;
    tr.fit(
        DataRef::new(x.as_ref(), y.as_ref(), Some(labels)),
        None,
        &mut (),
    )
    .unwrap();
    let resumed = tr.state();
    assert_states_close("resumed vs uninterrupted", resumed, &full, 1e-12);
    println!(
        "resident resume: bit-identical θ: {}",
        resumed.theta == full.theta
    );
}

/// A NaN in one training row: both trainers stop (Diverged) at the first batch holding it,
/// with the same step count and θ (the non-finite update is not applied); and a step size
/// of 1e300 makes the resident run diverge too, reported, not silent.
#[test]
fn resident_divergence_stops_like_cpu() {
    let Some(be) = backend() else { return };
    let mlp = Mlp::new(&[7, 13, 9, 3], Activation::Tanh).unwrap();
    let (mut x, y, labels) = data::<f64>(37, 7, 3, 5);
    x[(23, 4)] = f64::NAN;
    let d = (x, y, labels);
    let theta0 = mlp.init::<f64>(Init::Standard, 3);
    let momentum = sgd_variants()[1];
    for inner in [Inner::sgd(0.3), momentum, Inner::adam(1e-2)] {
        let cfg = resident_cfg(inner, Loss::Mse, Period::Steps(3), 30, 0.0);
        let (cpu, rc) = fit_state(None, &mlp, &theta0, &cfg, &d);
        let (gpu, rg) = fit_state(Some(&be), &mlp, &theta0, &cfg, &d);
        let what = format!("NaN row, {inner:?}");
        assert_eq!(rc.termination, Termination::Diverged, "{what}: CPU");
        assert_eq!(rg.termination, Termination::Diverged, "{what}: GPU");
        assert_eq!(rg.steps, rc.steps, "{what}: stopping step");
        assert!(rc.steps < 30, "{what}: the NaN row must be met");
        assert!(
            gpu.theta.iter().all(|v| v.is_finite()),
            "{what}: θ stays finite"
        );
        assert_states_close(&what, &gpu, &cpu, 1e-10);
    }
    let d = data::<f64>(37, 7, 3, 5);
    let cfg = resident_cfg(Inner::sgd(1e300), Loss::Mse, Period::Steps(10), 30, 0.0);
    let (_, rg) = fit_state(Some(&be), &mlp, &theta0, &cfg, &d);
    assert_eq!(
        rg.termination,
        Termination::Diverged,
        "lr 1e300 must diverge"
    );
}

/// `itlin sweep --device cuda`: with a GPU a tiny experiment (a) completes (its runs use the
/// resident engine); without one a one-line error, a non-zero exit and nothing written.
#[test]
fn cli_sweep_device_cuda() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    write_data(&data_dir);
    let out_dir = tmp.path().join("sweep");
    let bin = itlin_bin();
    let out = Command::new(&bin)
        .arg("sweep")
        .arg("--data")
        .arg(&data_dir)
        .args([
            "--what", "a", "--ks", "1,inf", "--arch", "16,8,3", "--steps", "6", "--evals", "2",
            "--batch", "16", "--device", "cuda", "--quiet", "--out",
        ])
        .arg(&out_dir)
        .current_dir(tmp.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (set ITLIN_BIN)", bin.display()));
    let err = String::from_utf8_lossy(&out.stderr);
    match CudaBackend::new() {
        Ok(_) => {
            assert!(
                out.status.success(),
                "itlin sweep --device cuda failed: {err}"
            );
            assert!(out_dir.join("results.md").is_file(), "results.md missing");
            for k in ["1", "inf"] {
                let s = std::fs::read_to_string(out_dir.join(format!("a-K{k}/summary.json")))
                    .unwrap_or_else(|e| panic!("a-K{k}/summary.json: {e}"));
                assert!(s.contains("\"steps\": 6"), "K={k} summary: {s}");
                let c =
                    std::fs::read_to_string(out_dir.join(format!("a-K{k}/config.json"))).unwrap();
                assert!(c.contains("\"device\": \"Cuda\""), "K={k} config: {c}");
            }
        }
        Err(e) => {
            assert!(!common::gpu::require_gpu(), "ITLIN_REQUIRE_GPU=1 but {e}");
            assert!(!out.status.success(), "succeeded without a GPU");
            assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
            assert!(err.contains("no usable CUDA device"), "unexpected: {err}");
            assert!(!out_dir.exists(), "a sweep directory was written");
        }
    }
}
