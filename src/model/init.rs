//! Parameter initialisation schemes.

/// How [`Mlp::init`](super::Mlp::init) draws θ. Every scheme is described by the distribution
/// of the *effective* weights (after the parameterisation's scaling), so the same scheme gives
/// the same function at initialisation under either parameterisation.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Init {
    /// LeCun normal (He normal for ReLU): effective `W ~ N(0, g²/fan_in)` with gain
    /// `g = √2` for ReLU and `1` otherwise; biases zero.
    Standard,
    /// Effective `W ~ N(0, σ_w²/fan_in)`, `b ~ N(0, σ_b²)` (the NTK-paper initialisation;
    /// under `Parameterization::Ntk` with the same σ's the stored values are `N(0, 1)`).
    Ntk {
        /// Weight scale `σ_w`.
        sigma_w: f64,
        /// Bias scale `σ_b`.
        sigma_b: f64,
    },
}
