//! End-to-end tests of the `itlin` binary on a tiny synthetic IDX directory written here:
//! the run directory and its JSON fields, resume, and one-line errors that leave earlier
//! run files intact.

use std::path::{Path, PathBuf};

#[path = "common/cli.rs"]
mod cli;
use cli::{itlin, s, snapshot, write_data};

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    run: PathBuf,
}

fn fixture_with_run() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let data = root.join("data");
    write_data(&data, 60);
    let run = root.join("run");
    let out = itlin(
        &[
            "train",
            "--data",
            s(&data),
            "--arch",
            "16,12,3",
            "--epochs",
            "3",
            "--batch",
            "10",
            "--k",
            "4",
            "--lr",
            "0.1",
            "--probe",
            "6",
            "--out",
            s(&run),
            "--quiet",
        ],
        &root,
    );
    assert!(
        out.status.success(),
        "train failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("test accuracy"), "summary table: {stdout}");
    Fixture {
        _tmp: tmp,
        root,
        data,
        run,
    }
}

#[test]
fn train_writes_a_complete_run_directory() {
    let f = fixture_with_run();
    for name in [
        "config.json",
        "metrics.jsonl",
        "summary.json",
        "theta.npy",
        "checkpoint.bin",
        "loss.svg",
        "loss.png",
        "accuracy.svg",
        "accuracy.png",
        "kernel_distance.svg",
        "kernel_distance.png",
    ] {
        let p = f.run.join(name);
        assert!(
            std::fs::metadata(&p).map(|m| m.len() > 0).unwrap_or(false),
            "missing or empty {name}"
        );
    }
    let png = std::fs::read(f.run.join("loss.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let npy = std::fs::read(f.run.join("theta.npy")).unwrap();
    assert_eq!(&npy[..6], b"\x93NUMPY");
    // 16·12 + 12 + 12·3 + 3 = 243 parameters
    let header = String::from_utf8_lossy(&npy[..128]);
    assert!(header.contains("(243,)"), "{header}");

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(f.run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "one evaluation per epoch");
    for m in &lines {
        for key in [
            "step",
            "epoch",
            "relinearisations",
            "train_loss",
            "train_acc",
            "test_loss",
            "test_acc",
            "seconds",
            "kernel_distance",
        ] {
            assert!(!m[key].is_null(), "metrics line lacks {key}: {m}");
        }
    }
    let last = lines.last().unwrap();
    assert_eq!(last["step"], 18);
    assert_eq!(last["relinearisations"], 4);
    assert!(last["test_acc"].as_f64().unwrap() > 0.8, "{last}");

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.run.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["steps"], 18);
    assert_eq!(summary["n_params"], 243);
    assert_eq!(summary["termination"], "Completed");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["args"]["k"], "4");
    assert_eq!(config["train"]["period"]["Steps"], 4);
    let _ = &f.data;
}

#[test]
fn resume_of_a_finished_run_keeps_its_metrics() {
    let f = fixture_with_run();
    let before = std::fs::read_to_string(f.run.join("metrics.jsonl")).unwrap();
    let out = itlin(&["train", "--resume", s(&f.run), "--quiet"], &f.root);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = std::fs::read_to_string(f.run.join("metrics.jsonl")).unwrap();
    assert_eq!(after, before, "a finished run has nothing to add");
}

/// Each bad input: non-zero exit, exactly one line on stderr containing `needle`, and the
/// earlier run directory byte-for-byte unchanged.
#[test]
fn bad_inputs_are_one_line_errors_and_lose_nothing() {
    let f = fixture_with_run();
    let before = snapshot(&f.run);
    let bad_dir = f.root.join("bad");
    write_data(&bad_dir, 60);
    let imgs = bad_dir.join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&imgs).unwrap();
    std::fs::write(&imgs, &bytes[..bytes.len() - 5]).unwrap();
    let data = s(&f.data).to_string();
    let fresh = s(&f.root.join("fresh")).to_string();
    let nowhere = s(&f.root.join("nowhere")).to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "train", "--data", &data, "--arch", "10,8,3", "--out", &fresh,
            ],
            "--arch",
        ),
        (
            vec![
                "train", "--data", &data, "--arch", "16,8,4", "--out", &fresh,
            ],
            "--arch",
        ),
        (
            vec!["train", "--data", "/nonexistent/dir", "--out", &fresh],
            "nonexistent",
        ),
        (
            vec![
                "train",
                "--data",
                s(&bad_dir),
                "--arch",
                "16,8,3",
                "--out",
                &fresh,
            ],
            "train-images",
        ),
        (
            vec![
                "train", "--data", &data, "--arch", "16,8,3", "--k", "0", "--out", &fresh,
            ],
            "period",
        ),
        (
            vec![
                "train", "--data", &data, "--arch", "16,8,3", "--lr=-1", "--out", &fresh,
            ],
            "learning rate",
        ),
        (
            vec![
                "train", "--data", &data, "--arch", "16,8,3", "--act", "swish", "--out", &fresh,
            ],
            "activation",
        ),
        (
            vec![
                "train", "--data", &data, "--arch", "16,8,3", "--loss", "hinge", "--out", &fresh,
            ],
            "loss",
        ),
        (vec!["train", "--precision", "f16"], "f16"),
        (vec!["train", "--bogus-flag"], "bogus"),
        (
            vec![
                "train",
                "--data",
                &data,
                "--arch",
                "16,400000000,3",
                "--out",
                &fresh,
            ],
            "lower",
        ),
        (
            vec![
                "train",
                "--data",
                &data,
                "--arch",
                "16,8,3",
                "--out",
                s(&f.run),
            ],
            "not empty",
        ),
        (vec!["train", "--resume", &nowhere], "config.json"),
    ];
    // without the feature `--device cuda` is a bad flag; with it, tests/cuda_train.rs checks it
    #[cfg(not(feature = "cuda"))]
    let cases = {
        let mut cases = cases;
        cases.push((
            vec![
                "train", "--data", &data, "--arch", "16,8,3", "--device", "cuda", "--out", &fresh,
            ],
            "no CUDA support",
        ));
        cases
    };
    for (args, needle) in cases {
        let out = itlin(&args, &f.root);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: not one line: {err}"
        );
        assert!(err.contains(needle), "{args:?}: '{needle}' not in: {err}");
        assert_eq!(snapshot(&f.run), before, "{args:?} changed the earlier run");
        assert!(
            !f.root.join("fresh").exists(),
            "{args:?} wrote its run directory"
        );
    }
}

#[test]
fn help_shows_defaults() {
    let out = itlin(&["train", "--help"], Path::new("."));
    assert!(out.status.success());
    let h = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--data",
        "--arch",
        "--act",
        "--loss",
        "--k",
        "--inner",
        "--lr",
        "--damping",
        "--batch",
        "--epochs",
        "--seed",
        "--precision",
        "--device",
        "--out",
        "--resume",
    ] {
        assert!(h.contains(flag), "--help lacks {flag}");
    }
    assert!(h.contains("[default: mnist]"), "{h}");
}
