//! Proptest strategies over MLP architectures and the fixed, reproducible runner
//! configuration shared by the property tests.

use itlin::{Activation, Init, Mlp, Parameterization};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed};

/// A deterministic runner: ChaCha with a fixed seed and no failure-persistence files, so a
/// CI run draws the same cases every time (a failure prints the minimal case to rerun).
/// For a deeper local sweep, `PROPTEST_CASES` and `PROPTEST_RNG_SEED` override `cases` and
/// `seed` (CI sets neither).
pub fn config(cases: u32, seed: u64) -> Config {
    let env = Config::default(); // reads the PROPTEST_* variables
    let set = |name: &str| std::env::var_os(name).is_some();
    Config {
        cases: if set("PROPTEST_CASES") {
            env.cases
        } else {
            cases
        },
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: if set("PROPTEST_RNG_SEED") {
            env.rng_seed
        } else {
            RngSeed::Fixed(seed)
        },
        failure_persistence: None,
        ..env
    }
}

/// A random MLP: 1–4 layers, every width in 1–9, any activation, either parameterisation
/// (σ_b = 0 included, which makes every bias column of `J` zero).
#[derive(Clone, Debug)]
pub struct Arch {
    /// `[d, h₁, …, C]`.
    pub widths: Vec<usize>,
    /// Hidden activation.
    pub act: Activation,
    /// Parameterisation.
    pub param: Parameterization,
}

impl Arch {
    /// The network.
    pub fn mlp(&self) -> Mlp {
        Mlp::with_parameterization(&self.widths, self.act, self.param).unwrap()
    }
    /// Input width `d`.
    pub fn d(&self) -> usize {
        self.widths[0]
    }
    /// Output width `C`.
    pub fn c(&self) -> usize {
        *self.widths.last().unwrap()
    }
}

/// Strategy for [`Arch`].
pub fn arch() -> impl Strategy<Value = Arch> {
    let widths = (1usize..=4).prop_flat_map(|depth| prop::collection::vec(1usize..=9, depth + 1));
    let param = prop_oneof![
        Just(Parameterization::Standard),
        (0.5f64..2.0, prop_oneof![Just(0.0), 0.1f64..1.0])
            .prop_map(|(sigma_w, sigma_b)| Parameterization::Ntk { sigma_w, sigma_b }),
    ];
    (
        widths,
        prop::sample::select(Activation::ALL.to_vec()),
        param,
    )
        .prop_map(|(widths, act, param)| Arch { widths, act, param })
}

/// θ with non-zero biases (effective `W ~ N(0, 1.5²/fan_in)`, `b ~ N(0, 0.5²)`), so that
/// every path of the network is exercised.
pub fn theta<T: itlin::Real>(mlp: &Mlp, seed: u64) -> Vec<T> {
    mlp.init(
        Init::Ntk {
            sigma_w: 1.5,
            sigma_b: 0.5,
        },
        seed,
    )
}
