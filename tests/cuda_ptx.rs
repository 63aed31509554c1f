//! Every kernel family compiles with NVRTC to PTX for `compute_90` and assembles with
//! `ptxas -arch=sm_90` — no GPU needed. Prints registers, spills and stack per entry point.
//!
//! Skips (with the reason) when NVRTC cannot be loaded, unless `ITLIN_REQUIRE_NVRTC=1`;
//! `ptxas` is taken from `ITLIN_PTXAS`, else from `PATH`, else that half is skipped (unless
//! NVRTC is required, in which case a missing ptxas fails too). With `ITLIN_PTX_DIR=dir` the
//! PTX of every family is also written there.
#![cfg(feature = "cuda")]

use itlin::kernels::cuda::{
    Family, Output, compile, compile_source, nvrtc_available, nvrtc_version,
};
use std::path::PathBuf;
use std::process::Command;

fn required() -> bool {
    std::env::var("ITLIN_REQUIRE_NVRTC").is_ok_and(|v| v == "1")
}

/// `Some(())` when NVRTC loads; `None` (after printing why) when the test should skip.
fn nvrtc_or_skip() -> Option<()> {
    match nvrtc_available() {
        Ok(()) => Some(()),
        Err(e) if required() => panic!("ITLIN_REQUIRE_NVRTC=1 but {e}"),
        Err(e) => {
            println!("skipping: {e}");
            None
        }
    }
}

fn find_ptxas() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ITLIN_PTXAS") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("ptxas"))
        .find(|p| p.is_file())
}

/// One `ptxas -v` resource line per kernel: (function, registers, spill stores, spill loads,
/// stack bytes), read from lines such as
/// `ptxas info    : Function properties for j_v_f32` / `0 bytes stack frame, 0 bytes spill
/// stores, 0 bytes spill loads` / `ptxas info    : Used 30 registers, ...`.
fn resource_table(log: &str) -> Vec<(String, u32, u32, u32, u32)> {
    let mut rows = Vec::new();
    let mut current: Option<String> = None;
    let (mut stack, mut stores, mut loads) = (0, 0, 0);
    let num_before = |s: &str, key: &str| -> Option<u32> {
        let i = s.find(key)?;
        s[..i].split_whitespace().last()?.parse().ok()
    };
    for line in log.lines() {
        if let Some(i) = line.find("Function properties for ") {
            current = Some(
                line[i + "Function properties for ".len()..]
                    .trim()
                    .to_string(),
            );
        } else if line.contains("bytes stack frame") {
            stack = num_before(line, "bytes stack frame").unwrap_or(0);
            stores = num_before(line, "bytes spill stores").unwrap_or(0);
            loads = num_before(line, "bytes spill loads").unwrap_or(0);
        } else if line.contains("Used") && line.contains("registers") {
            let regs = num_before(line, "registers").unwrap_or(0);
            if let Some(name) = current.take() {
                rows.push((name, regs, stores, loads, stack));
            }
        }
    }
    rows
}

#[test]
fn every_family_compiles_to_ptx_and_assembles_for_sm_90() {
    let Some(()) = nvrtc_or_skip() else { return };
    let (major, minor) = nvrtc_version().expect("NVRTC loads, so its version is readable");
    println!("NVRTC {major}.{minor}");
    let ptxas = find_ptxas();
    if ptxas.is_none() {
        assert!(
            !required(),
            "ITLIN_REQUIRE_NVRTC=1 but no ptxas (set ITLIN_PTXAS or put ptxas on PATH)"
        );
        println!("skipping the ptxas half: no ptxas (set ITLIN_PTXAS or put it on PATH)");
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut table = Vec::new();
    for family in Family::ALL {
        let ptx = compile(family, "compute_90", Output::Ptx).unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8(ptx).expect("PTX is text");
        for suffix in ["_f32", "_f64"] {
            assert!(
                text.contains(suffix),
                "family {} has no {suffix} entry point",
                family.name()
            );
        }
        if let Some(dir) = std::env::var_os("ITLIN_PTX_DIR") {
            // Keep the PTX for reading (16-byte loads are `ld.global.*.v4.f32` / `.v2.f64`).
            std::fs::create_dir_all(&dir).expect("create ITLIN_PTX_DIR");
            std::fs::write(
                PathBuf::from(dir).join(format!("{}.ptx", family.name())),
                &text,
            )
            .expect("write PTX");
        }
        let Some(ptxas) = &ptxas else { continue };
        let file = dir.path().join(format!("{}.ptx", family.name()));
        std::fs::write(&file, &text).expect("write PTX");
        let out = Command::new(ptxas)
            .args(["-arch=sm_90", "-v", "-o"])
            .arg(dir.path().join(format!("{}.cubin", family.name())))
            .arg(&file)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", ptxas.display()));
        let log = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "ptxas failed on family {}:\n{log}",
            family.name()
        );
        assert!(
            !log.contains("error"),
            "ptxas reported an error for family {}:\n{log}",
            family.name()
        );
        let rows = resource_table(&log);
        assert!(!rows.is_empty(), "no resource lines from ptxas -v:\n{log}");
        table.extend(rows.into_iter().map(|r| (family.name(), r)));
    }
    if !table.is_empty() {
        println!(
            "{:<12} {:<22} {:>5} {:>12} {:>11} {:>6}",
            "family", "kernel (sm_90)", "regs", "spill st (B)", "spill ld (B)", "stack"
        );
        for (fam, (name, regs, st, ld, stack)) in &table {
            println!("{fam:<12} {name:<22} {regs:>5} {st:>12} {ld:>11} {stack:>6}");
        }
        let spilling: Vec<_> = table.iter().filter(|(_, r)| r.2 > 0 || r.3 > 0).collect();
        assert!(spilling.is_empty(), "kernels spill registers: {spilling:?}");
    }
}

#[test]
fn a_broken_kernel_reports_its_name_and_the_nvrtc_log() {
    let Some(()) = nvrtc_or_skip() else { return };
    let err = compile_source(
        "broken",
        "extern \"C\" __global__ void k(float* x) { x[0] = undefined_symbol; }",
        "compute_90",
        Output::Ptx,
    )
    .expect_err("an undefined identifier must not compile");
    let msg = err.to_string();
    assert!(msg.contains("`broken`"), "message names the kernel: {msg}");
    assert!(
        msg.contains("undefined_symbol"),
        "message carries the NVRTC log: {msg}"
    );
}

#[test]
fn every_family_compiles_to_an_sm_90_cubin() {
    // The path CudaBackend takes at run time: NVRTC straight to a CUBIN for the device.
    let Some(()) = nvrtc_or_skip() else { return };
    for family in Family::ALL {
        let cubin = compile(family, "sm_90", Output::Cubin).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            cubin.len() > 64 && cubin.starts_with(b"\x7fELF"),
            "family {}: NVRTC's CUBIN is not an ELF image ({} bytes)",
            family.name(),
            cubin.len()
        );
    }
}

#[test]
fn the_optim_family_has_every_entry_point_the_resident_engine_launches() {
    // src/kernels/cuda/ops/optim.rs launches these by name (plus the precision suffix).
    let Some(()) = nvrtc_or_skip() else { return };
    assert!(
        Family::ALL.contains(&Family::Optim),
        "Optim is in Family::ALL"
    );
    let ptx = compile(Family::Optim, "compute_90", Output::Ptx).unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8(ptx).expect("PTX is text");
    for kernel in [
        "gather_rows",
        "loss_grad",
        "nonfinite",
        "sgd_update",
        "adam_update",
    ] {
        for suffix in ["_f32", "_f64"] {
            let entry = format!(".entry {kernel}{suffix}(");
            assert!(text.contains(&entry), "no `{entry}` in the optim PTX");
        }
    }
}
