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

use faer::Mat;
use itlin::dist::{Comm, MpiComm, Shard};
use itlin::solve::{Form, GaussNewtonStep, Loss, ShardedCg, dual_cg_step_sharded};
use itlin::{Activation, Init, Mlp, Model};
use std::time::{Duration, Instant};

fn rel2(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let n: f64 = b.iter().map(|y| y * y).sum();
    (d / n).sqrt()
}

fn main() -> itlin::Result<()> {
    let comm = MpiComm::init(Duration::from_secs(600))?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("{k}=")).map(str::to_string))
    };
    let n: usize = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000)
        .min(10_000);
    let landmarks: usize = get("rank").map_or(1000, |v| v.parse().expect("rank=M"));
    let lambda: f64 = get("lambda").map_or(1e-3, |v| v.parse().expect("lambda=L"));
    let reps: usize = get("reps").map_or(1, |v| v.parse().expect("reps=K"));
    let widths: Vec<usize> = get("arch").map_or(vec![784, 256, 10], |v| {
        v.split(',')
            .map(|w| w.parse().expect("arch=a,b,c"))
            .collect()
    });
    let split = itlin::data::mnist_embedded_split::<f64>(8000)?;
    let (tr, te) = (&split.train, &split.test);
    let take = |i: usize, j: usize, y: bool| {
        let (m, i) = if i < tr.x.nrows() {
            (if y { &tr.y } else { &tr.x }, i)
        } else {
            (if y { &te.y } else { &te.x }, i - tr.x.nrows())
        };
        m[(i, j)]
    };
    let x = Mat::from_fn(n, widths[0], |i, j| take(i, j, false));
    let y = Mat::from_fn(n, *widths.last().expect("widths"), |i, j| take(i, j, true));
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
    let dense = (root && comm.size() == 1 && args.iter().any(|a| a == "dense")).then(|| {
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
