//! Load a directory of IDX files (e.g. full MNIST or Fashion-MNIST) and train on it.
//!
//! `cargo run --release --example load_idx -- DIR` where DIR holds train-images-idx3-ubyte,
//! train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each optionally
//! `.gz`). Without DIR, the example writes a small synthetic IDX directory first (so it runs
//! anywhere) and loads that.

use itlin::data::idx::write_idx;
use itlin::train::{DataRef, Inner, Loss, Period, TrainConfig, Trainer};
use itlin::{Activation, Init, Mlp};
use std::path::PathBuf;

/// 8×8 images of 4 classes (a bright quadrant per class) with deterministic noise.
fn write_synthetic(dir: &std::path::Path) -> itlin::Result<()> {
    let make = |n: usize, salt: usize| {
        let (mut img, mut lab) = (Vec::new(), Vec::new());
        for i in 0..n {
            let k = (i * 5 + salt) % 4;
            lab.push(k as u8);
            for p in 0..64 {
                let (r, c) = (p / 8, p % 8);
                let on = (r / 4) * 2 + c / 4 == k;
                let noise = ((i * 131 + p * 71 + salt) % 90) as u8;
                img.push(if on { 160 + noise } else { noise });
            }
        }
        (img, lab)
    };
    let (xi, yi) = make(400, 0);
    let (xt, yt) = make(100, 3);
    write_idx(&dir.join("train-images-idx3-ubyte"), &[400, 8, 8], &xi)?;
    write_idx(&dir.join("train-labels-idx1-ubyte"), &[400], &yi)?;
    write_idx(&dir.join("t10k-images-idx3-ubyte"), &[100, 8, 8], &xt)?;
    write_idx(&dir.join("t10k-labels-idx1-ubyte"), &[100], &yt)
}

fn main() -> itlin::Result<()> {
    let mut written = None;
    let dir = match std::env::args().nth(1) {
        Some(d) => PathBuf::from(d),
        None => {
            let tmp =
                std::env::temp_dir().join(format!("itlin-idx-example-{}", std::process::id()));
            std::fs::create_dir_all(&tmp).map_err(|e| itlin::Error::io(&tmp, e))?;
            write_synthetic(&tmp)?;
            println!(
                "no DIR given: wrote a synthetic IDX directory to {}",
                tmp.display()
            );
            written = Some(tmp.clone());
            tmp
        }
    };
    let result = train_on(&dir);
    if let Some(tmp) = written {
        let _ = std::fs::remove_dir_all(tmp);
    }
    result
}

fn train_on(dir: &std::path::Path) -> itlin::Result<()> {
    let split = itlin::data::load_dir::<f32>(dir)?;
    let (d, c) = (split.train.n_features(), split.train.n_outputs());
    println!(
        "train {} × {d}, test {} × {d}, {c} classes",
        split.train.len(),
        split.test.len()
    );
    let mlp = Mlp::new(&[d, 64, c], Activation::Relu)?;
    let cfg = TrainConfig::new()
        .with_period(Period::Steps(20))
        .with_inner(Inner::sgd(0.1))
        .with_loss(Loss::CrossEntropy)
        .with_batch(64)
        .with_steps(300)
        .with_eval_every(100);
    let mut trainer = Trainer::new(&mlp, mlp.init::<f32>(Init::Standard, 0), cfg)?;
    let train = DataRef::new(
        split.train.x.as_ref(),
        split.train.y.as_ref(),
        split.train.labels.as_deref(),
    );
    let test = DataRef::new(
        split.test.x.as_ref(),
        split.test.y.as_ref(),
        split.test.labels.as_deref(),
    );
    let report = trainer.fit(train, Some(test), &mut ())?;
    for m in &report.history {
        println!(
            "step {:>4}  train loss {:.4}  test acc {:.2} %",
            m.step,
            m.train_loss,
            100.0 * m.test_acc.unwrap_or(0.0)
        );
    }
    Ok(())
}
