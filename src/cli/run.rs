//! One training run into a run directory: the body of `itlin train`, reused by `itlin sweep`.

use super::arch::Arch;
use super::args::{Device, InnerKind, Precision, TrainArgs};
use super::load_data_shaped;
use super::rundir;
use indicatif::{ProgressBar, ProgressStyle};
use itlin::dist::{Comm, Shard};
use itlin::report::{
    MetricsWriter, plot_run, read_metrics, read_metrics_resumable, write_json_atomic,
};
use itlin::train::{
    Control, DataRef, Divergence, FirstOrderEngine, Inner, Loss, Metrics, Observer, Period,
    Schedule, Termination, Timings, TrainConfig, Trainer, checkpoint, inner_step_plan,
};
use itlin::{Activation, Error, Model, Real, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// What `summary.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    /// Why the run ended.
    pub termination: Termination,
    /// Inner steps taken.
    pub steps: u64,
    /// Re-linearisations.
    pub relinearisations: u64,
    /// Wall time of training (seconds, including time before a resume).
    pub seconds: f64,
    /// Number of parameters.
    pub n_params: usize,
    /// Training rows.
    pub n_train: usize,
    /// Test rows.
    pub n_test: usize,
    /// The last evaluation (`null` when the run diverged before any evaluation with finite
    /// values).
    pub last: Option<Metrics>,
    /// Best test accuracy over the evaluations (classification).
    pub best_test_acc: Option<f64>,
    /// Time per phase.
    pub timings: Timings,
    /// Rejected Gauss-Newton steps.
    pub rejected_steps: u64,
    /// Where and why the run diverged (`termination` is then `Diverged`).
    #[serde(default)]
    pub divergence: Option<Divergence>,
}

impl Summary {
    /// A value of the last evaluation (`None` without one).
    pub fn last_of(&self, f: impl Fn(&Metrics) -> Option<f64>) -> Option<f64> {
        self.last.as_ref().and_then(f)
    }
    /// The training loss of the last evaluation as a table cell (`-` without one, and
    /// `diverged at step N` after a divergence).
    pub fn train_loss_cell(&self) -> String {
        match (&self.divergence, self.last_of(|m| Some(m.train_loss))) {
            (Some(d), _) => format!("diverged at step {}", d.step),
            (None, Some(v)) => format!("{v:.4}"),
            (None, None) => "-".into(),
        }
    }
}

/// What `config.json` holds: the flags as resolved and the trainer configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunConfig {
    /// The crate version that made the run.
    pub version: String,
    /// The flags.
    pub args: TrainArgs,
    /// The trainer configuration derived from them.
    pub train: TrainConfig,
}

/// The Gauss-Newton solve of `--gn-form` and `--precond`.
fn gn_solver(a: &super::args::GnSolverArgs) -> itlin::train::GnSolver {
    use super::args::GnFormArg;
    use itlin::solve::Form;
    itlin::train::GnSolver {
        form: match a.gn_form {
            GnFormArg::Auto => Form::Auto,
            GnFormArg::Primal => Form::Primal,
            GnFormArg::Dual => Form::Dual,
            GnFormArg::Cg => Form::Cg,
        },
        preconditioner: a.precond,
    }
}

/// Parses the flags into a trainer configuration for a training set of `n_train` rows.
pub fn train_config(a: &TrainArgs, n_train: usize, dir: &Path) -> Result<TrainConfig> {
    let loss: Loss = a.loss.parse()?;
    let period: Period = a.k.parse()?;
    let schedule: Schedule = a.schedule.parse()?;
    let inner = match a.inner {
        InnerKind::Sgd => Inner::Sgd {
            lr: a.lr,
            momentum: a.momentum,
            nesterov: a.nesterov,
        },
        InnerKind::Adam => Inner::adam(a.lr),
        InnerKind::Gn => Inner::GaussNewton {
            damping: a.damping,
            adaptive: a.adaptive,
        },
        InnerKind::Spectral => Inner::Spectral { lr: a.lr },
    };
    if a.batch == 0 {
        return Err(Error::config("--batch must be at least 1"));
    }
    let per_epoch = n_train.div_ceil(a.batch.min(n_train).max(1)) as u64;
    let steps = match a.steps {
        Some(s) => s,
        None => {
            if !(a.epochs.is_finite() && a.epochs > 0.0) {
                return Err(Error::config(format!(
                    "--epochs must be positive, got {}",
                    a.epochs
                )));
            }
            ((a.epochs * per_epoch as f64).ceil() as u64).max(1)
        }
    };
    if steps == 0 {
        return Err(Error::config("--steps must be at least 1"));
    }
    let eval_every = a.eval_every.unwrap_or(per_epoch);
    let cfg = TrainConfig::new()
        .with_period(period)
        .with_inner(inner)
        .with_loss(loss)
        .with_weight_decay(a.weight_decay)
        .with_schedule(schedule)
        .with_batch(a.batch)
        .with_steps(steps)
        .with_gn_batch(Some(a.gn_batch.min(n_train)))
        .with_gn_solver(gn_solver(&a.gn_solver))
        .with_eval_every(eval_every)
        .with_probe(a.probe)
        .with_kernel_distance(!a.no_kernel_distance)
        .with_seed(a.seed)
        .with_checkpoint(
            dir.join("checkpoint.bin"),
            a.checkpoint_every.unwrap_or(eval_every),
        );
    cfg.validate()?;
    Ok(cfg)
}

/// Refuses widths whose parameters (θ and the buffers beside it, 8 copies) would not fit the
/// memory budget, counted with checked arithmetic before the network is built.
fn check_param_count<T: Real>(arch: &[usize]) -> Result<()> {
    let p = arch.windows(2).try_fold(0u64, |acc, w| {
        let (i, o) = (w[0] as u64, w[1] as u64);
        i.checked_mul(o)?.checked_add(o)?.checked_add(acc)
    });
    let budget = itlin::memory::default_budget();
    let need = p.and_then(|p| p.checked_mul(8 * size_of::<T>() as u64));
    match need {
        Some(n) if n <= budget => Ok(()),
        _ => Err(Error::OutOfMemory {
            what: format!(
                "training {arch:?} ({} parameters)",
                p.map_or("more than 2^64".into(), |p| p.to_string())
            ),
            needed: need.unwrap_or(u64::MAX),
            budget,
            hint: "lower the widths in --arch".into(),
        }),
    }
}

/// Refuses plans that would not fit in memory, saying what to lower.
fn check_memory<T: Real>(arch: &Arch, cfg: &TrainConfig, n_eval: usize) -> Result<()> {
    let sz = size_of::<T>() as u64;
    let p = Model::<T>::n_params(arch) as u64;
    let c = Model::<T>::n_outputs(arch) as u64;
    let widths: u64 = arch.per_sample_activations();
    let mul = |a: u64, b: u64| a.saturating_mul(b);
    let params = mul(8 * sz, p);
    let eval = mul(arch.eval_bytes_per_row(sz), n_eval as u64);
    // three probe NTKs (at θ₀, θ̃, θ) and the signals behind them
    let probe_rows = (cfg.probe as u64).min(n_eval as u64);
    let probe = if cfg.kernel_distance {
        mul(4 * sz, mul(probe_rows, c).saturating_pow(2))
            .saturating_add(mul(mul(2 * sz, probe_rows), mul(c, widths)))
    } else {
        0
    };
    let budget = itlin::memory::default_budget();
    let need = params.saturating_add(eval).saturating_add(probe);
    if need > budget {
        let what = match arch {
            Arch::Mlp(_) => "the widths in --arch",
            Arch::Net(_) => "the channels or widths in --net",
        };
        let hint = if probe > params.max(eval) {
            "lower --probe or pass --no-kernel-distance".to_string()
        } else if eval > params {
            format!("lower {what} or the number of rows (--n-train)")
        } else {
            format!("lower {what}")
        };
        return Err(Error::OutOfMemory {
            what: format!("training {} ({} parameters)", arch.describe(), p),
            needed: need,
            budget,
            hint,
        });
    }
    Ok(())
}

/// Refuses a Gauss-Newton / spectral step that would not fit the memory budget and says
/// beforehand what a heavy one costs (over 1 GiB or 1e11 flops); notes a `--gn-batch` larger
/// than the training set (every solve then uses all rows).
fn check_inner_step<T: Real>(
    a: &TrainArgs,
    arch: &Arch,
    cfg: &TrainConfig,
    n: usize,
) -> Result<()> {
    let (c, p) = (Model::<T>::n_outputs(arch), Model::<T>::n_params(arch));
    let Some(plan) = inner_step_plan::<T>(cfg, n, c, p) else {
        return Ok(());
    };
    if a.gn_batch > n {
        eprintln!(
            "note: --gn-batch {}: the training set has {n} rows; each solve uses all {n}",
            a.gn_batch
        );
    }
    plan.check(itlin::memory::default_budget())?;
    if plan.is_heavy() {
        let solves = match (cfg.inner, cfg.period) {
            (Inner::Spectral { .. }, Period::Steps(k)) => cfg.steps.div_ceil(k),
            (Inner::Spectral { .. }, Period::Never) => 1,
            _ => cfg.steps,
        };
        eprintln!(
            "note: each --inner {} step needs the {} on {} rows: {:.2} GiB and {:.1e} flop to factor (about {:.0} s at 50 GFLOP/s), {solves} of them; a smaller --gn-batch makes them cheaper",
            cfg.inner.name(),
            plan.what,
            plan.rows,
            plan.bytes as f64 / (1u64 << 30) as f64,
            plan.flops,
            plan.flops / 50e9,
        );
    }
    Ok(())
}

/// `--data` as it is stored in `config.json`: a directory as its absolute path (so that
/// `--resume` works from any working directory), `mnist` as is.
fn stored_data(spec: &str) -> String {
    if spec.eq_ignore_ascii_case("mnist") {
        return spec.to_string();
    }
    std::fs::canonicalize(spec)
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| spec.to_string())
}

struct CliObserver {
    bar: Option<ProgressBar>,
    /// The metrics file (rank 0 of a distributed run, or the one process).
    writer: Option<MetricsWriter>,
    error: Option<Error>,
}

impl Observer for CliObserver {
    fn on_step(&mut self, step: u64, _total: u64) {
        if let Some(b) = &self.bar {
            b.set_position(step);
        }
    }
    fn on_eval(&mut self, m: &Metrics) -> Control {
        if let Some(b) = &self.bar {
            let acc = m
                .test_acc
                .map_or(String::new(), |a| format!(" test acc {:.2}%", 100.0 * a));
            b.set_message(format!(
                "loss {:.4}{acc} relin {}",
                m.train_loss, m.relinearisations
            ));
        }
        match self.writer.as_mut().map_or(Ok(()), |w| w.write(m)) {
            Ok(()) => Control::Continue,
            Err(e) => {
                self.error = Some(e);
                Control::Stop
            }
        }
    }
}

/// The precisions a run can use: [`Real`], and in a build with the `cuda` feature also
/// [`CudaReal`](itlin::kernels::cuda::CudaReal) (both hold for `f32` and `f64`).
#[cfg(all(feature = "cuda", not(feature = "nccl")))]
pub trait RunReal: itlin::kernels::cuda::CudaReal {}
/// The precisions a run can use: [`Real`], [`CudaReal`](itlin::kernels::cuda::CudaReal) and
/// NCCL's element types (all hold for `f32` and `f64`).
#[cfg(feature = "nccl")]
pub trait RunReal:
    itlin::kernels::cuda::CudaReal + itlin::kernels::cuda::cudarc::nccl::NcclType
{
}

/// The sum of the resident engines' gradients across the ranks of a distributed GPU run:
/// NCCL in a build with the `nccl` feature, else through the host (download, MPI sum,
/// upload).
#[cfg(feature = "cuda")]
fn device_collective<T: RunReal>(
    be: &Arc<itlin::kernels::cuda::CudaBackend>,
    comm: &Arc<dyn Comm>,
) -> Result<Arc<dyn itlin::backend::Collective<T, itlin::kernels::cuda::CudaBackend>>> {
    #[cfg(feature = "nccl")]
    {
        Ok(Arc::new(itlin::kernels::cuda::NcclSum::new(be, &**comm)?))
    }
    #[cfg(not(feature = "nccl"))]
    {
        let _ = be;
        Ok(Arc::new(itlin::backend::HostStaged::new(Arc::clone(comm))))
    }
}
/// The precisions a run can use: [`Real`] (`f32` and `f64`).
#[cfg(not(feature = "cuda"))]
pub trait RunReal: Real {}
impl RunReal for f32 {}
impl RunReal for f64 {}

/// The one-line refusal of `--device cuda` in a build without the `cuda` feature.
fn no_cuda() -> Error {
    Error::config(
        "--device cuda: this build has no CUDA support; rebuild with --features cuda or use --device cpu",
    )
}

/// Opens CUDA device 0 once per process (the runs of a sweep share it, and with it the
/// compiled kernel modules), or says in one line why it cannot (no GPU, driver or CUDA
/// library).
#[cfg(feature = "cuda")]
pub fn open_cuda() -> Result<std::sync::Arc<itlin::kernels::cuda::CudaBackend>> {
    use itlin::kernels::cuda::CudaBackend;
    use std::sync::{Arc, OnceLock};
    static BACKEND: OnceLock<Arc<CudaBackend>> = OnceLock::new();
    if let Some(be) = BACKEND.get() {
        return Ok(be.clone());
    }
    let be = CudaBackend::new().map(Arc::new).map_err(|e| {
        Error::Device(format!(
            "no usable CUDA device: {}",
            match e {
                Error::Device(m) => m,
                e => e.to_string(),
            }
        ))
    })?;
    Ok(BACKEND.get_or_init(|| be).clone())
}

/// Checks that `device` can be used by this build on this machine (for `cuda`: the feature
/// and a usable GPU), before anything is written.
pub fn check_device(device: Device) -> Result<()> {
    match device {
        Device::Cpu => Ok(()),
        #[cfg(feature = "cuda")]
        Device::Cuda => open_cuda().map(|_| ()),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => Err(no_cuda()),
    }
}

/// Runs `itlin train` with precision `T` into `dir` (fresh, or the run to resume), on the
/// device of the flags. Every check (flags, data, memory, the CUDA device) happens before
/// anything is written to `dir`.
///
/// With `--device cuda`, SGD and Adam inner steps run on the GPU-resident engine
/// ([`ResidentEngine`](itlin::kernels::cuda::ResidentEngine): θ, θ̃, optimiser state and the
/// training set stay on the device); evaluation and the Gauss-Newton / spectral inners use
/// [`CudaMlp`](itlin::kernels::cuda::CudaMlp) on the same device.
pub fn run<T: RunReal>(
    a: &TrainArgs,
    dir: &Path,
    resume: bool,
    comm: &Arc<dyn Comm>,
) -> Result<Summary> {
    if a.device == Device::Cuda && !cfg!(feature = "cuda") {
        return Err(no_cuda());
    }
    if (comm.size() > 1 || a.distributed) && matches!(a.inner, InnerKind::Spectral) {
        return Err(Error::config(
            "--distributed: data-parallel runs take SGD, Adam or Gauss-Newton (--loss mse --gn-form cg) inner steps; --inner spectral runs on one process",
        ));
    }
    if a.net.is_none() {
        let _: Activation = a.act.parse()?;
    }
    let (split, shape) = load_data_shaped::<T>(&a.data, a.n_train)?;
    let (d, c) = (split.train.n_features(), split.train.n_outputs());
    if a.net.is_none() {
        if a.arch.len() < 2 || a.arch[0] != d || a.arch[a.arch.len() - 1] != c {
            return Err(Error::config(format!(
                "--arch {}: the data has {d} inputs and {c} outputs, so --arch must start with {d} and end with {c}",
                a.arch
                    .iter()
                    .map(|w| w.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            )));
        }
        check_param_count::<T>(&a.arch)?;
    }
    let arch = Arch::from_flags(a.net.as_deref(), &a.arch, &a.act, &shape, d, c)?;
    if a.device == Device::Cuda && arch.as_mlp().is_none() {
        return Err(Error::config(
            "--net with --device cuda: networks of layers run on the CPU only in this version; use --device cpu, or --arch for an MLP on the GPU",
        ));
    }
    let loss: Loss = a.loss.parse()?;
    if loss == Loss::CrossEntropy && !split.train.is_classification() {
        return Err(Error::config(
            "--loss ce needs class labels; these targets are real-valued, use --loss mse",
        ));
    }
    let cfg = train_config(a, split.train.len(), dir)?;
    let n_eval = split.train.len().max(split.test.len());
    check_memory::<T>(&arch, &cfg, n_eval)?;
    check_inner_step::<T>(a, &arch, &cfg, split.train.len())?;

    // from here on this rank holds only its shards of the data
    let split = Local::new(split, comm.rank(), comm.size());
    match a.device {
        Device::Cpu => fit(a, dir, resume, &arch, &arch, None, &split, &cfg, &**comm),
        #[cfg(feature = "cuda")]
        Device::Cuda => {
            use itlin::kernels::cuda::{CudaMlp, ResidentEngine};
            let mlp = arch.as_mlp().expect("checked above: CUDA runs take an MLP");
            let be = open_cuda()?;
            let model = CudaMlp::with_backend(mlp.clone(), be.clone());
            let first_order = matches!(a.inner, InnerKind::Sgd | InnerKind::Adam);
            let engine = if first_order && !a.per_call {
                let mut e = ResidentEngine::<T>::new(mlp.clone(), be.clone())
                    .with_sync_phases(a.sync_timings);
                if comm.size() > 1 {
                    e = e.with_collective(device_collective::<T>(&be, comm)?);
                }
                Some(Box::new(e) as Box<dyn FirstOrderEngine<T>>)
            } else {
                None
            };
            fit(a, dir, resume, &arch, &model, engine, &split, &cfg, &**comm)
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => Err(no_cuda()),
    }
}

/// The rows of the data this rank holds: its shards of the training and test sets (the
/// whole sets in a one-process run), and where they lie in the whole sets.
struct Local<T> {
    train: itlin::data::Dataset<T>,
    test: itlin::data::Dataset<T>,
    train_shard: Shard,
    test_shard: Shard,
}

impl<T: Real> Local<T> {
    /// Rank `rank`'s shards of `split` (of `size` ranks); the rest is dropped.
    fn new(split: itlin::data::Split<T>, rank: usize, size: usize) -> Self {
        let (tr, te) = (
            Shard::of(split.train.len(), rank, size),
            Shard::of(split.test.len(), rank, size),
        );
        if size == 1 {
            return Self {
                train: split.train,
                test: split.test,
                train_shard: tr,
                test_shard: te,
            };
        }
        let keep = |d: itlin::data::Dataset<T>, s: Shard| itlin::data::Dataset {
            x: d.x.as_ref().subrows(s.offset, s.len).to_owned(),
            y: d.y.as_ref().subrows(s.offset, s.len).to_owned(),
            labels: d.labels.map(|l| l[s.range()].to_vec()),
        };
        Self {
            train: keep(split.train, tr),
            test: keep(split.test, te),
            train_shard: tr,
            test_shard: te,
        }
    }
}

/// A data set as a view.
fn view<T: Real>(d: &itlin::data::Dataset<T>) -> DataRef<'_, T> {
    DataRef::new(d.x.as_ref(), d.y.as_ref(), d.labels.as_deref())
}

/// The training itself, with `model` (the network `arch`, evaluated on the CPU or the GPU)
/// and, when given, `engine` for the SGD / Adam inner steps: writes the run files into `dir`
/// (or resumes from its checkpoint) and returns the summary.
#[allow(clippy::too_many_arguments)]
fn fit<'m, T: Real, M: Model<T>>(
    a: &TrainArgs,
    dir: &Path,
    resume: bool,
    arch: &Arch,
    model: &'m M,
    engine: Option<Box<dyn FirstOrderEngine<T> + 'm>>,
    split: &Local<T>,
    cfg: &TrainConfig,
    comm: &'m dyn Comm,
) -> Result<Summary> {
    let root = comm.rank() == 0;
    let ck_path = dir.join("checkpoint.bin");
    let metrics_path = dir.join("metrics.jsonl");
    let mut trainer = if resume {
        let state = checkpoint::load::<T>(&ck_path)?;
        if state.batcher.is_some() && state.n_train != split.train_shard.total {
            return Err(Error::format(
                &ck_path,
                format!(
                    "the checkpoint was made with {} training rows, the data has {}",
                    state.n_train, split.train_shard.total
                ),
            ));
        }
        // keep only the evaluations the checkpoint has seen (a torn last line is dropped)
        let kept = if root && metrics_path.exists() {
            let read = read_metrics_resumable(&metrics_path)?;
            if let Some(note) = read.torn {
                eprintln!("note: {note}");
            }
            let mut text = String::new();
            for (line, m) in &read.lines {
                if m.step <= state.step {
                    text.push_str(line);
                    text.push('\n');
                }
            }
            Some(text)
        } else {
            None
        };
        let trainer = Trainer::from_state(model, state, cfg.clone())?;
        if root {
            rundir::mark_unfinished(dir)?;
            if let Some(text) = kept {
                itlin::report::write_atomic(&metrics_path, text.as_bytes())?;
            }
        }
        trainer
    } else if !root {
        Trainer::new(model, arch.init::<T>(a.seed), cfg.clone())?
    } else {
        rundir::begin_fresh(dir)?;
        let mut args = a.clone();
        args.data = stored_data(&a.data);
        write_json_atomic(
            &dir.join("config.json"),
            &RunConfig {
                version: env!("CARGO_PKG_VERSION").into(),
                args,
                train: cfg.clone(),
            },
        )?;
        std::fs::write(&metrics_path, b"").map_err(|e| Error::io(&metrics_path, e))?;
        let theta0 = arch.init::<T>(a.seed);
        Trainer::new(model, theta0, cfg.clone())?
    };
    if let Some(engine) = engine {
        trainer = trainer.with_engine(engine);
    }
    let bar = (root && !a.quiet).then(|| {
        let b = ProgressBar::new(cfg.steps);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps (eta {eta}) {msg}",
            )
            .expect("valid template"),
        );
        b.set_position(trainer.state().step);
        b
    });
    let mut obs = CliObserver {
        bar,
        writer: if root {
            Some(MetricsWriter::append(&metrics_path)?)
        } else {
            None
        },
        error: None,
    };
    // this rank's shards (the whole sets in a one-process run)
    let (tr, te) = (split.train_shard, split.test_shard);
    let train = view(&split.train);
    let test = (te.total > 0).then(|| view(&split.test));
    if comm.size() > 1 {
        trainer = trainer.with_comm(comm, tr, Some(te));
    }
    let report = trainer.fit(train, test, &mut obs)?;
    if let Some(b) = &obs.bar {
        b.finish_and_clear();
    }
    if let Some(e) = obs.error {
        return Err(e);
    }
    let history = if root {
        itlin::data::npy::write_npy(
            &dir.join("theta.npy"),
            &[trainer.theta().len()],
            trainer.theta(),
        )?;
        let history = read_metrics(&metrics_path)?;
        let title = format!("K={} {}", cfg.period, cfg.inner.name());
        plot_run(dir, &history, &title)?;
        history
    } else {
        report.history.clone()
    };
    let last = history.last().cloned();
    let summary = Summary {
        termination: report.termination,
        steps: report.steps,
        relinearisations: report.relinearisations,
        seconds: report.seconds,
        n_params: model.n_params(),
        n_train: tr.total,
        n_test: te.total,
        best_test_acc: history
            .iter()
            .filter_map(|m| m.test_acc)
            .fold(None, |b: Option<f64>, v| Some(b.map_or(v, |b| b.max(v)))),
        last,
        timings: report.timings,
        rejected_steps: report.rejected_steps,
        divergence: report.divergence,
    };
    if !root {
        return Ok(summary);
    }
    write_json_atomic(&dir.join("summary.json"), &summary)?;
    rundir::finish(dir)?;
    Ok(summary)
}

/// Runs with the precision of the flags.
pub fn run_any(a: &TrainArgs, dir: &Path, resume: bool, comm: &Arc<dyn Comm>) -> Result<Summary> {
    match a.precision {
        Precision::F32 => run::<f32>(a, dir, resume, comm),
        Precision::F64 => run::<f64>(a, dir, resume, comm),
    }
}

/// The summary table printed on stdout ("-" where nothing was measured).
pub fn print_summary(s: &Summary, dir: &Path) {
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2} %", 100.0 * v));
    let num = |v: Option<f64>| {
        v.map_or("-".to_string(), |v| {
            if v != 0.0 && !(1e-4..1e6).contains(&v.abs()) {
                format!("{v:.4e}")
            } else {
                format!("{v:.4}")
            }
        })
    };
    let l = s.last.as_ref();
    let of = |f: fn(&Metrics) -> Option<f64>| l.and_then(f);
    let mut rows = vec![
        ("run directory", dir.display().to_string()),
        ("termination", format!("{:?}", s.termination)),
    ];
    if let Some(d) = &s.divergence {
        rows.push(("divergence", d.to_string()));
    }
    rows.extend([
        ("steps", s.steps.to_string()),
        (
            "last evaluation at step",
            l.map_or("-".into(), |m| m.step.to_string()),
        ),
        (
            "epochs",
            l.map_or("-".into(), |m| format!("{:.2}", m.epoch)),
        ),
        ("re-linearisations", s.relinearisations.to_string()),
        ("parameters", s.n_params.to_string()),
        (
            "train rows / test rows",
            format!("{} / {}", s.n_train, s.n_test),
        ),
        ("train loss (f_lin)", num(of(|m| Some(m.train_loss)))),
        ("train accuracy", pct(of(|m| m.train_acc))),
        ("test loss (f_lin)", num(of(|m| m.test_loss))),
        ("test accuracy (f_lin)", pct(of(|m| m.test_acc))),
        ("test accuracy (network)", pct(of(|m| m.net_test_acc))),
        ("best test accuracy", pct(s.best_test_acc)),
        ("‖θ − θ₀‖", num(of(|m| Some(m.dist_init)))),
        ("kernel distance to init", num(of(|m| m.kernel_distance))),
        ("linearisation error", num(of(|m| m.lin_error))),
        ("wall time", format!("{:.1} s", s.seconds)),
        (
            "inner step (mean of jvp + vjp + update)",
            if s.steps > 0 {
                format!(
                    "{:.3} ms",
                    1e3 * (s.timings.jvp + s.timings.vjp + s.timings.update) / s.steps as f64
                )
            } else {
                "-".into()
            },
        ),
        (
            "time jvp / vjp / update / solve / eval",
            format!(
                "{:.1} / {:.1} / {:.1} / {:.1} / {:.1} s",
                s.timings.jvp, s.timings.vjp, s.timings.update, s.timings.solve, s.timings.eval
            ),
        ),
    ]);
    let w = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    for (k, v) in rows {
        println!("{k:<w$}  {v}");
    }
}
