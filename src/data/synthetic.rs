//! The synthetic teacher-student regression problem.

use super::{Dataset, Split};
use crate::{Activation, Error, Init, Mlp, Model, Real, Result};
use faer::Mat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// Configuration of the teacher-student regression problem of [`teacher_student`]:
/// inputs `x ~ N(0, I_d)`, targets `y = f_teacher(x) + ε`, `ε ~ N(0, noise² I_C)`, where
/// the teacher is an [`Mlp`] with the given widths `[d, …, C]` and activation, initialised
/// with [`Init::Standard`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TeacherStudent {
    /// Number of training samples (at least 1).
    pub n_train: usize,
    /// Number of test samples.
    pub n_test: usize,
    /// Teacher widths `[d, h₁, …, C]`.
    pub widths: Vec<usize>,
    /// Teacher hidden activation.
    pub activation: Activation,
    /// Standard deviation of the label noise (finite, `≥ 0`).
    pub noise: f64,
}

impl Default for TeacherStudent {
    /// 1,000 training and 1,000 test samples, teacher `[16, 32, 1]` with tanh, noise 0.1.
    fn default() -> Self {
        Self {
            n_train: 1000,
            n_test: 1000,
            widths: vec![16, 32, 1],
            activation: Activation::Tanh,
            noise: 0.1,
        }
    }
}

/// `n` samples from stream `stream` of the seed: per sample, `d` inputs then `C` noise draws.
fn draw<T: Real>(
    teacher: &Mlp,
    theta: &[f64],
    noise: f64,
    n: usize,
    seed: u64,
    stream: u64,
) -> Dataset<T> {
    let (d, c) = (teacher.widths()[0], *teacher.widths().last().unwrap_or(&0));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut xs = Vec::with_capacity(n * d);
    let mut eps = Vec::with_capacity(n * c);
    for _ in 0..n {
        xs.extend((0..d).map(|_| rng.sample::<f64, _>(StandardNormal)));
        eps.extend((0..c).map(|_| noise * rng.sample::<f64, _>(StandardNormal)));
    }
    let x64 = Mat::from_fn(n, d, |i, j| xs[i * d + j]);
    let f = teacher.forward(theta, x64.as_ref());
    Dataset {
        x: Mat::from_fn(n, d, |i, j| T::from_f64(xs[i * d + j])),
        y: Mat::from_fn(n, c, |i, j| T::from_f64(f[(i, j)] + eps[i * c + j])),
        labels: None,
    }
}

/// A deterministic teacher-student regression split (see [`TeacherStudent`]).
///
/// Everything is drawn in `f64` from ChaCha8 streams of `seed` and rounded to `T`, so the
/// `f32` set is the `f64` set rounded: the teacher's θ from [`Mlp::init`] with `seed`, the
/// training samples from stream 1 and the test samples from stream 2. Sample `n` depends only
/// on `seed` and `n`, so changing `n_train` neither changes the first training samples nor
/// the test set.
///
/// # Errors
/// [`Error::Config`] if the widths do not form a valid [`Mlp`], `n_train` is zero, or
/// `noise` is negative or not finite.
pub fn try_teacher_student<T: Real>(cfg: &TeacherStudent, seed: u64) -> Result<Split<T>> {
    let teacher = Mlp::new(&cfg.widths, cfg.activation)?;
    if cfg.n_train == 0 {
        return Err(Error::config(
            "teacher-student: the training set needs at least one sample",
        ));
    }
    if !(cfg.noise.is_finite() && cfg.noise >= 0.0) {
        return Err(Error::config(format!(
            "teacher-student: the noise standard deviation must be finite and ≥ 0, got {}",
            cfg.noise
        )));
    }
    let theta: Vec<f64> = teacher.init(Init::Standard, seed);
    Ok(Split {
        train: draw(&teacher, &theta, cfg.noise, cfg.n_train, seed, 1),
        test: draw(&teacher, &theta, cfg.noise, cfg.n_test, seed, 2),
    })
}

/// As [`try_teacher_student`], for configurations known to be valid.
///
/// # Panics
/// If the configuration is invalid (see [`try_teacher_student`]'s errors).
#[track_caller]
pub fn teacher_student<T: Real>(cfg: &TeacherStudent, seed: u64) -> Split<T> {
    match try_teacher_student(cfg, seed) {
        Ok(s) => s,
        Err(e) => panic!("teacher_student: {e}"),
    }
}
