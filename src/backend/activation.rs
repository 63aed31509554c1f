//! Element-wise activations `φ` and their derivatives `φ'`.

use crate::Real;
use rayon::prelude::*;
use std::fmt;
use std::str::FromStr;

/// Activation function of the hidden layers (the read-out layer is always linear).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `φ(z) = z`.
    Identity,
    /// `φ(z) = max(z, 0)`, with `φ'(0) = 0`.
    Relu,
    /// `φ(z) = tanh z`, `φ'(z) = 1 − tanh² z`.
    Tanh,
    /// Exact GELU `φ(z) = z Φ(z) = z (1 + erf(z/√2)) / 2`, `φ'(z) = Φ(z) + z e^{−z²/2}/√(2π)`.
    Gelu,
    /// `φ(z) = ln(1 + e^z)`, `φ'(z) = 1/(1 + e^{−z})`.
    Softplus,
}

const INV_SQRT2: f64 = std::f64::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

impl Activation {
    /// All activations, in declaration order (for tests and sweeps).
    pub const ALL: [Activation; 5] = [
        Activation::Identity,
        Activation::Relu,
        Activation::Tanh,
        Activation::Gelu,
        Activation::Softplus,
    ];

    /// `φ(z)`.
    #[inline]
    pub fn apply<T: Real>(self, z: T) -> T {
        self.apply_with_derivative(z).0
    }

    /// `φ'(z)`.
    #[inline]
    pub fn derivative<T: Real>(self, z: T) -> T {
        self.apply_with_derivative(z).1
    }

    /// `(φ(z), φ'(z))`, sharing the transcendental work between both.
    #[inline]
    pub fn apply_with_derivative<T: Real>(self, z: T) -> (T, T) {
        let one = T::one_impl();
        let zero = T::zero_impl();
        match self {
            Activation::Identity => (z, one),
            Activation::Relu => {
                if z > zero {
                    (z, one)
                } else {
                    (zero, zero)
                }
            }
            Activation::Tanh => {
                let t = z.tanh();
                (t, one - t * t)
            }
            Activation::Gelu => {
                let half = T::from_f64(0.5);
                let cdf = half * (one + (z * T::from_f64(INV_SQRT2)).erf());
                let pdf = T::from_f64(INV_SQRT_2PI) * (-(half * z * z)).exp();
                (z * cdf, cdf + z * pdf)
            }
            Activation::Softplus => {
                // σ(z) computed without overflow for either sign.
                let e = (-z.abs()).exp();
                let sig = if z >= zero {
                    one / (one + e)
                } else {
                    e / (one + e)
                };
                (z.softplus(), sig)
            }
        }
    }

    /// Fused pass: `a ← φ(z)` and, when given, `d ← φ'(z)`, in parallel chunks for large
    /// inputs (serially below 65,536 entries, where waking the thread pool costs more).
    ///
    /// # Panics
    /// If the slices have different lengths.
    #[track_caller]
    pub fn apply_slice<T: Real>(self, z: &[T], a: &mut [T], d: Option<&mut [T]>) {
        assert_eq!(
            z.len(),
            a.len(),
            "activation: z has {} entries, a has {}",
            z.len(),
            a.len()
        );
        // Chunks of work per rayon task; below PAR_MIN entries one thread is faster than
        // waking the pool (tens of microseconds, far more on a busy machine).
        const CHUNK: usize = 16384;
        const PAR_MIN: usize = 1 << 16;
        if self == Activation::Tanh {
            // Vectorised tanh (and 1 − tanh²) kernel, in parallel chunks for large inputs.
            if z.len() < PAR_MIN {
                T::tanh_slice(z, a, d);
            } else if let Some(d) = d {
                z.par_chunks(CHUNK)
                    .zip(a.par_chunks_mut(CHUNK))
                    .zip(d.par_chunks_mut(CHUNK))
                    .for_each(|((z, a), d)| T::tanh_slice(z, a, Some(d)));
            } else {
                z.par_chunks(CHUNK)
                    .zip(a.par_chunks_mut(CHUNK))
                    .for_each(|(z, a)| T::tanh_slice(z, a, None));
            }
            return;
        }
        match d {
            Some(d) => {
                assert_eq!(
                    z.len(),
                    d.len(),
                    "activation: z has {} entries, d has {}",
                    z.len(),
                    d.len()
                );
                let run = |(z, a, d): (&[T], &mut [T], &mut [T])| {
                    for ((&zi, ai), di) in z.iter().zip(a).zip(d) {
                        let (v, dv) = self.apply_with_derivative(zi);
                        *ai = v;
                        *di = dv;
                    }
                };
                if z.len() < PAR_MIN {
                    run((z, a, d));
                } else {
                    z.par_chunks(CHUNK)
                        .zip(a.par_chunks_mut(CHUNK))
                        .zip(d.par_chunks_mut(CHUNK))
                        .for_each(|((z, a), d)| run((z, a, d)));
                }
            }
            None => {
                if self == Activation::Identity {
                    a.copy_from_slice(z);
                    return;
                }
                let run = |(z, a): (&[T], &mut [T])| {
                    for (&zi, ai) in z.iter().zip(a) {
                        *ai = self.apply(zi);
                    }
                };
                if z.len() < PAR_MIN {
                    run((z, a));
                } else {
                    z.par_chunks(CHUNK)
                        .zip(a.par_chunks_mut(CHUNK))
                        .for_each(run);
                }
            }
        }
    }

    /// The lowercase name used by the CLI and in run configs.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Gelu => "gelu",
            Activation::Softplus => "softplus",
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activation {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        Activation::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                crate::Error::config(format!(
                    "unknown activation '{s}'; expected one of identity, relu, tanh, gelu, softplus"
                ))
            })
    }
}
