//! clap definitions of `itlin train` and `itlin sweep`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Iterative linearisation and damped Gauss-Newton for neural networks.
#[derive(Parser, Debug)]
#[command(name = "itlin", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train an MLP by iterative linearisation and write a run directory
    /// (config.json, metrics.jsonl, summary.json, theta.npy, plots).
    Train(TrainArgs),
    /// The paper's experiments: test accuracy against the feature-update period K, a
    /// Gauss-Newton damping sweep with the spectral λ ≈ 1/(ηK) correspondence, and
    /// kernel-distance curves.
    Sweep(SweepArgs),
    /// Measure the kernels and solvers on this machine (the peer script's op names), with
    /// the machine's ceilings measured in the same run.
    Bench(BenchArgs),
}

/// Flags of `itlin bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// MLP widths, comma-separated.
    #[arg(long, default_value = "784,128,128,10", value_delimiter = ',')]
    pub arch: Vec<usize>,
    /// Hidden activation: identity, relu, tanh, gelu, softplus.
    #[arg(long, default_value = "tanh")]
    pub act: String,
    /// Batch sizes N, comma-separated.
    #[arg(long, default_value = "256,1024", value_delimiter = ',')]
    pub n: Vec<usize>,
    /// Precisions to run, comma-separated (f32, f64).
    #[arg(long, value_enum, default_value = "f32", value_delimiter = ',')]
    pub precision: Vec<Precision>,
    /// Device: cpu (cuda benchmarks: `cargo bench --features cuda --bench cuda`).
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: Device,
    /// Ops to run, comma-separated (default all: forward, jvp, vjp, jacobian, j_v, jt_u,
    /// jt_j_v, ntk_structured, ntk_explicit, cholesky, gn_dual_step).
    #[arg(long, value_delimiter = ',')]
    pub ops: Vec<String>,
    /// Timed repeats per op (after one warm-up; ops over ~2e11 flops use at most 3).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Largest N for ntk_explicit (2(NC)²P flops).
    #[arg(long, default_value_t = 256)]
    pub explicit_max_n: usize,
    /// Size of the buffers the bandwidth ceilings stream through, in MiB (well above the
    /// last-level cache).
    #[arg(long, default_value_t = 1024)]
    pub ceiling_mb: usize,
    /// One JSON object per line on stdout ({"op","N","dtype","median_s",...}) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Floating-point precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum Precision {
    /// 32-bit floats.
    F32,
    /// 64-bit floats.
    F64,
}

/// Compute device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum Device {
    /// The CPU (SIMD kernels, all cores).
    Cpu,
    /// An NVIDIA GPU (needs a build with the `cuda` feature).
    Cuda,
}

/// Inner optimiser on the linearised model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum InnerKind {
    /// Mini-batch SGD (with --momentum, --nesterov).
    Sgd,
    /// Adam.
    Adam,
    /// Damped Gauss-Newton on --gn-batch rows (with --damping, --adaptive).
    Gn,
    /// K gradient-descent steps in closed form (MSE only).
    Spectral,
}

/// Form of the Gauss-Newton inner solve (`--gn-form`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize,
)]
pub enum GnFormArg {
    /// Primal when P ≤ N·C, else the dense dual when the (N·C)² kernel fits the memory
    /// budget, else CG.
    #[default]
    Auto,
    /// Cholesky of the P×P system.
    Primal,
    /// Cholesky / LU of the dense (N·C)×(N·C) dual system.
    Dual,
    /// Conjugate gradients (with --precond nystrom:M or pivchol:M: on the dual system,
    /// matrix-free, no (N·C)² matrix).
    Cg,
}

/// How the Gauss-Newton inner steps solve their system (`--gn-form`, `--precond`).
#[derive(Args, Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct GnSolverArgs {
    /// Gauss-Newton solve: auto, primal, dual or cg.
    #[arg(long, value_enum, default_value_t = GnFormArg::Auto)]
    #[serde(default)]
    pub gn_form: GnFormArg,
    /// CG preconditioner (with --gn-form cg): auto, jacobi, none, nystrom:M (rank-M
    /// randomised Nyström of the kernel from uniformly sampled rows; CG then solves the dual
    /// system matrix-free) or pivchol:M (the same with rows chosen by greedy pivoted
    /// Cholesky).
    #[arg(long, default_value = "auto", value_parser = parse_precond)]
    #[serde(default)]
    pub precond: itlin::solve::Preconditioner,
}

fn parse_precond(s: &str) -> Result<itlin::solve::Preconditioner, String> {
    s.parse()
}

/// Flags of `itlin train` (and the model/optimiser part of `itlin sweep`).
#[derive(Args, Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainArgs {
    /// Data: `mnist` (embedded 10k digits: first 8,000 train, last 2,000 test) or a
    /// directory with the four IDX files (train-images-idx3-ubyte, …, optionally .gz) or
    /// x_train.npy, y_train.npy, x_test.npy, y_test.npy.
    #[arg(long, default_value = "mnist")]
    pub data: String,
    /// Use only the first N training rows (for `mnist`: N train, the rest test).
    #[arg(long)]
    pub n_train: Option<usize>,
    /// Layer widths, input to output (input must equal the data width, output the number of
    /// classes / targets).
    #[arg(long, default_value = "784,256,10", value_delimiter = ',')]
    pub arch: Vec<usize>,
    /// Hidden activation: identity, relu, tanh, gelu, softplus.
    #[arg(long, default_value = "relu")]
    pub act: String,
    /// A network of layers instead of `--arch`/`--act`, e.g.
    /// `conv(16,3,pad=1),relu,avgpool(2),conv(32,3,pad=1),relu,avgpool(2),dense(10)`:
    /// dense(OUT), conv(OUT,K[,stride=S][,pad=P]), avgpool(K), maxpool(K), flatten, and the
    /// activations relu, tanh, gelu, softplus, identity. It reads each sample as the data
    /// stores it: IDX images N×H×W as 1×H×W, NPY N×C×H×W as C×H×W, N×D as D×1×1. The last
    /// layer must give as many outputs as the data has classes / targets. CPU only.
    #[arg(long, conflicts_with_all = ["arch", "act"])]
    #[serde(default)]
    pub net: Option<String>,
    /// Loss: mse or ce (softmax cross-entropy).
    #[arg(long, default_value = "ce")]
    pub loss: String,
    /// Feature-update period K in inner steps (1 = plain SGD; `inf` = never re-linearise).
    #[arg(long, default_value = "20")]
    pub k: String,
    /// Inner optimiser on the linearised model.
    #[arg(long, value_enum, default_value_t = InnerKind::Sgd)]
    pub inner: InnerKind,
    /// Learning rate (SGD, Adam, spectral).
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Use Nesterov momentum.
    #[arg(long)]
    pub nesterov: bool,
    /// Gauss-Newton damping λ.
    #[arg(long, default_value_t = 1e-3)]
    pub damping: f64,
    /// Adapt the Gauss-Newton damping (Levenberg-Marquardt).
    #[arg(long)]
    pub adaptive: bool,
    /// Rows per Gauss-Newton / spectral solve (default: 256; at most the training rows).
    #[arg(long, default_value_t = 256)]
    pub gn_batch: usize,
    /// The Gauss-Newton solve.
    #[command(flatten)]
    #[serde(default)]
    pub gn_solver: GnSolverArgs,
    /// Mini-batch size.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Passes over the training set.
    #[arg(long, default_value_t = 40.0)]
    pub epochs: f64,
    /// Total inner steps (overrides --epochs).
    #[arg(long)]
    pub steps: Option<u64>,
    /// L2 weight decay.
    #[arg(long, default_value_t = 5e-4)]
    pub weight_decay: f64,
    /// Learning-rate schedule: constant or cosine.
    #[arg(long, default_value = "cosine")]
    pub schedule: String,
    /// Evaluate every N steps (default: once per epoch).
    #[arg(long)]
    pub eval_every: Option<u64>,
    /// Probe rows for linearisation error and kernel distance (0 = off).
    #[arg(long, default_value_t = 32)]
    pub probe: usize,
    /// Do not measure kernel distances.
    #[arg(long)]
    pub no_kernel_distance: bool,
    /// Seed of the initialisation and of the mini-batch order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Floating-point precision.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
    /// Compute device. With cuda, SGD and Adam inner steps run entirely on the GPU (θ, the
    /// optimiser state and the training set stay in device memory); Gauss-Newton and
    /// spectral inners evaluate the model on the GPU per call.
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// With --device cuda: wait for the GPU after each phase of an inner step, so the
    /// jvp / vjp / update timings are device times (slower; off: the phases record the
    /// time to queue their work and the device time shows up under update).
    #[arg(long)]
    #[serde(default)]
    pub sync_timings: bool,
    /// With --device cuda: run SGD / Adam inner steps with per-call GPU model evaluations
    /// (θ and the batch copied to the device on every call) instead of the resident engine;
    /// for timing comparisons.
    #[arg(long, hide = true)]
    #[serde(default)]
    pub per_call: bool,
    /// Run directory (default: a fresh runs/train-<UTC timestamp>). Must be empty or absent
    /// unless --force.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Allow --out to be a non-empty directory (an earlier run's files in it are removed when
    /// the new run starts; other files are left alone).
    #[arg(long)]
    pub force: bool,
    /// Continue the run in this directory from its checkpoint (its config.json is used; the
    /// other flags are ignored except --quiet).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Checkpoint every N steps (default: at each evaluation).
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// One rank of a data-parallel run: start with `mpirun -np R itlin train --distributed
    /// …` (a build with `--features mpi`). Each rank holds a contiguous shard of the training
    /// and test rows; the ranks draw the same global batches and sum their gradients (one
    /// all-reduce of the P parameters per step), so the run equals the one-process run up to
    /// rounding. Rank 0 alone writes the run directory. SGD and Adam inner steps (with
    /// --device cuda one GPU per rank, the resident engines summing their gradients with
    /// NCCL in a build with --features nccl, else through the host), and Gauss-Newton with
    /// --loss mse --gn-form cg [--precond nystrom:M] (the dual system solved by CG over the
    /// shards).
    #[arg(long)]
    #[serde(default)]
    pub distributed: bool,
    /// With --distributed: seconds a rank waits in one collective (for the slowest rank)
    /// before it stops the run with an error naming the collective.
    #[arg(long, default_value_t = 300.0)]
    #[serde(default = "default_comm_timeout")]
    pub comm_timeout: f64,
}

/// The default of `--comm-timeout` (also for run configs written before it existed).
pub fn default_comm_timeout() -> f64 {
    300.0
}

/// Flags of `itlin sweep`.
#[derive(Args, Debug, Clone)]
pub struct SweepArgs {
    /// Experiments to run: a (accuracy vs K), b (GN damping + spectral correspondence),
    /// c (kernel distance vs step; uses the runs of a).
    #[arg(long, default_value = "a,b,c", value_delimiter = ',')]
    pub what: Vec<String>,
    /// Feature-update periods of experiment (a).
    #[arg(long, default_value = "1,10,100,1000,10000,inf", value_delimiter = ',')]
    pub ks: Vec<String>,
    /// Damping values of experiment (b).
    #[arg(
        long,
        default_value = "1e-5,1e-4,1e-3,1e-2,1e-1,1,10",
        value_delimiter = ','
    )]
    pub dampings: Vec<f64>,
    /// Layer widths of the swept model.
    #[arg(long, default_value = "784,128,10", value_delimiter = ',')]
    pub arch: Vec<usize>,
    /// Hidden activation.
    #[arg(long, default_value = "relu")]
    pub act: String,
    /// A network of layers instead of `--arch`/`--act` (as for `train --net`).
    #[arg(long, conflicts_with_all = ["arch", "act"])]
    pub net: Option<String>,
    /// Data (as for `train`).
    #[arg(long, default_value = "mnist")]
    pub data: String,
    /// Inner steps of every run of (a) (the same for every K).
    #[arg(long, default_value_t = 20_000)]
    pub steps: u64,
    /// Mini-batch size of (a).
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// SGD learning rate of (a) (plain SGD, no momentum, constant).
    #[arg(long, default_value_t = 0.05)]
    pub lr: f64,
    /// Evaluations per run of (a).
    #[arg(long, default_value_t = 20)]
    pub evals: u64,
    /// Gauss-Newton steps per damping value in (b).
    #[arg(long, default_value_t = 100)]
    pub gn_steps: u64,
    /// Rows per Gauss-Newton solve in (b) (also the subset of the spectral comparison).
    #[arg(long, default_value_t = 256)]
    pub gn_batch: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Floating-point precision.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
    /// Compute device of the training runs (as for `train`; the spectral comparison of (b)
    /// runs on the CPU).
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// Output directory (default: a fresh runs/sweep-<UTC timestamp>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Allow --out to be a non-empty directory.
    #[arg(long)]
    pub force: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}
