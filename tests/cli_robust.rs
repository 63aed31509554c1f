//! The failures of a robustness probe of the `itlin` binary, each reproduced on a tiny
//! synthetic IDX directory: an interrupted `--force` run over an earlier one, `--resume`
//! from another working directory, divergence (non-finite and exploded), a flipped bit in the
//! checkpoint, a torn last line of `metrics.jsonl`, `--gn-batch` larger than the data and a
//! Gauss-Newton step over the memory budget, and mutated `config.json` files.

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "common/cli.rs"]
mod cli;
use cli::{BIN, itlin, itlin_env, s, snapshot, write_data};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The flags of a small run (with `--epochs 3`: 18 steps, an evaluation and a checkpoint
/// every 6).
fn small<'a>(data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "train", "--data", data, "--arch", "16,12,3", "--batch", "10", "--probe", "6", "--out",
        out, "--quiet",
    ]
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let data = root.join("data");
    write_data(&data, 60);
    Fixture {
        _tmp: tmp,
        root,
        data,
    }
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The seed in a run's config.json, if it has one.
fn seed_of(run: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(run.join("config.json")).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?["args"]["seed"].as_u64()
}

/// The values of a 1-D little-endian f32 / f64 `.npy` file.
fn npy_values(path: &Path) -> Vec<f64> {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..6], b"\x93NUMPY");
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    let header = String::from_utf8_lossy(&b[10..10 + hlen]);
    let data = &b[10 + hlen..];
    if header.contains("<f4") {
        data.chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
            .collect()
    } else {
        assert!(header.contains("<f8"), "{header}");
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

fn make_run(f: &Fixture, name: &str, extra: &[&str]) -> PathBuf {
    let run = f.root.join(name);
    let (d, r) = (s(&f.data).to_string(), s(&run).to_string());
    let mut args = small(&d, &r);
    if !extra.contains(&"--steps") {
        args.extend_from_slice(&["--epochs", "3"]);
    }
    args.extend_from_slice(extra);
    let out = itlin(&args, &f.root);
    assert!(out.status.success(), "train failed: {}", stderr(&out));
    run
}

/// An interrupted `--force` run over an earlier run never leaves a mix of the two: killed at
/// any moment, the directory is the earlier run byte for byte (and unmarked), or it is
/// marked UNFINISHED without a summary, and once it holds the new config.json none of the
/// earlier run's results are beside it; resumed, it finishes as the new run alone.
#[test]
fn an_interrupted_force_run_is_never_a_mix_of_two_runs() {
    let f = fixture();
    let run = make_run(&f, "run", &[]);
    let old = snapshot(&run);
    let old_theta = std::fs::read(run.join("theta.npy")).unwrap();
    let (d, r) = (s(&f.data).to_string(), s(&run).to_string());
    // a longer run of another configuration (seed 5, 600 steps)
    let mut args = small(&d, &r);
    args.extend_from_slice(&["--force", "--epochs", "100", "--seed", "5"]);
    for delay_ms in [0u64, 5, 30, 10_000] {
        let mut child = Command::new(BIN)
            .args(&args)
            .current_dir(&f.root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        // 10_000: wait until the new run has made an evaluation and a checkpoint, then kill
        // it mid-run
        loop {
            let evaluated = std::fs::read_to_string(run.join("metrics.jsonl"))
                .is_ok_and(|m| !m.is_empty())
                && run.join("checkpoint.bin").exists()
                && seed_of(&run) == Some(5);
            if t.elapsed() >= Duration::from_millis(delay_ms) || (delay_ms > 1000 && evaluated) {
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        let marked = run.join("UNFINISHED").exists();
        if !marked {
            let now = snapshot(&run);
            let finished_new = run.join("summary.json").exists() && seed_of(&run) == Some(5);
            assert!(
                now == old || finished_new,
                "killed after {delay_ms} ms: unmarked, yet neither the earlier run nor a finished new one"
            );
        } else {
            assert!(
                !run.join("summary.json").exists(),
                "killed after {delay_ms} ms: marked unfinished but holds a summary"
            );
            // the new config.json is written once the earlier run's files are all gone
            if seed_of(&run) == Some(5) {
                for name in [
                    "loss.svg",
                    "loss.png",
                    "accuracy.png",
                    "kernel_distance.svg",
                ] {
                    assert!(
                        !run.join(name).exists(),
                        "killed after {delay_ms} ms: the earlier run's {name} is beside the new config"
                    );
                }
                if let Ok(t) = std::fs::read(run.join("theta.npy")) {
                    assert_ne!(
                        t, old_theta,
                        "the earlier run's theta.npy is beside the new config"
                    );
                }
            }
        }
        if delay_ms > 1000 {
            assert!(marked, "the mid-run kill left no UNFINISHED marker");
            // the kill came after the first evaluation: resume finishes the new run alone
            let out = itlin(&["train", "--resume", &r, "--quiet"], &f.root);
            assert!(out.status.success(), "resume: {}", stderr(&out));
            assert!(!run.join("UNFINISHED").exists());
            let summary = json(&run.join("summary.json"));
            assert_eq!(summary["termination"], "Completed");
            assert_eq!(summary["steps"], 600);
            let steps: Vec<u64> = std::fs::read_to_string(run.join("metrics.jsonl"))
                .unwrap()
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                        .as_u64()
                        .unwrap()
                })
                .collect();
            assert_eq!(steps, (1..=100).map(|e| 6 * e).collect::<Vec<_>>());
        }
    }
}

/// `--data` given as a relative path is stored absolute, so `--resume` works from another
/// working directory.
#[test]
fn resume_works_from_another_working_directory() {
    let f = fixture();
    let run = f.root.join("run");
    let mut args = small("data", "run");
    args.extend_from_slice(&["--epochs", "3"]);
    let out = itlin(&args, &f.root);
    assert!(out.status.success(), "{}", stderr(&out));
    let data = json(&run.join("config.json"))["args"]["data"].clone();
    assert_eq!(
        Path::new(data.as_str().unwrap()),
        std::fs::canonicalize(&f.data).unwrap()
    );
    let elsewhere = f.root.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    // a checkpoint mid-run: resume trains the rest from the other directory
    let cfg = run.join("config.json");
    let mut c = json(&cfg);
    c["args"]["epochs"] = serde_json::json!(4.0);
    std::fs::write(&cfg, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    let out = itlin(&["train", "--resume", s(&run), "--quiet"], &elsewhere);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&run.join("summary.json"))["steps"], 24);
}

/// One diverging run: exit status 3, one line on stderr with the step, the divergence in
/// summary.json (step, quantity, value), a finite theta.npy, and no placeholder: the last
/// evaluation shown is a real one (of the kept θ, or of an earlier state when the kept one
/// has no finite loss), or there is none.
fn check_diverges(f: &Fixture, name: &str, extra: &[&str], quantity: &str) -> serde_json::Value {
    let run = f.root.join(name);
    let (d, r) = (s(&f.data).to_string(), s(&run).to_string());
    let mut args = small(&d, &r);
    args.extend_from_slice(&["--epochs", "3"]);
    args.extend_from_slice(extra);
    let out = itlin(&args, &f.root);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{extra:?}: {err}");
    let last_line = err.trim_end().lines().last().unwrap_or_default();
    assert!(
        last_line.starts_with("error: training diverged at step "),
        "{extra:?}: {err}"
    );
    let summary = json(&run.join("summary.json"));
    assert_eq!(summary["termination"], "Diverged", "{extra:?}");
    let dv = &summary["divergence"];
    assert!(dv["step"].as_u64().unwrap() >= 1, "{extra:?}: {dv}");
    assert!(
        dv["quantity"].as_str().unwrap().contains(quantity),
        "{extra:?}: {dv}"
    );
    assert!(!dv["value"].is_null(), "{extra:?}: {dv}");
    let kept = dv["kept_step"].as_u64().unwrap();
    assert_eq!(summary["steps"].as_u64().unwrap(), kept, "{extra:?}");
    let theta = npy_values(&run.join("theta.npy"));
    assert_eq!(theta.len(), 243);
    assert!(
        theta.iter().all(|v| v.is_finite()),
        "{extra:?}: θ not finite"
    );
    if !summary["last"].is_null() {
        let last = &summary["last"];
        assert!(last["step"].as_u64().unwrap() <= kept, "{extra:?}");
        assert!(last["train_loss"].as_f64().unwrap().is_finite());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("divergence"), "{extra:?}: {stdout}");
    assert!(!run.join("UNFINISHED").exists(), "a diverged run has ended");
    summary
}

#[test]
fn divergence_before_the_first_evaluation_is_reported() {
    let f = fixture();
    // θ becomes infinite in the first update: θ₀ kept, and evaluated
    let sm = check_diverges(&f, "a", &["--lr", "1e308"], "θ");
    assert_eq!(sm["divergence"]["step"], 1);
    assert_eq!(sm["last"]["step"], 0);
    assert_eq!(sm["last"]["dist_init"], 0.0);
    check_diverges(&f, "b", &["--loss", "mse", "--lr", "1e4", "--k", "1"], "");
    check_diverges(
        &f,
        "c",
        &["--loss", "mse", "--inner", "spectral", "--lr", "1e6"],
        "",
    );
}

#[test]
fn exploding_but_finite_runs_are_reported() {
    let f = fixture();
    for (name, extra, quantity) in [
        (
            "a",
            &["--lr", "1e6", "--precision", "f64"][..],
            "train loss",
        ),
        ("b", &["--inner", "adam", "--lr", "1e6"], "train loss"),
        (
            "c",
            &["--inner", "gn", "--damping", "1e-30", "--gn-batch", "20"],
            "",
        ),
    ] {
        let sm = check_diverges(&f, name, extra, quantity);
        let dv = &sm["divergence"];
        if dv["kind"] == "Exploded" {
            assert!(dv["value"].as_f64().unwrap() > dv["limit"].as_f64().unwrap());
        }
    }
}

/// A flipped bit in checkpoint.bin: `--resume` refuses it in one line naming the file and
/// changes nothing.
#[test]
fn a_flipped_checkpoint_bit_is_refused_on_resume() {
    let f = fixture();
    let run = make_run(&f, "run", &[]);
    let ck = run.join("checkpoint.bin");
    let mut b = std::fs::read(&ck).unwrap();
    let at = b.len() - 100;
    b[at] ^= 0x10;
    std::fs::write(&ck, &b).unwrap();
    resume_is_refused(&f, &run, &["checkpoint.bin", "checksum"]);
}

/// `--resume RUN` fails with one line that names every one of `words`, and leaves the run
/// directory byte-identical.
fn resume_is_refused(f: &Fixture, run: &Path, words: &[&str]) {
    let before = snapshot(run);
    let out = itlin(&["train", "--resume", s(run), "--quiet"], &f.root);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(words.iter().all(|w| err.contains(w)), "{err}");
    assert_eq!(snapshot(run), before);
}

/// A torn last line of metrics.jsonl is dropped on resume (with a note); a corrupt line
/// elsewhere is still an error that changes nothing.
#[test]
fn a_torn_last_metrics_line_is_dropped_on_resume() {
    let f = fixture();
    let run = make_run(&f, "run", &[]);
    let metrics = run.join("metrics.jsonl");
    let good = std::fs::read_to_string(&metrics).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let torn = format!("{good}{}", &lines[0][..lines[0].len() / 2]);
    std::fs::write(&metrics, &torn).unwrap();
    let out = itlin(&["train", "--resume", s(&run), "--quiet"], &f.root);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("torn"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&metrics).unwrap(), good);

    let corrupt = format!(
        "{}\n{{\"step\": oops}}\n{}\n",
        lines[0],
        lines[1..].join("\n")
    );
    std::fs::write(&metrics, &corrupt).unwrap();
    resume_is_refused(&f, &run, &["metrics.jsonl", "line 2"]);
}

/// `--gn-batch` above the training set is clamped with a note; a Gauss-Newton step over the
/// memory budget is refused before anything is written, saying what it needs and what fits.
#[test]
fn gn_batch_is_clamped_and_planned() {
    let f = fixture();
    let run = make_run(&f, "run", &["--inner", "gn", "--gn-batch", "1500"]);
    let cfg = json(&run.join("config.json"));
    assert_eq!(cfg["train"]["gn_batch"], 60);
    let big = f.root.join("big");
    write_data(&big, 600);
    let out_dir = f.root.join("fresh");
    let args = [
        "train",
        "--data",
        s(&big),
        "--arch",
        "16,12,3",
        "--inner",
        "gn",
        "--gn-batch",
        "1500",
        "--steps",
        "2",
        "--out",
        s(&out_dir),
        "--quiet",
    ];
    // CE, 600 rows × 3 outputs: the LU of an 1800² system, 3 · 1800² · 4 bytes ≈ 39 MB
    let out = itlin_env(&args, &f.root, &[("ITLIN_MEMORY_BUDGET_MB", "16")]);
    let err = stderr(&out);
    assert!(!out.status.success());
    let lines: Vec<&str> = err.trim_end().lines().collect();
    assert!(
        lines[0].contains("--gn-batch 1500") && lines[0].contains("600 rows"),
        "{err}"
    );
    assert!(
        lines[1].contains("LU of the 1800×1800 dual system") && lines[1].contains("at most"),
        "{err}"
    );
    assert_eq!(lines.len(), 2, "{err}");
    assert!(!out_dir.exists(), "a refused run wrote its directory");
}

fn proptest_config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(0x0c0f),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Runs `itlin train --resume dir`, killing it after 60 s (a hang fails the test).
fn resume_bounded(dir: &Path, cwd: &Path) -> Output {
    let mut child = Command::new(BIN)
        .args(["train", "--resume", s(dir), "--quiet"])
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("--resume hung on a mutated config.json");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

/// A mutated config.json (bytes changed, cut, or replaced): `--resume` finishes or fails
/// with one line, never panics or hangs; a file that does not parse is named.
#[test]
fn mutated_config_files_never_crash_resume() {
    let f = fixture();
    let run = make_run(&f, "run", &["--steps", "4", "--eval-every", "2"]);
    let strategy = (
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        proptest::option::of(any::<prop::sample::Index>()),
        proptest::option::weighted(0.15, proptest::collection::vec(any::<u8>(), 0..200)),
    );
    let mut runner = proptest::test_runner::TestRunner::new(proptest_config(24));
    runner
        .run(&strategy, |(edits, cut, garbage)| {
            let case = tempfile::tempdir_in(&f.root).unwrap();
            for e in std::fs::read_dir(&run).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), case.path().join(e.file_name())).unwrap();
            }
            let cfg = case.path().join("config.json");
            let mut bytes = std::fs::read(&cfg).unwrap();
            for (at, v) in &edits {
                let i = at.index(bytes.len());
                bytes[i] = *v;
            }
            if let Some(c) = cut {
                bytes.truncate(c.index(bytes.len()));
            }
            if let Some(g) = garbage {
                bytes = g;
            }
            std::fs::write(&cfg, &bytes).unwrap();
            let out = resume_bounded(case.path(), &f.root);
            let err = stderr(&out);
            prop_assert!(!err.contains("panicked"), "{}", err);
            prop_assert!(
                matches!(out.status.code(), Some(0 | 1 | 3)),
                "{:?}: {}",
                out.status,
                err
            );
            if !out.status.success() {
                let last = err.trim_end().lines().last().unwrap_or_default();
                prop_assert!(last.starts_with("error: "), "{}", err);
                prop_assert!(
                    err.trim_end()
                        .lines()
                        .all(|l| l.starts_with("note: ") || l.starts_with("error: ")),
                    "{}",
                    err
                );
                if serde_json::from_slice::<serde_json::Value>(&bytes).is_err() {
                    prop_assert!(last.contains("config.json"), "{}", err);
                }
            }
            Ok(())
        })
        .unwrap();
}

/// Widths whose parameter count overflows (2⁶²: the network's offsets would wrap) are refused
/// in one line before the network is built or anything is written.
#[test]
fn absurd_widths_are_refused_before_anything_is_built() {
    let f = fixture();
    let out_dir = f.root.join("fresh");
    for arch in ["16,4611686018427387904,3", "16,1152921504606846976,3"] {
        let out = itlin(
            &[
                "train",
                "--data",
                s(&f.data),
                "--arch",
                arch,
                "--out",
                s(&out_dir),
            ],
            &f.root,
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{arch}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{arch}: {err}");
        assert!(err.contains("lower the widths in --arch"), "{arch}: {err}");
        assert!(!out_dir.exists(), "{arch}: wrote its run directory");
    }
}
