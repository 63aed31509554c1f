//! `itlin bench`: the op suite of [`itlin::bench::suite`] as a table or JSON lines.

use super::args::{BenchArgs, Device, Precision};
use itlin::bench::suite::{Ceilings, OPS, Record, SuiteConfig, run};
use itlin::{Activation, Error, Real, Result};

/// Runs the suite for each requested precision.
pub fn main(a: &BenchArgs) -> Result<()> {
    if a.device == Device::Cuda {
        return Err(Error::config(
            "itlin bench measures the CPU; for the GPU run `cargo bench --features cuda --bench cuda` (or scripts/gpu-check.sh)",
        ));
    }
    if a.n.is_empty() || a.n.contains(&0) {
        return Err(Error::config(format!(
            "--n needs positive batch sizes, got {:?}",
            a.n
        )));
    }
    if let Some(bad) = a.ops.iter().find(|o| !OPS.contains(&o.as_str())) {
        return Err(Error::config(format!(
            "unknown op '{bad}' in --ops; expected some of {}",
            OPS.join(", ")
        )));
    }
    let activation: Activation = a.act.parse()?;
    itlin::Mlp::new(&a.arch, activation)?;
    let mut cfg = SuiteConfig {
        widths: a.arch.clone(),
        activation,
        sizes: a.n.clone(),
        repeats: a.reps.max(1),
        explicit_ntk_max_n: a.explicit_max_n,
        ceiling_bytes: a.ceiling_mb.max(1) << 20,
        ..SuiteConfig::default()
    };
    if !a.ops.is_empty() {
        cfg.ops = a.ops.clone();
    }
    for p in &a.precision {
        match p {
            Precision::F32 => one::<f32>(&cfg, a.json)?,
            Precision::F64 => one::<f64>(&cfg, a.json)?,
        }
    }
    Ok(())
}

fn one<T: Real>(cfg: &SuiteConfig, json: bool) -> Result<()> {
    let simd = itlin::kernels::cpu::simd_level();
    eprintln!(
        "measuring the machine's ceilings ({}; itlin kernels at SIMD level {simd}, ITLIN_SIMD caps it)…",
        T::NAME
    );
    if json {
        println!(
            "{}",
            serde_json::json!({"simd": simd.name(), "native_simd": itlin::kernels::cpu::level::native_level().name(), "dtype": T::NAME})
        );
    }
    let c = Ceilings::measure::<T>(cfg.ceiling_bytes);
    for ceil in [&c.read, &c.write, &c.copy, &c.gemm] {
        if json {
            println!(
                "{}",
                serde_json::json!({"ceiling": ceil.what, "value": ceil.value, "unit": ceil.unit, "method": ceil.method, "dtype": T::NAME})
            );
        } else {
            println!(
                "ceiling {:<9} {:>9.1} {:<8} {}",
                ceil.what, ceil.value, ceil.unit, ceil.method
            );
        }
    }
    if !json {
        println!();
        println!(
            "{:<15} {:>5} {:<5} {:>12} {:>12} {:<8} {:>10} {:>7}",
            "op", "N", "dtype", "median", "rate", "unit", "ceiling", "ratio"
        );
    }
    let print = |r: &Record| {
        if json {
            println!("{}", serde_json::to_string(r).expect("records serialise"));
        } else if let Some(why) = &r.skipped {
            println!("{:<15} {:>5} {:<5} skipped: {why}", r.op, r.n, r.dtype);
        } else {
            println!(
                "{:<15} {:>5} {:<5} {:>10.3} ms {:>12.1} {:<8} {:>10.1} {:>6.0}%",
                r.op,
                r.n,
                r.dtype,
                r.median_s * 1e3,
                r.rate,
                r.unit,
                r.ceiling,
                100.0 * r.ratio
            );
        }
    };
    run::<T>(cfg, &c, print)?;
    Ok(())
}
