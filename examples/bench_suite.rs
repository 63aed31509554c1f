//! Runs the `itlin bench` op suite from code and prints one JSON line per op (the same lines
//! as `itlin bench --json`): `cargo run --release --example bench_suite -- f32 256,1024`.

use itlin::bench::suite::{Ceilings, SuiteConfig, run};

fn main() -> itlin::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dtype = args.get(1).map_or("f32", String::as_str);
    let mut cfg = SuiteConfig::default();
    if let Some(sizes) = args.get(2) {
        cfg.sizes = sizes
            .split(',')
            .map(|s| s.parse().expect("sizes are integers"))
            .collect();
    }
    let print = |r: &itlin::bench::suite::Record| {
        println!("{}", serde_json::to_string(r).expect("serialisable"))
    };
    match dtype {
        "f64" => {
            let c = Ceilings::measure::<f64>(cfg.ceiling_bytes);
            eprintln!(
                "ceilings: read {:.1} GB/s, write {:.1} GB/s, copy {:.1} GB/s, gemm {:.1} GFLOP/s",
                c.read.value, c.write.value, c.copy.value, c.gemm.value
            );
            run::<f64>(&cfg, &c, print)?;
        }
        _ => {
            let c = Ceilings::measure::<f32>(cfg.ceiling_bytes);
            eprintln!(
                "ceilings: read {:.1} GB/s, write {:.1} GB/s, copy {:.1} GB/s, gemm {:.1} GFLOP/s",
                c.read.value, c.write.value, c.copy.value, c.gemm.value
            );
            run::<f32>(&cfg, &c, print)?;
        }
    }
    Ok(())
}
