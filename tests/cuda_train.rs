//! The trainer on the GPU: [`CudaMlp`] (every model evaluation on the device) against the CPU
//! [`Mlp`] from the same θ₀, same batches: θ after training agrees to 1e-10 relative in f64
//! and 1e-4 in f32; and `itlin train --device cuda` end to end (a complete run directory with
//! a GPU; a one-line error and nothing written without one). Every test skips with the
//! reason when no GPU is usable, unless `ITLIN_REQUIRE_GPU=1` (the GPU check script sets
//! it), in which case it fails.
#![cfg(feature = "cuda")]

mod common;

use common::{rand_mat, rel_err, rng, to_f64};
use faer::Mat;
use itlin::kernels::cuda::{CudaBackend, CudaMlp, CudaReal};
use itlin::train::{DataRef, Inner, Loss, Period, TrainConfig, Trainer};
use itlin::{Activation, Init, Mlp, Model, Real};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

fn require_gpu() -> bool {
    std::env::var("ITLIN_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

/// One backend shared by the tests (`CudaMlp` serialises the calls on it).
fn backend() -> Option<Arc<CudaBackend>> {
    static BE: OnceLock<Option<Arc<CudaBackend>>> = OnceLock::new();
    let be = BE.get_or_init(|| match CudaBackend::new() {
        Ok(be) => {
            println!(
                "CUDA device: {} ({})",
                be.device_name().unwrap_or_default(),
                be.arch()
            );
            Some(Arc::new(be))
        }
        Err(e) if require_gpu() => panic!("ITLIN_REQUIRE_GPU=1 but {e}"),
        Err(e) => {
            println!("skipping: {e}");
            None
        }
    });
    if be.is_none() {
        println!("skipping: no usable CUDA device (see the first message)");
    }
    be.clone()
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
            assert!(!require_gpu(), "ITLIN_REQUIRE_GPU=1 but {e}");
            println!("no GPU ({e}): checking the refusal");
            assert!(!out.status.success(), "succeeded without a GPU");
            assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
            assert!(err.contains("no usable CUDA device"), "unexpected: {err}");
            assert!(!out_dir.exists(), "a run directory was written");
        }
    }
}
