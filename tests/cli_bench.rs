//! `itlin bench` end to end on a tiny MLP: every op reported once per size and dtype with the
//! peer script's field names, and bad flags rejected with one line.

use std::process::Command;

fn itlin(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_itlin"))
        .args(args)
        .output()
        .expect("itlin runs")
}

#[test]
fn bench_json_reports_every_op() {
    let out = itlin(&[
        "bench",
        "--arch",
        "6,5,3",
        "--n",
        "4,7",
        "--precision",
        "f32,f64",
        "--reps",
        "1",
        "--ceiling-mb",
        "8",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let ops: Vec<&serde_json::Value> = lines.iter().filter(|v| v.get("op").is_some()).collect();
    assert_eq!(ops.len(), 2 * 2 * 11, "11 ops × 2 sizes × 2 dtypes: {text}");
    for v in &ops {
        let t = v["median_s"].as_f64().unwrap();
        assert!(t.is_finite() && t > 0.0, "{v}");
        assert!(v["N"].as_u64().is_some() && v["dtype"].is_string());
        assert!(v["rate"].as_f64().unwrap() > 0.0 && v["ceiling"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(
        lines
            .iter()
            .filter(|v| v.get("ceiling").is_some() && v.get("op").is_none())
            .count(),
        8
    );
}

#[test]
fn bench_rejects_bad_flags_with_one_line() {
    for args in [
        &["bench", "--ops", "nope"][..],
        &["bench", "--n", "0"],
        &["bench", "--arch", "5"],
        &["bench", "--act", "sigmoidish"],
    ] {
        let out = itlin(args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}
