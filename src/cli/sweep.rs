//! `itlin sweep`: the paper's experiments.
//!
//! (a) test accuracy against the feature-update period K (plain SGD inner steps, the same
//!     total number of steps for every K);
//! (b) Gauss-Newton inner solves with the damping λ swept over decades, and the spectral
//!     correspondence λ ≈ 1/(ηK) between K gradient-descent steps and one damped GN step;
//! (c) kernel distance against step for each K of (a).

use super::arch::Arch;
use super::args::{InnerKind, Precision, SweepArgs, TrainArgs};
use super::prepare_out;
use super::run::{Summary, run_any};
use itlin::report::{Series, line_plot, line_plot_with_ticks, read_metrics, write_atomic};
use itlin::train::{Period, phi_k};
use itlin::{Model, Real, Result};
use std::fmt::Write as _;
use std::path::Path;

fn base_args(s: &SweepArgs, out: &Path) -> TrainArgs {
    TrainArgs {
        data: s.data.clone(),
        n_train: None,
        arch: s.arch.clone(),
        act: s.act.clone(),
        net: s.net.clone(),
        loss: "ce".into(),
        k: "1".into(),
        inner: InnerKind::Sgd,
        lr: s.lr,
        momentum: 0.0,
        nesterov: false,
        damping: 1e-3,
        adaptive: false,
        gn_batch: s.gn_batch,
        gn_solver: Default::default(),
        batch: s.batch,
        epochs: 1.0,
        steps: Some(s.steps),
        weight_decay: 0.0,
        schedule: "constant".into(),
        eval_every: Some((s.steps / s.evals.max(1)).max(1)),
        probe: 16,
        no_kernel_distance: false,
        seed: s.seed,
        precision: s.precision,
        device: s.device,
        sync_timings: false,
        per_call: false,
        out: Some(out.to_path_buf()),
        force: false,
        resume: None,
        checkpoint_every: None,
        quiet: s.quiet,
        distributed: false,
        comm_timeout: super::args::default_comm_timeout(),
    }
}

/// The swept model as the results say it: `arch [784, 128, 10] relu` or `net SPEC`.
fn model_text(s: &SweepArgs) -> String {
    match &s.net {
        Some(spec) => format!("net `{spec}`"),
        None => format!("arch {:?} {}", s.arch, s.act),
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.2}", 100.0 * v))
}

/// The communicator of a sweep's runs (one process).
fn solo() -> std::sync::Arc<dyn itlin::dist::Comm> {
    std::sync::Arc::new(itlin::dist::Solo)
}

/// Runs `itlin sweep`.
pub fn main(s: &SweepArgs) -> Result<()> {
    super::run::check_device(s.device)?;
    let dir = prepare_out(s.out.as_deref(), "sweep", s.force)?;
    std::fs::create_dir_all(&dir).map_err(|e| itlin::Error::io(&dir, e))?;
    let what = |w: &str| s.what.iter().any(|x| x.eq_ignore_ascii_case(w));
    let mut md = String::new();
    if what("a") || what("c") {
        experiment_a(s, &dir, &mut md)?;
    }
    if what("b") {
        experiment_b(s, &dir, &mut md)?;
    }
    write_atomic(&dir.join("results.md"), md.as_bytes())?;
    println!("\nwrote {}", dir.join("results.md").display());
    Ok(())
}

fn experiment_a(s: &SweepArgs, dir: &Path, md: &mut String) -> Result<()> {
    let periods: Vec<Period> = s.ks.iter().map(|k| k.parse()).collect::<Result<_>>()?;
    let mut rows: Vec<(Period, Summary, std::path::PathBuf)> = Vec::new();
    for &p in &periods {
        let sub = dir.join(format!("a-K{p}"));
        let mut a = base_args(s, &sub);
        a.k = p.to_string();
        std::fs::create_dir_all(&sub).map_err(|e| itlin::Error::io(&sub, e))?;
        eprintln!(
            "(a) K = {p}: {} SGD steps, batch {}, lr {}",
            s.steps, s.batch, s.lr
        );
        let sum = run_any(&a, &sub, false, &solo())?;
        eprintln!(
            "(a) K = {p}: test acc {} %, {:.1} s",
            pct(sum.last_of(|m| m.test_acc)),
            sum.seconds
        );
        rows.push((p, sum, sub));
    }
    let mut table = String::new();
    writeln!(table, "| K | final test acc (f_lin) % | final test acc (network) % | best test acc % | train loss | re-linearisations | feature kernel distance | network kernel distance | wall s |").ok();
    writeln!(table, "|---|---|---|---|---|---|---|---|---|").ok();
    for (p, sm, _) in &rows {
        writeln!(
            table,
            "| {p} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
            pct(sm.last_of(|m| m.test_acc)),
            pct(sm.last_of(|m| m.net_test_acc)),
            pct(sm.best_test_acc),
            sm.train_loss_cell(),
            sm.relinearisations,
            sm.last_of(|m| m.kernel_distance_features)
                .map_or("-".into(), |v| format!("{v:.4}")),
            sm.last_of(|m| m.kernel_distance)
                .map_or("-".into(), |v| format!("{v:.4}")),
            sm.seconds
        )
        .ok();
    }
    println!(
        "\n(a) test accuracy against K ({} steps each)\n{table}",
        s.steps
    );
    writeln!(md, "## (a) test accuracy against K\n\n{} SGD steps (batch {}, lr {}, no momentum), {}, seed {}.\n\n{table}", s.steps, s.batch, s.lr, model_text(s), s.seed).ok();
    // plot: finite K at log10 K, ∞ one decade past the largest finite K
    let max_finite = rows
        .iter()
        .filter_map(|(p, _, _)| p.steps())
        .max()
        .unwrap_or(1) as f64;
    let inf_x = max_finite * 10.0;
    let xk = |p: &Period| p.steps().map_or(inf_x, |k| k as f64);
    let acc: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|(p, sm, _)| sm.last_of(|m| m.test_acc).map(|a| (xk(p), 100.0 * a)))
        .collect();
    let net: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|(p, sm, _)| sm.last_of(|m| m.net_test_acc).map(|a| (xk(p), 100.0 * a)))
        .collect();
    let mut ticks: Vec<(f64, String)> = rows
        .iter()
        .map(|(p, _, _)| (xk(p), p.steps().map_or("∞".into(), |k| k.to_string())))
        .collect();
    ticks.dedup();
    line_plot_with_ticks(
        &dir.join("accuracy_vs_k"),
        "test accuracy against feature-update period K",
        "K (inner steps between re-linearisations)",
        "test accuracy (%)",
        &[
            Series::new("f_lin (trained model)", acc),
            Series::new("network f(θ)", net),
        ],
        true,
        false,
        &ticks,
    )?;
    // (c) kernel distance curves: of the trained model's features Θ(θ̃), and of the network
    let (mut kd_feat, mut kd_net) = (Vec::new(), Vec::new());
    for (p, _, sub) in &rows {
        let hist = read_metrics(&sub.join("metrics.jsonl"))?;
        let curve = |f: &dyn Fn(&itlin::train::Metrics) -> Option<f64>| -> Vec<(f64, f64)> {
            std::iter::once((0.0, 0.0))
                .chain(hist.iter().filter_map(|m| f(m).map(|v| (m.step as f64, v))))
                .collect()
        };
        kd_feat.push(Series::new(
            format!("K={p}"),
            curve(&|m| m.kernel_distance_features),
        ));
        kd_net.push(Series::new(format!("K={p}"), curve(&|m| m.kernel_distance)));
    }
    line_plot(
        &dir.join("kernel_distance_vs_step"),
        "feature movement: d(NTK at linearisation point, initial NTK)",
        "step",
        "kernel distance",
        &kd_feat,
        false,
        false,
    )?;
    line_plot(
        &dir.join("network_kernel_distance_vs_step"),
        "network NTK at θ: distance to the initial NTK",
        "step",
        "kernel distance",
        &kd_net,
        false,
        false,
    )?;
    writeln!(
        md,
        "Plots: `accuracy_vs_k.svg`, `kernel_distance_vs_step.svg` (features of the trained model, experiment c) and `network_kernel_distance_vs_step.svg`.\n"
    )
    .ok();
    Ok(())
}

fn experiment_b(s: &SweepArgs, dir: &Path, md: &mut String) -> Result<()> {
    let mut rows = Vec::new();
    for &lambda in &s.dampings {
        let sub = dir.join(format!("b-lambda{lambda:e}"));
        let mut a = base_args(s, &sub);
        a.inner = InnerKind::Gn;
        a.loss = "mse".into();
        a.damping = lambda;
        a.k = "1".into();
        a.steps = Some(s.gn_steps);
        a.eval_every = Some((s.gn_steps / 10).max(1));
        a.no_kernel_distance = true;
        std::fs::create_dir_all(&sub).map_err(|e| itlin::Error::io(&sub, e))?;
        eprintln!(
            "(b) λ = {lambda:e}: {} GN steps on {} rows",
            s.gn_steps, s.gn_batch
        );
        let sum = run_any(&a, &sub, false, &solo())?;
        eprintln!(
            "(b) λ = {lambda:e}: test acc {} %",
            pct(sum.last_of(|m| m.test_acc))
        );
        rows.push((lambda, sum));
    }
    let mut table = String::new();
    writeln!(
        table,
        "| λ | final test acc % | best test acc % | train loss (MSE) | wall s |"
    )
    .ok();
    writeln!(table, "|---|---|---|---|---|").ok();
    for (l, sm) in &rows {
        writeln!(
            table,
            "| {l:e} | {} | {} | {} | {:.1} |",
            pct(sm.last_of(|m| m.test_acc)),
            pct(sm.best_test_acc),
            sm.train_loss_cell(),
            sm.seconds
        )
        .ok();
    }
    println!("\n(b) damped Gauss-Newton (K = 1, MSE) against λ\n{table}");
    writeln!(md, "## (b) damped Gauss-Newton against λ\n\n{} GN steps on {} sampled rows each, MSE on one-hot targets, K = 1.\n\n{table}", s.gn_steps, s.gn_batch).ok();
    let acc: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|(l, sm)| sm.last_of(|m| m.test_acc).map(|a| (*l, 100.0 * a)))
        .collect();
    let loss: Vec<(f64, f64)> = rows
        .iter()
        .filter(|(_, sm)| sm.divergence.is_none())
        .filter_map(|(l, sm)| sm.last_of(|m| Some(m.train_loss)).map(|v| (*l, v)))
        .collect();
    line_plot(
        &dir.join("gn_accuracy_vs_damping"),
        "damped GN: test accuracy against λ",
        "damping λ",
        "test accuracy (%)",
        &[Series::new("test accuracy", acc)],
        true,
        false,
    )?;
    line_plot(
        &dir.join("gn_loss_vs_damping"),
        "damped GN: training loss against λ",
        "damping λ",
        "train MSE",
        &[Series::new("train loss", loss)],
        true,
        true,
    )?;
    // the comparison is computed in f64 whatever --precision says
    let _ = Precision::F64;
    let (corr, eta) = correspondence::<f64>(s)?;
    println!(
        "\n(b) spectral correspondence: K full-batch GD steps (η = {eta:.4}) vs one GN step with λ\n{corr}"
    );
    writeln!(md, "### λ ≈ 1/(ηK): K GD steps against one damped GN step (spectral form)\n\nAt θ₀ on the first {} training rows (MSE on one-hot targets), f64, η = {eta:.4} (the sweep's --lr capped at N/s_max so that full-batch GD is stable). `rel diff` is ‖δ_K − δ_λ‖/‖δ_K‖, computed exactly in the NTK eigenbasis; `best λ` minimises it over a fine grid; the last columns are the linearised training MSE after each step (initial MSE in the header).\n\n{corr}", s.gn_batch.min(512)).ok();
    Ok(())
}

/// Compares the spectral filters of K GD steps and of damped GN at λ = 1/(ηK):
/// `‖δ_K − δ_λ‖² = Σ_i s_i (φ_K(s_i) − 1/(s_i + Nλ))² (uᵢᵀ r)²`.
fn correspondence<T: Real>(s: &SweepArgs) -> Result<(String, f64)> {
    let (split, shape) = super::load_data_shaped::<T>(&s.data, None)?;
    let mlp = Arch::from_flags(
        s.net.as_deref(),
        &s.arch,
        &s.act,
        &shape,
        split.train.n_features(),
        split.train.n_outputs(),
    )?;
    let n = s.gn_batch.min(512).min(split.train.len());
    let rows: Vec<usize> = (0..n).collect();
    let sub = split.train.subset(&rows);
    let theta = mlp.init::<T>(s.seed);
    let k = itlin::ntk::empirical(&mlp, &theta, sub.x.as_ref(), itlin::ntk::Method::Structured);
    let f = mlp.forward(&theta, sub.x.as_ref());
    let c = Model::<T>::n_outputs(&mlp);
    let eig = k
        .self_adjoint_eigen(faer::Side::Lower)
        .map_err(|e| itlin::Error::data(format!("NTK eigendecomposition failed: {e:?}")))?;
    let (u, sv) = (eig.U(), eig.S());
    let m = n * c;
    let r: Vec<f64> = (0..m)
        .map(|i| f[(i / c, i % c)].to_f64() - sub.y[(i / c, i % c)].to_f64())
        .collect();
    let ur: Vec<f64> = (0..m)
        .map(|j| (0..m).map(|i| u[(i, j)].to_f64() * r[i]).sum())
        .collect();
    let ev: Vec<f64> = (0..m).map(|i| sv[i].to_f64().max(0.0)).collect();
    let nf = n as f64;
    let s_max = ev.iter().cloned().fold(0.0, f64::max);
    let eta = if s_max > 0.0 {
        s.lr.min(nf / s_max)
    } else {
        s.lr
    };
    // linearised MSE after a step with filter φ: (1/2N) Σ ((uᵢᵀr)(1 − sᵢφ(sᵢ)))²
    let lin_loss = |phi: &dyn Fn(f64) -> f64| -> f64 {
        (0..m)
            .map(|i| (ur[i] * (1.0 - ev[i] * phi(ev[i]))).powi(2))
            .sum::<f64>()
            / (2.0 * nf)
    };
    let norm = |phi: &dyn Fn(f64) -> f64, psi: &dyn Fn(f64) -> f64| -> f64 {
        (0..m)
            .map(|i| ev[i] * (phi(ev[i]) - psi(ev[i])).powi(2) * ur[i] * ur[i])
            .sum::<f64>()
            .sqrt()
    };
    let mut out = String::new();
    writeln!(
        out,
        "| K | λ = 1/(ηK) | rel diff at 1/(ηK) | best λ | rel diff at best λ | best λ · ηK | MSE after K GD steps | MSE after GN at 1/(ηK) |"
    )
    .ok();
    writeln!(out, "|---|---|---|---|---|---|---|---|").ok();
    let initial = lin_loss(&|_| 0.0);
    for kk in [1u64, 10, 100, 1000, 10_000] {
        let kf = kk as f64;
        let phik = |sv: f64| phi_k(sv, eta, nf, kf);
        let zero = |_: f64| 0.0;
        let base = norm(&phik, &zero).max(1e-300);
        let diff_at = |lam: f64| norm(&phik, &|sv: f64| 1.0 / (sv + nf * lam)) / base;
        let lam0 = 1.0 / (eta * kf);
        let mut best = (lam0, diff_at(lam0));
        for e in -400..=400 {
            let lam = lam0 * 10f64.powf(e as f64 / 100.0);
            let d = diff_at(lam);
            if d < best.1 {
                best = (lam, d);
            }
        }
        writeln!(
            out,
            "| {kk} | {lam0:.3e} | {:.3} | {:.3e} | {:.3} | {:.2} | {:.4} | {:.4} |",
            diff_at(lam0),
            best.0,
            best.1,
            best.0 * eta * kf,
            lin_loss(&phik),
            lin_loss(&|sv: f64| 1.0 / (sv + nf * lam0)),
        )
        .ok();
    }
    writeln!(out, "\nInitial linearised MSE: {initial:.4}.").ok();
    Ok((out, eta))
}
