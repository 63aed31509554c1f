//! Helpers for the tests that run the `itlin` binary: a tiny synthetic IDX data directory,
//! running the binary, and snapshots of a run directory. Included with
//! `#[path = "common/cli.rs"] mod cli;` by the CLI test files only.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_itlin");

/// Writes an uncompressed IDX file of u8 values.
pub fn write_idx(path: &Path, dims: &[usize], data: &[u8]) {
    let mut b = vec![0u8, 0, 0x08, dims.len() as u8];
    for &d in dims {
        b.extend_from_slice(&(d as u32).to_be_bytes());
    }
    b.extend_from_slice(data);
    std::fs::write(path, b).unwrap();
}

/// `n` 4×4 "images" of 3 classes (class k lights row k, plus deterministic noise) for
/// training and 30 for testing, as the four standard IDX files in `dir` (created).
pub fn write_data(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let make = |n: usize, salt: usize| {
        let mut img = Vec::new();
        let mut lab = Vec::new();
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
    let (xi, yi) = make(n, 0);
    let (xt, yt) = make(30, 1);
    write_idx(&dir.join("train-images-idx3-ubyte"), &[n, 4, 4], &xi);
    write_idx(&dir.join("train-labels-idx1-ubyte"), &[n], &yi);
    write_idx(&dir.join("t10k-images-idx3-ubyte"), &[30, 4, 4], &xt);
    write_idx(&dir.join("t10k-labels-idx1-ubyte"), &[30], &yt);
}

/// Runs the binary in `cwd` with extra environment variables.
pub fn itlin_env(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).current_dir(cwd);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run itlin")
}

/// Runs the binary in `cwd`.
pub fn itlin(args: &[&str], cwd: &Path) -> Output {
    itlin_env(args, cwd, &[])
}

/// A path as `&str`.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every file of `dir` with its bytes, sorted by name.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}
