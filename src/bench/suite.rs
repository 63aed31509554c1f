//! The benchmark suite behind `itlin bench`: every op of the JAX peer
//! benchmark (same op names and FLOP models, below) on an MLP, timed as the median of repeats, with its rate,
//! the machine ceiling it is bound by (measured in the same run) and the ratio.
//!
//! FLOP models are the peer's, so rates compare one to one: with `P_w = Σ_l in_l out_l` and
//! `P_w2 = Σ_{l≥2} in_l out_l`,
//! - forward `2 N P_w`; jvp and vjp `4 N P_w + 2 N P_w2`;
//! - jacobian, j_v, jt_u, jt_j_v: bytes of `J` written or read once (`N·C·P·size`), against
//!   the write or read bandwidth;
//! - ntk_structured `2N² Σ in_l + 2(NC)² Σ_{l<L} out_l + 2(NC)² L + 2NC P_w2`;
//!   ntk_explicit `2 (NC)² P`; cholesky `(NC)³/3`;
//! - gn_dual_step: ntk_structured + cholesky + `2(NC)²` + vjp (a whole dual step, no `J`).

use super::ceilings::{
    Ceiling, copy_bandwidth, gemm_gflops, median_time, read_bandwidth, write_bandwidth,
};
use crate::linalg::{add_diagonal, cholesky_in_place};
use crate::memory::{default_budget, dense_bytes};
use crate::ntk::Method;
use crate::solve::{Form, GaussNewtonStep, Loss};
use crate::{Activation, Init, Mlp, Model, Real};
use faer::Mat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Every op name, in the order they run (the peer script's canonical names).
pub const OPS: [&str; 11] = [
    "forward",
    "jvp",
    "vjp",
    "jacobian",
    "j_v",
    "jt_u",
    "jt_j_v",
    "ntk_structured",
    "ntk_explicit",
    "cholesky",
    "gn_dual_step",
];

/// What to run.
#[derive(Clone, Debug)]
pub struct SuiteConfig {
    /// MLP widths (default 784,128,128,10).
    pub widths: Vec<usize>,
    /// Hidden activation (default tanh).
    pub activation: Activation,
    /// Batch sizes N (default 256, 1024).
    pub sizes: Vec<usize>,
    /// Timed repeats per op (after one warm-up; default 5). Ops over 2 s use 3.
    pub repeats: usize,
    /// Ops to run (default all of [`OPS`]).
    pub ops: Vec<String>,
    /// Largest N for `ntk_explicit` (`2(NC)²P` flops; default 256).
    pub explicit_ntk_max_n: usize,
    /// Bytes of the bandwidth-ceiling buffers (default 1 GiB).
    pub ceiling_bytes: usize,
    /// Memory budget for `J` and kernels (default [`default_budget`]).
    pub memory_budget: u64,
}

impl Default for SuiteConfig {
    fn default() -> Self {
        Self {
            widths: vec![784, 128, 128, 10],
            activation: Activation::Tanh,
            sizes: vec![256, 1024],
            repeats: 5,
            ops: OPS.iter().map(|s| s.to_string()).collect(),
            explicit_ntk_max_n: 256,
            ceiling_bytes: 1 << 30,
            memory_budget: default_budget(),
        }
    }
}

/// The machine ceilings of one dtype, measured once per run.
#[derive(Clone, Debug)]
pub struct Ceilings {
    /// Streaming read bandwidth.
    pub read: Ceiling,
    /// Write bandwidth.
    pub write: Ceiling,
    /// Copy bandwidth (read + write counted).
    pub copy: Ceiling,
    /// faer GEMM rate for the dtype.
    pub gemm: Ceiling,
}

impl Ceilings {
    /// Measures them (a few seconds).
    pub fn measure<T: Real>(bytes: usize) -> Self {
        Self {
            read: read_bandwidth(bytes),
            write: write_bandwidth(bytes),
            copy: copy_bandwidth(bytes),
            gemm: gemm_gflops::<T>(2048),
        }
    }
}

/// One measurement.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Record {
    /// Op name (see [`OPS`]).
    pub op: String,
    /// Batch size.
    #[serde(rename = "N")]
    pub n: usize,
    /// `"f32"` / `"f64"`.
    pub dtype: &'static str,
    /// Median seconds per call.
    pub median_s: f64,
    /// Timed repeats.
    pub reps: usize,
    /// Rate in `unit`.
    pub rate: f64,
    /// `"GFLOP/s"` or `"GB/s"`.
    pub unit: &'static str,
    /// The ceiling the op is compared with (same unit).
    pub ceiling: f64,
    /// Which ceiling.
    pub ceiling_name: &'static str,
    /// `rate / ceiling`.
    pub ratio: f64,
    /// Set when the op was skipped (and why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

struct Sizes {
    p: f64,
    pw: f64,
    pw2: f64,
    sum_in: f64,
    sum_out_hidden: f64,
    layers: f64,
}

fn sizes(widths: &[usize]) -> Sizes {
    let l = widths.len() - 1;
    let pw: f64 = (0..l).map(|i| (widths[i] * widths[i + 1]) as f64).sum();
    let pw2: f64 = (1..l).map(|i| (widths[i] * widths[i + 1]) as f64).sum();
    Sizes {
        p: pw + widths[1..].iter().sum::<usize>() as f64,
        pw,
        pw2,
        sum_in: widths[..l].iter().sum::<usize>() as f64,
        sum_out_hidden: widths[1..l].iter().sum::<usize>() as f64,
        layers: l as f64,
    }
}

#[allow(clippy::too_many_arguments)]
fn make<T: Real>(
    op: &str,
    n: usize,
    secs: f64,
    reps: usize,
    amount: f64,
    gb: bool,
    ceil: &Ceiling,
) -> Record {
    let rate = amount / secs * 1e-9;
    Record {
        op: op.to_string(),
        n,
        dtype: T::NAME,
        median_s: secs,
        reps,
        rate,
        unit: if gb { "GB/s" } else { "GFLOP/s" },
        ceiling: ceil.value,
        ceiling_name: ceil.what,
        ratio: rate / ceil.value,
        skipped: None,
    }
}

/// Runs the suite for one dtype, calling `emit` after each op.
pub fn run<T: Real>(
    cfg: &SuiteConfig,
    ceilings: &Ceilings,
    mut emit: impl FnMut(&Record),
) -> crate::Result<Vec<Record>> {
    let mlp = Mlp::new(&cfg.widths, cfg.activation)?;
    let s = sizes(&cfg.widths);
    let c = *cfg.widths.last().expect("widths") as f64;
    let item = std::mem::size_of::<T>() as f64;
    let theta: Vec<T> = mlp.init(Init::Standard, 0);
    let mut out = Vec::new();
    let want = |op: &str| cfg.ops.iter().any(|o| o == op);
    for &n in &cfg.sizes {
        let nf = n as f64;
        let m = nf * c;
        let mut rng = ChaCha8Rng::seed_from_u64(n as u64);
        let x = Mat::<T>::from_fn(n, cfg.widths[0], |_, _| T::from_f64(rng.random::<f64>()));
        let y = Mat::<T>::from_fn(n, c as usize, |i, k| {
            T::from_f64(f64::from(u8::from(i % c as usize == k)))
        });
        let v: Vec<T> = (0..theta.len())
            .map(|_| T::from_f64(rng.random::<f64>() - 0.5))
            .collect();
        let u = Mat::<T>::from_fn(n, c as usize, |_, _| T::from_f64(rng.random::<f64>() - 0.5));
        let mut push = |r: Record| {
            emit(&r);
            out.push(r);
        };
        let reps = cfg.repeats;
        let fwd_flops = 2.0 * nf * s.pw;
        let ad_flops = 4.0 * nf * s.pw + 2.0 * nf * s.pw2;
        if want("forward") {
            let t = median_time(reps, || {
                drop(std::hint::black_box(mlp.forward(&theta, x.as_ref())))
            });
            push(make::<T>(
                "forward",
                n,
                t.median_s,
                t.repeats,
                fwd_flops,
                false,
                &ceilings.gemm,
            ));
        }
        if want("jvp") {
            let t = median_time(reps, || {
                drop(std::hint::black_box(mlp.jvp(&theta, x.as_ref(), &v)))
            });
            push(make::<T>(
                "jvp",
                n,
                t.median_s,
                t.repeats,
                ad_flops,
                false,
                &ceilings.gemm,
            ));
        }
        if want("vjp") {
            let t = median_time(reps, || {
                drop(std::hint::black_box(mlp.vjp(
                    &theta,
                    x.as_ref(),
                    u.as_ref(),
                )))
            });
            push(make::<T>(
                "vjp",
                n,
                t.median_s,
                t.repeats,
                ad_flops,
                false,
                &ceilings.gemm,
            ));
        }
        let j_bytes = m * s.p * item;
        let j_fits = dense_bytes::<T>(m as usize, s.p as usize) <= cfg.memory_budget;
        if ["jacobian", "j_v", "jt_u", "jt_j_v"]
            .iter()
            .any(|o| want(o))
            && j_fits
        {
            let jr = if j_bytes > 2e9 { reps.min(3) } else { reps };
            // Into a reused buffer, like the peer's fastest (donated-buffer) variant.
            let mut j = Model::<T>::jacobian(&mlp, &theta, x.as_ref());
            let t = median_time(jr, || mlp.jacobian_into(&theta, x.as_ref(), &mut j));
            if want("jacobian") {
                push(make::<T>(
                    "jacobian",
                    n,
                    t.median_s,
                    t.repeats,
                    j_bytes,
                    true,
                    &ceilings.write,
                ));
            }
            let uv: Vec<T> = (0..m as usize)
                .map(|i| T::from_f64((i % 7) as f64 - 3.0))
                .collect();
            if want("j_v") {
                let t = median_time(reps, || drop(std::hint::black_box(j.mul_vec(&v))));
                push(make::<T>(
                    "j_v",
                    n,
                    t.median_s,
                    t.repeats,
                    j_bytes,
                    true,
                    &ceilings.read,
                ));
            }
            if want("jt_u") {
                let t = median_time(reps, || drop(std::hint::black_box(j.tmul_vec(&uv))));
                push(make::<T>(
                    "jt_u",
                    n,
                    t.median_s,
                    t.repeats,
                    j_bytes,
                    true,
                    &ceilings.read,
                ));
            }
            if want("jt_j_v") {
                let t = median_time(reps, || drop(std::hint::black_box(j.gn_mul_vec(&v))));
                push(make::<T>(
                    "jt_j_v",
                    n,
                    t.median_s,
                    t.repeats,
                    j_bytes,
                    true,
                    &ceilings.read,
                ));
            }
        } else if !j_fits {
            push(Record {
                op: "jacobian".into(),
                n,
                dtype: T::NAME,
                median_s: f64::NAN,
                reps: 0,
                rate: f64::NAN,
                unit: "GB/s",
                ceiling: ceilings.write.value,
                ceiling_name: "write",
                ratio: f64::NAN,
                skipped: Some(format!(
                    "J needs {:.1} GB, over the memory budget",
                    j_bytes * 1e-9
                )),
            });
        }
        let struct_flops = 2.0 * nf * nf * s.sum_in
            + 2.0 * m * m * s.sum_out_hidden
            + 2.0 * m * m * s.layers
            + 2.0 * m * s.pw2;
        let heavy = |flops: f64| if flops > 2e11 { reps.min(3) } else { reps };
        let mut kernel = None;
        if want("ntk_structured") || want("cholesky") {
            let t = median_time(heavy(struct_flops), || {
                kernel = Some(mlp.ntk_lower(&theta, x.as_ref(), Method::Structured))
            });
            if want("ntk_structured") {
                push(make::<T>(
                    "ntk_structured",
                    n,
                    t.median_s,
                    t.repeats,
                    struct_flops,
                    false,
                    &ceilings.gemm,
                ));
            }
        }
        if want("ntk_explicit") && n <= cfg.explicit_ntk_max_n {
            let flops = 2.0 * m * m * s.p;
            let j = Model::<T>::jacobian(&mlp, &theta, x.as_ref());
            let t = median_time(heavy(flops), || {
                drop(std::hint::black_box(crate::ntk::explicit_lower(&j)))
            });
            push(make::<T>(
                "ntk_explicit",
                n,
                t.median_s,
                t.repeats,
                flops,
                false,
                &ceilings.gemm,
            ));
        }
        let chol_flops = m * m * m / 3.0;
        if want("cholesky")
            && let Some(k) = &kernel
        {
            let mean_diag = (0..m as usize).map(|i| k[(i, i)].to_f64()).sum::<f64>() / m;
            let mut a = k.clone();
            let mut times = Vec::new();
            let r = heavy(chol_flops);
            for _ in 0..=r {
                a.copy_from(k);
                add_diagonal(a.as_mut(), T::from_f64(1e-3 * mean_diag));
                let t0 = std::time::Instant::now();
                cholesky_in_place(a.as_mut()).map_err(|i| {
                    crate::Error::data(format!("benchmark kernel not SPD at pivot {i}"))
                })?;
                times.push(t0.elapsed().as_secs_f64());
            }
            times.remove(0);
            times.sort_by(f64::total_cmp);
            push(make::<T>(
                "cholesky",
                n,
                times[times.len() / 2],
                times.len(),
                chol_flops,
                false,
                &ceilings.gemm,
            ));
        }
        drop(kernel);
        if want("gn_dual_step") {
            let step = GaussNewtonStep::new(Loss::Mse)
                .with_damping(1e-3)
                .with_form(Form::Dual)
                .with_memory_budget(cfg.memory_budget);
            let flops = struct_flops + chol_flops + 2.0 * m * m + ad_flops;
            let t = median_time(heavy(flops), || {
                drop(std::hint::black_box(step.solve(
                    &mlp,
                    &theta,
                    x.as_ref(),
                    y.as_ref(),
                )))
            });
            push(make::<T>(
                "gn_dual_step",
                n,
                t.median_s,
                t.repeats,
                flops,
                false,
                &ceilings.gemm,
            ));
        }
    }
    Ok(out)
}
