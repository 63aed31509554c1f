//! `Network` against JAX float64: forward, JVP, VJP, the explicit Jacobian and the NTK
//! `J Jᵀ` (every `ntk::Method`) on the reference values in `tests/fixtures/network-jax/*/`,
//! made by the project's JAX peer for networks of layers from the same spec string and θ layout
//! (an implementation written independently, on `lax.conv_general_dilated` and
//! `lax.reduce_window`):
//!
//! ```text
//! python scripts/peers/jax_cnn.py --dump DIR --spec SPEC --shape C,H,W --n N --seed S
//! ```
//!
//! Each quantity must agree to `max |a − b| / max |b| ≤ 1e-12`. `ITLIN_JAX_DUMPS=DIR1:DIR2`
//! checks further dumps the same way (larger networks than the repository keeps).

use faer::{Mat, MatRef};
use itlin::data::npy::read_npy;
use itlin::ntk::{Method, empirical};
use itlin::{Model, Network};
use std::path::Path;

fn load(dir: &Path, name: &str) -> (Vec<usize>, Vec<f64>) {
    let a = read_npy::<f64>(&dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
    (a.shape, a.data)
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let scale = b
        .iter()
        .fold(0f64, |m, v| m.max(v.abs()))
        .max(f64::MIN_POSITIVE);
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn row_major(m: MatRef<'_, f64>) -> Vec<f64> {
    let mut out = Vec::with_capacity(m.nrows() * m.ncols());
    for i in 0..m.nrows() {
        for j in 0..m.ncols() {
            out.push(m[(i, j)]);
        }
    }
    out
}

fn check(dir: &Path) -> bool {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).expect("meta.json"))
            .expect("meta.json is JSON");
    let spec = meta["spec"].as_str().expect("spec");
    let shape: Vec<usize> = meta["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|v| v.as_u64().expect("shape entry") as usize)
        .collect();
    let net = Network::from_spec((shape[0], shape[1], shape[2]), spec)
        .unwrap_or_else(|e| panic!("{spec}: {e}"));
    let (xs, x) = load(dir, "x.npy");
    let (_, theta) = load(dir, "theta.npy");
    let (_, v) = load(dir, "v.npy");
    let (us, u) = load(dir, "u.npy");
    let x = Mat::from_fn(xs[0], xs[1], |i, j| x[i * xs[1] + j]);
    let u = Mat::from_fn(us[0], us[1], |i, j| u[i * us[1] + j]);
    assert_eq!(Model::<f64>::n_params(&net), theta.len(), "{spec}: P");
    let f = net.forward(&theta, x.as_ref());
    let (_, jv) = net.jvp(&theta, x.as_ref(), &v);
    let g = net.vjp(&theta, x.as_ref(), u.as_ref());
    let j = net.jacobian(&theta, x.as_ref());
    let mut errs = vec![
        (
            "forward",
            rel_err(&row_major(f.as_ref()), &load(dir, "f.npy").1),
        ),
        (
            "jvp",
            rel_err(&row_major(jv.as_ref()), &load(dir, "jv.npy").1),
        ),
        ("vjp", rel_err(&g, &load(dir, "vjp.npy").1)),
        (
            "jacobian",
            rel_err(&row_major(j.as_ref()), &load(dir, "jac.npy").1),
        ),
    ];
    let k_ref = load(dir, "ntk.npy").1;
    for (name, m) in [
        ("ntk explicit", Method::Explicit),
        ("ntk structured", Method::Structured),
        ("ntk auto", Method::Auto),
    ] {
        let k = empirical(&net, &theta, x.as_ref(), m);
        errs.push((name, rel_err(&row_major(k.as_ref()), &k_ref)));
    }
    let mut ok = true;
    println!(
        "{spec} on {}×{}×{}, N = {}:",
        shape[0], shape[1], shape[2], xs[0]
    );
    for (name, e) in errs {
        let pass = e <= 1e-12;
        ok &= pass;
        println!("  {name:<15} {e:.2e} {}", if pass { "ok" } else { "FAIL" });
    }
    ok
}

#[test]
fn network_ops_match_jax_float64() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/network-jax");
    let mut dirs: Vec<std::path::PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("meta.json").is_file())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 4,
        "reference dumps missing in {}",
        root.display()
    );
    if let Ok(extra) = std::env::var("ITLIN_JAX_DUMPS") {
        dirs.extend(extra.split(':').filter(|s| !s.is_empty()).map(Into::into));
    }
    let failed: Vec<String> = dirs
        .iter()
        .filter(|d| !check(d))
        .map(|d| d.display().to_string())
        .collect();
    assert!(failed.is_empty(), "differs from JAX: {failed:?}");
}
