//! `itlin train --inner gn --gn-form cg --precond nystrom:M`: the matrix-free dual CG run
//! follows the dense dual run (f64, both losses, re-linearising), and bad spellings are
//! one-line errors with exit status 2.

#[path = "common/cli.rs"]
mod cli;
use cli::{itlin, s, write_data};

fn last_train_loss(run: &std::path::Path) -> f64 {
    let text = std::fs::read_to_string(run.join("summary.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["last"]["train_loss"].as_f64().expect("train_loss")
}

#[test]
fn nystrom_cg_run_follows_the_dense_dual_run() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let data = root.join("data");
    write_data(&data, 40);
    for loss in ["mse", "ce"] {
        let mut losses = Vec::new();
        for (name, extra) in [
            ("dual", &["--gn-form", "dual"][..]),
            (
                "nystrom",
                &["--gn-form", "cg", "--precond", "nystrom:30"][..],
            ),
            (
                "pivchol",
                &["--gn-form", "cg", "--precond", "pivchol:30"][..],
            ),
        ] {
            let run = root.join(format!("{loss}-{name}"));
            let mut args = vec![
                "train",
                "--data",
                s(&data),
                "--arch",
                "16,12,3",
                "--inner",
                "gn",
                "--loss",
                loss,
                "--damping",
                "1e-2",
                "--gn-batch",
                "40",
                "--k",
                "2",
                "--steps",
                "4",
                "--precision",
                "f64",
                "--probe",
                "4",
                "--out",
                s(&run),
                "--quiet",
            ];
            args.extend_from_slice(extra);
            let out = itlin(&args, root);
            assert!(
                out.status.success(),
                "{loss} {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            losses.push(last_train_loss(&run));
        }
        for l in &losses[1..] {
            assert!(
                (l - losses[0]).abs() <= 1e-8 * losses[0].abs(),
                "{loss}: {losses:?}"
            );
        }
    }
}

#[test]
fn bad_gn_solver_flags_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, code) in [
        (
            &[
                "train",
                "--inner",
                "gn",
                "--gn-form",
                "cg",
                "--precond",
                "nystrom",
            ][..],
            2,
        ),
        (
            &[
                "train",
                "--inner",
                "gn",
                "--gn-form",
                "cg",
                "--precond",
                "nystrom:-4",
            ][..],
            2,
        ),
        (
            &[
                "train",
                "--inner",
                "gn",
                "--gn-form",
                "cg",
                "--precond",
                "lu:4",
            ][..],
            2,
        ),
        (&["train", "--inner", "gn", "--gn-form", "qr"][..], 2),
        // a preconditioner without the CG form: a configuration error
        (
            &[
                "train",
                "--inner",
                "gn",
                "--precond",
                "nystrom:8",
                "--steps",
                "1",
            ][..],
            1,
        ),
    ] {
        let out = itlin(args, tmp.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
}
