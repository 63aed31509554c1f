//! The damped Gauss-Newton step (MSE) by preconditioned CG over rows sharded across MPI
//! ranks ([`dual_cg_step_sharded`]), on the embedded MNIST digits with an MLP at its
//! initialisation; with `dense` (one rank) also the dense dual step for comparison.
//!
//! ```text
//! cargo build --release --features mpi --example gn_sharded
//! mpirun -np R target/release/examples/gn_sharded [N] [rank=M] [lambda=L] [arch=a,b,c] [dense] [reps=K]
//! ```
//!
//! Rank 0 prints one markdown row per repetition: ranks, N·C, M, the preconditioner's and
//! CG's seconds, CG iterations, relative residual and backward error, and with `dense` the
//! relative difference `‖δ − δ_dense‖ / ‖δ_dense‖`.

#[path = "common/mnist_gn.rs"]
mod mnist_gn;

use itlin::dist::{Comm, MpiComm, Shard};
use itlin::solve::{Form, GaussNewtonStep, Loss, ShardedCg, dual_cg_step_sharded};
use itlin::{Activation, Init, Mlp, Model};
use mnist_gn::{Args, digits};
use std::time::{Duration, Instant};

fn rel2(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let n: f64 = b.iter().map(|y| y * y).sum();
    (d / n).sqrt()
}

fn main() -> itlin::Result<()> {
    let comm = MpiComm::init(Duration::from_secs(600))?;
    let args = Args::from_env();
    let n = args.n();
    let landmarks: usize = args.parse_or("rank", 1000);
    let lambda: f64 = args.parse_or("lambda", 1e-3);
    let reps: usize = args.parse_or("reps", 1);
    let widths = args.widths();
    let (x, y) = digits(n, widths[0], *widths.last().expect("widths"));
    let mlp = Mlp::new(&widths, Activation::Relu)?;
    let theta: Vec<f64> = mlp.init(Init::Standard, 0);
    let c = Model::<f64>::n_outputs(&mlp);
    let shard = Shard::of(n, comm.rank(), comm.size());
    let xs = x.as_ref().subrows(shard.offset, shard.len);
    // g = r = f − y on this rank's rows (sample-major)
    let f = mlp.forward(&theta, xs);
    let g: Vec<f64> = (0..shard.len)
        .flat_map(|i| (0..c).map(move |k| (i, k)))
        .map(|(i, k)| f[(i, k)] - y[(shard.offset + i, k)])
        .collect();
    let root = comm.rank() == 0;
    let dense = (root && comm.size() == 1 && args.has("dense")).then(|| {
        let t = Instant::now();
        let (d, _) = GaussNewtonStep::new(Loss::Mse)
            .with_damping(lambda)
            .with_form(Form::Dual)
            .with_memory_budget(u64::MAX)
            .solve(&mlp, &theta, x.as_ref(), y.as_ref());
        (d, t.elapsed().as_secs_f64())
    });
    if root {
        println!(
            "N = {n}, N·C = {}, P = {}, λ = {lambda:e}, MSE, f64, {} ranks × {} threads",
            n * c,
            Model::<f64>::n_params(&mlp),
            comm.size(),
            rayon::current_num_threads()
        );
        if let Some((_, s)) = &dense {
            println!("dense dual step: {s:.2} s");
        }
        println!(
            "\n| ranks | N·C | M | precond s | CG s | step s | iterations | rel. residual | backward error | ‖δ − δ_dense‖/‖δ_dense‖ |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
    }
    let opts = ShardedCg {
        landmarks,
        seed: 1,
        ..Default::default()
    };
    for _ in 0..reps {
        comm.barrier()?;
        let t = Instant::now();
        let (d, rep) =
            dual_cg_step_sharded(&comm, &mlp, &theta, xs, shard, &g, n as f64 * lambda, &opts)?;
        let secs = t.elapsed().as_secs_f64();
        if root {
            println!(
                "| {} | {} | {} | {:.2} | {:.2} | {secs:.2} | {} | {:.1e} | {:.1e} | {} |",
                comm.size(),
                n * c,
                rep.preconditioner_rank,
                rep.seconds_precond,
                rep.seconds_solve,
                rep.outcome.iterations,
                rep.outcome.relative_residual,
                rep.outcome.backward_error,
                dense
                    .as_ref()
                    .map_or("-".into(), |(dd, _)| format!("{:.1e}", rel2(&d, dd))),
            );
        }
    }
    Ok(())
}
