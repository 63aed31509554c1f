//! Train a model written in user code with the iterative-linearisation trainer.
//!
//! The model is a two-layer network with a sine activation, `f_c(x) = Σ_h V_ch sin(w_h · x)`,
//! written by hand: implementing `forward`, `jvp` and `vjp` of [`itlin::Model`] is all the
//! trainer needs. It is trained on a synthetic regression task with K = 1 (SGD), K = 20 and
//! K = ∞ (the linearised model at initialisation).
//!
//! Run: `cargo run --release --example custom_model`

use faer::{Mat, MatRef};
use itlin::Model;
use itlin::train::{DataRef, Inner, Loss, Period, TrainConfig, Trainer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `f_c(x) = Σ_h V[c,h] sin(W[h,:] · x)`; θ = (W row-major `H × d`, then V row-major `C × H`).
struct SineNet {
    d: usize,
    h: usize,
    c: usize,
}

impl SineNet {
    fn split<'a>(&self, theta: &'a [f64]) -> (&'a [f64], &'a [f64]) {
        theta.split_at(self.h * self.d)
    }
    /// Pre-activations `z[n,h] = W[h,:] · x[n,:]` for a weight block `w`.
    fn pre(&self, w: &[f64], x: MatRef<'_, f64>) -> Mat<f64> {
        Mat::from_fn(x.nrows(), self.h, |n, h| {
            (0..self.d).map(|j| w[h * self.d + j] * x[(n, j)]).sum()
        })
    }
}

impl Model<f64> for SineNet {
    fn n_params(&self) -> usize {
        self.h * self.d + self.c * self.h
    }
    fn n_inputs(&self) -> usize {
        self.d
    }
    fn n_outputs(&self) -> usize {
        self.c
    }
    fn forward(&self, theta: &[f64], x: MatRef<'_, f64>) -> Mat<f64> {
        let (w, v) = self.split(theta);
        let z = self.pre(w, x);
        Mat::from_fn(x.nrows(), self.c, |n, c| {
            (0..self.h)
                .map(|h| v[c * self.h + h] * z[(n, h)].sin())
                .sum()
        })
    }
    fn jvp(&self, theta: &[f64], x: MatRef<'_, f64>, t: &[f64]) -> (Mat<f64>, Mat<f64>) {
        let (w, v) = self.split(theta);
        let (dw, dv) = self.split(t);
        let (z, dz) = (self.pre(w, x), self.pre(dw, x));
        let f = self.forward(theta, x);
        let jv = Mat::from_fn(x.nrows(), self.c, |n, c| {
            (0..self.h)
                .map(|h| {
                    dv[c * self.h + h] * z[(n, h)].sin()
                        + v[c * self.h + h] * z[(n, h)].cos() * dz[(n, h)]
                })
                .sum()
        });
        (f, jv)
    }
    fn vjp(&self, theta: &[f64], x: MatRef<'_, f64>, u: MatRef<'_, f64>) -> Vec<f64> {
        let (w, v) = self.split(theta);
        let z = self.pre(w, x);
        let mut g = vec![0.0; self.n_params()];
        let (gw, gv) = g.split_at_mut(self.h * self.d);
        for n in 0..x.nrows() {
            for h in 0..self.h {
                let (s, co) = z[(n, h)].sin_cos();
                let mut back = 0.0;
                for c in 0..self.c {
                    gv[c * self.h + h] += u[(n, c)] * s;
                    back += u[(n, c)] * v[c * self.h + h];
                }
                for j in 0..self.d {
                    gw[h * self.d + j] += back * co * x[(n, j)];
                }
            }
        }
        g
    }
}

fn main() -> itlin::Result<()> {
    let (d, h, c, n) = (3, 32, 1, 200);
    let model = SineNet { d, h, c };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x = Mat::from_fn(n, d, |_, _| rng.random::<f64>() * 2.0 - 1.0);
    // target: a smooth function the features have to move to fit well
    let y = Mat::from_fn(n, c, |i, _| {
        (3.0 * x[(i, 0)]).sin() * x[(i, 1)] + x[(i, 2)].powi(2)
    });
    let (xt, yt) = (x.subrows(150, 50), y.subrows(150, 50));
    let (xs, ys) = (x.subrows(0, 150), y.subrows(0, 150));
    let theta0: Vec<f64> = (0..model.n_params())
        .map(|i| {
            let s = if i < h * d {
                1.0
            } else {
                1.0 / (h as f64).sqrt()
            };
            s * (rng.random::<f64>() * 2.0 - 1.0) * 3f64.sqrt()
        })
        .collect();
    println!(
        "{:>6} {:>12} {:>12} {:>8}",
        "K", "train MSE", "test MSE", "relin"
    );
    for period in [Period::Steps(1), Period::Steps(20), Period::Never] {
        let cfg = TrainConfig::new()
            .with_period(period)
            .with_inner(Inner::Sgd {
                lr: 0.2,
                momentum: 0.9,
                nesterov: false,
            })
            .with_loss(Loss::Mse)
            .with_batch(25)
            .with_steps(3000)
            .with_eval_every(3000)
            .with_probe(10);
        let mut trainer = Trainer::new(&model, theta0.clone(), cfg)?;
        let report = trainer.fit(
            DataRef::new(xs, ys, None),
            Some(DataRef::new(xt, yt, None)),
            &mut (),
        )?;
        let m = report.last().expect("one evaluation");
        println!(
            "{:>6} {:>12.5} {:>12.5} {:>8}",
            period.to_string(),
            m.train_loss,
            m.test_loss.unwrap_or(f64::NAN),
            m.relinearisations
        );
    }
    Ok(())
}
