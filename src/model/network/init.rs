//! Initial θ of a network, drawn exactly as [`Mlp::init`](crate::Mlp::init) draws it: one
//! ChaCha8 stream, layers in order, `W` then `b`, standard normals in `f64` scaled and then
//! rounded to `T`.

use super::net::Network;
use super::spec::LayerKind;
use crate::Real;
use crate::model::{Activation, Init};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

impl Network {
    /// The gain `g` of [`Init::Standard`] for parameterised layer `i`: `√2` if the nearest
    /// activation after it is ReLU, else `1`; a layer with no activation after it takes the
    /// gain of the last activation before it (so a read-out layer after ReLU hidden layers gets
    /// `√2`, as in the [`Mlp`](crate::Mlp)); `1` in a network without activations.
    pub fn init_gain(&self, i: usize) -> f64 {
        let act = |l: &super::NetLayer| match l.kind {
            LayerKind::Activation(a) => Some(a),
            _ => None,
        };
        let a = self.layers[i + 1..]
            .iter()
            .find_map(act)
            .or_else(|| self.layers[..i].iter().rev().find_map(act));
        if a == Some(Activation::Relu) {
            2f64.sqrt()
        } else {
            1.0
        }
    }

    /// Draws θ with the given scheme from a ChaCha8 stream seeded by `seed`: for each
    /// parameterised layer in order, `W` (row-major) then `b`, each entry one `f64` standard
    /// normal times the effective standard deviation divided by the parameterisation's scale:
    /// - [`Init::Standard`]: effective `W ~ N(0, g²/fan_in)` ([`init_gain`](Self::init_gain)),
    ///   `b = 0` (still drawn, so the stream matches the MLP's);
    /// - [`Init::Ntk`]: effective `W ~ N(0, σ_w²/fan_in)`, `b ~ N(0, σ_b²)`.
    ///
    /// `fan_in` is the input width of a dense layer and `C_in·K·K` for a conv. Values are
    /// drawn in `f64` and rounded, so `init::<f32>` is `init::<f64>` rounded; a dense network
    /// gets exactly the θ of the equivalent [`Mlp`](crate::Mlp).
    pub fn init<T: Real>(&self, init: Init, seed: u64) -> Vec<T> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut theta = vec![T::zero_impl(); self.n_params];
        for (i, nl) in self.layers.iter().enumerate() {
            let Some(layer) = nl.params else { continue };
            let (sd_w, sd_b) = match init {
                Init::Standard => (self.init_gain(i) / (layer.fan_in as f64).sqrt(), 0.0),
                Init::Ntk { sigma_w, sigma_b } => (sigma_w / (layer.fan_in as f64).sqrt(), sigma_b),
            };
            let (sd_w, sd_b) = (
                sd_w / layer.w_scale,
                if layer.b_scale > 0.0 {
                    sd_b / layer.b_scale
                } else {
                    0.0
                },
            );
            for t in &mut theta[layer.w_offset..layer.b_offset] {
                let z: f64 = StandardNormal.sample(&mut rng);
                *t = T::from_f64(sd_w * z);
            }
            for t in &mut theta[layer.b_offset..layer.b_offset + layer.fan_out] {
                let z: f64 = StandardNormal.sample(&mut rng);
                *t = T::from_f64(sd_b * z);
            }
        }
        theta
    }
}
