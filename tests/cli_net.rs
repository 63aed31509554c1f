//! `itlin train --net SPEC`: a network of layers trained from the command line on IDX
//! images (read as 1×H×W), its run directory and resume, the dense net that equals an
//! `--arch` MLP, and the one-line refusals of bad specs.

use std::path::Path;
use std::process::Output;

#[path = "common/cli.rs"]
mod cli;
use cli::{itlin, s, write_data};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The values of a 1-D little-endian f64 `.npy` file.
fn npy_f64(path: &Path) -> Vec<f64> {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..6], b"\x93NUMPY");
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    let header = String::from_utf8_lossy(&b[10..10 + hlen]);
    assert!(header.contains("<f8"), "{header}");
    b[10 + hlen..]
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn train(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--data",
        s(data),
        "--batch",
        "10",
        "--probe",
        "6",
        "--epochs",
        "2",
        "--out",
        s(out),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    itlin(&args, data.parent().unwrap())
}

const CNN: &str = "conv(2,3,pad=1),relu,avgpool(2),dense(3)";

#[test]
fn a_cnn_trains_from_idx_images_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_data(&data, 60);
    let run = tmp.path().join("cnn");
    let o = train(&data, &run, &["--net", CNN, "--precision", "f64"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // conv 2·1·3·3 + 2, then 2×2×2 = 8 features into dense 3·8 + 3
    let p = 2 * 9 + 2 + 3 * 8 + 3;
    let sum = json(&run.join("summary.json"));
    assert_eq!(sum["n_params"].as_u64(), Some(p as u64), "{sum}");
    assert_eq!(
        json(&run.join("config.json"))["args"]["net"].as_str(),
        Some(CNN)
    );
    let theta = npy_f64(&run.join("theta.npy"));
    assert_eq!(theta.len(), p);
    assert!(theta.iter().all(|v| v.is_finite()));
    let acc = sum["last"]["test_acc"].as_f64().unwrap();
    assert!(
        acc > 0.5,
        "a CNN should separate the three row patterns: {acc}"
    );

    // --resume rebuilds the same network from config.json
    let o = itlin(&["train", "--resume", s(&run), "--quiet"], tmp.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(npy_f64(&run.join("theta.npy")), theta);
}

#[test]
fn a_dense_net_trains_like_the_equal_mlp() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_data(&data, 60);
    let (a, b) = (tmp.path().join("mlp"), tmp.path().join("net"));
    let common = ["--precision", "f64", "--inner", "sgd", "--k", "3"];
    let o = train(
        &data,
        &a,
        &[&["--arch", "16,12,3", "--act", "tanh"], &common[..]].concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = train(
        &data,
        &b,
        &[&["--net", "dense(12),tanh,dense(3)"], &common[..]].concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (ta, tb) = (npy_f64(&a.join("theta.npy")), npy_f64(&b.join("theta.npy")));
    assert_eq!(ta.len(), tb.len());
    let scale = ta.iter().fold(0f64, |m, v| m.max(v.abs()));
    let diff = ta
        .iter()
        .zip(&tb)
        .fold(0f64, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        diff <= 1e-9 * scale,
        "θ after training differs by {diff:e} (scale {scale})"
    );
}

#[test]
fn bad_specs_are_one_line_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_data(&data, 30);
    for (spec, words) in [
        ("conv(2,7),relu,dense(3)", &["conv(2,7)"][..]),
        ("conv(2,3),pool(2),dense(3)", &["pool(2)"][..]),
        ("dense(12),relu,dense(4)", &["4 outputs", "3"][..]),
        ("", &["--net"][..]),
    ] {
        let run = tmp.path().join("bad");
        let o = train(&data, &run, &["--net", spec]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{spec}: accepted");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{spec}: not one line: {err}"
        );
        assert!(err.starts_with("error: "), "{spec}: {err}");
        for w in words {
            assert!(err.contains(w), "{spec}: {err:?} does not name {w:?}");
        }
        assert!(
            !run.join("config.json").exists(),
            "{spec}: wrote a run directory"
        );
    }
    // --net replaces --arch / --act
    let o = train(
        &data,
        &tmp.path().join("x"),
        &["--net", CNN, "--arch", "16,3"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--arch"), "{}", stderr(&o));
}
