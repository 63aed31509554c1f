//! `mpirun --oversubscribe -np R itlin train --distributed …` on this machine (feature `mpi`):
//! the distributed run equals the one-process run (θ to 1e-12 relative in f64, the same
//! evaluations), rank 0 alone writes the run directory, a distributed run resumes on another
//! number of ranks, and a rank that dies or stops makes the others stop with an error
//! instead of hanging.
//!
//! Needs `mpirun` (Debian: openmpi-bin) on the PATH; `.ci/run` installs it.

mod common;

use common::rel_err;
use itlin::data::npy::read_npy;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const ITLIN: &str = env!("CARGO_BIN_EXE_itlin");

/// The flags of a small run on the embedded digits: 300 training rows (the rest, 9,700, is
/// the test set), 30 steps, an evaluation and a checkpoint every 10.
fn small(out: &Path, steps: &str) -> Vec<String> {
    [
        "train",
        "--n-train",
        "300",
        "--arch",
        "784,16,10",
        "--act",
        "tanh",
        "--k",
        "7",
        "--batch",
        "25",
        "--lr",
        "0.1",
        "--momentum",
        "0.9",
        "--schedule",
        "constant",
        "--steps",
        steps,
        "--eval-every",
        "10",
        "--probe",
        "8",
        "--precision",
        "f64",
        "--quiet",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.to_str().unwrap().to_string()])
    .collect()
}

fn mpirun(np: usize, args: &[String]) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--oversubscribe", "-np", &np.to_string(), ITLIN]);
    c.args(args);
    // OpenMPI refuses to run as root unless told (CI containers run as root)
    c.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1");
    c
}

fn run(mut c: Command) -> Output {
    let o = c.output().expect("mpirun and the itlin binary start");
    assert!(
        o.status.success(),
        "{:?} failed: {}\n{}",
        c,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn one_process(args: &[String]) -> Output {
    let mut c = Command::new(ITLIN);
    c.args(args);
    run(c)
}

fn theta(dir: &Path) -> Vec<f64> {
    read_npy::<f64>(&dir.join("theta.npy")).unwrap().data
}

fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// θ and every evaluation of `dist` match the one-process run `one`.
fn assert_like(dist: &Path, one: &Path, what: &str) {
    let e = rel_err(&theta(dist), &theta(one));
    assert!(e < 1e-12, "{what}: θ differs from one process by {e:e}");
    let (a, b) = (metrics(dist), metrics(one));
    assert_eq!(a.len(), b.len(), "{what}: evaluations");
    for (m, n) in a.iter().zip(&b) {
        assert_eq!(m["step"], n["step"]);
        for k in [
            "train_loss",
            "test_loss",
            "test_acc",
            "train_acc",
            "lin_error",
        ] {
            let (u, v) = (m[k].as_f64().unwrap(), n[k].as_f64().unwrap());
            assert!(
                (u - v).abs() <= 1e-12 * v.abs().max(1.0),
                "{what}: {k} at step {}: {u} vs {v}",
                m["step"]
            );
        }
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn two_and_three_ranks_train_like_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let one = tmp.path().join("one");
    one_process(&small(&one, "30"));
    for np in [2, 3] {
        let dir = tmp.path().join(format!("np{np}"));
        let mut args = small(&dir, "30");
        args.push("--distributed".into());
        let out = run(mpirun(np, &args));
        assert_like(&dir, &one, &format!("-np {np}"));
        // rank 0 alone writes: the same files as one process, one summary on stdout
        assert_eq!(listing(&dir), listing(&one));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.matches("wall time").count(), 1, "{stdout}");
    }
}

#[test]
fn a_distributed_run_resumes_on_another_number_of_ranks() {
    let tmp = tempfile::tempdir().unwrap();
    let one = tmp.path().join("one");
    one_process(&small(&one, "40"));
    // 20 steps on 2 ranks, then 20 more, resumed on 3 ranks
    let dir = tmp.path().join("dist");
    let mut args = small(&dir, "20");
    args.push("--distributed".into());
    run(mpirun(2, &args));
    let cfg = dir.join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    assert_eq!(c["args"]["distributed"], true);
    c["args"]["steps"] = serde_json::json!(40);
    std::fs::write(&cfg, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    let resume: Vec<String> = ["train", "--resume", dir.to_str().unwrap(), "--quiet"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    run(mpirun(3, &resume));
    assert_like(&dir, &one, "resumed on 3 ranks");
}

/// The children of process `pid` (the ranks mpirun started).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // pid (comm) state ppid …: the comm may hold spaces, so split after the last ')'
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        let ppid = after.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        if ppid == Some(pid) && stat.contains("(itlin)") {
            out.push(p);
        }
    }
    out
}

/// Starts a long distributed run, waits until its ranks are training, sends `signal` to the
/// last rank, and returns mpirun's output (or panics when it has not ended by `limit`).
fn disturb(signal: &str, extra: &[&str], limit: Duration) -> (Output, Duration) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut args = small(&dir, "1000000");
    args.push("--distributed".into());
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut c = mpirun(2, &args);
    let mut child: Child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // training has begun once the first evaluation is written
    let t = Instant::now();
    let metrics = dir.join("metrics.jsonl");
    while std::fs::metadata(&metrics).map_or(true, |m| m.len() == 0) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the run did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ranks = children(child.id());
    assert_eq!(ranks.len(), 2, "mpirun's ranks: {ranks:?}");
    let victim = *ranks.iter().max().unwrap();
    let t = Instant::now();
    Command::new("kill")
        .args([signal, &victim.to_string()])
        .status()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = Command::new("kill")
                .args(["-KILL", &victim.to_string()])
                .status();
            panic!("the run did not stop within {limit:?} after {signal} to one rank");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = t.elapsed();
    // a stopped rank is killed by mpirun; make sure nothing is left behind
    let _ = Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status();
    (child.wait_with_output().unwrap(), elapsed)
}

#[test]
fn a_rank_that_dies_stops_the_run() {
    let (out, _) = disturb("-KILL", &[], Duration::from_secs(60));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("signal 9") || err.contains("Killed"), "{err}");
}

#[test]
fn a_rank_that_stops_calling_times_out_with_a_clear_error() {
    let (out, elapsed) = disturb("-STOP", &["--comm-timeout", "2"], Duration::from_secs(60));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error: communication error: rank 0:")
            && err.contains("did not complete within 2.0 s"),
        "{err}"
    );
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
}

#[test]
fn without_mpirun_a_distributed_run_is_one_rank() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, alone): (PathBuf, PathBuf) = (tmp.path().join("one"), tmp.path().join("alone"));
    one_process(&small(&one, "10"));
    let mut args = small(&alone, "10");
    args.push("--distributed".into());
    one_process(&args);
    assert_eq!(theta(&alone), theta(&one));
}

#[test]
fn mpirun_without_distributed_is_refused() {
    // R independent runs racing on one run directory: refused in one line by every rank
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let o = mpirun(2, &small(&dir, "10")).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("add --distributed"), "{err}");
    assert!(!dir.join("theta.npy").exists());
}

#[test]
fn gauss_newton_cg_over_two_ranks_equals_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let gn = |out: &Path| {
        let mut a = small(out, "6");
        a.extend(
            [
                "--inner",
                "gn",
                "--loss",
                "mse",
                "--damping",
                "1e-2",
                "--gn-form",
                "cg",
                "--precond",
                "nystrom:40",
                "--gn-batch",
                "120",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        a
    };
    let one = tmp.path().join("one");
    one_process(&gn(&one));
    let dir = tmp.path().join("np2");
    let mut args = gn(&dir);
    args.push("--distributed".into());
    run(mpirun(2, &args));
    // two different preconditioners (the one-process Nyström eigen-factor, the ranks'
    // landmark Woodbury form), both CG to a backward error of 8ε: δ agrees to about κε
    let e = rel_err(&theta(&dir), &theta(&one));
    eprintln!("GN-CG on 2 ranks vs one process: θ relative difference {e:e}");
    assert!(e < 1e-11, "θ differs from one process by {e:e}");
}
