//! The multi-layer perceptron: layout of θ (see [parameter layout](crate::maths#parameter-layout)),
//! forward, JVP, VJP and the fast explicit Jacobian.

use super::ntk_lower::{Method, explicit_lower, structured_lower};
use super::signals::Signals;
use super::trace::Trace;
use super::{Activation, Init, Jacobian, Model};
use crate::backend::Layer;
use crate::backend::{Backend, Cpu};
use crate::{Error, Real, Result};
use faer::{Mat, MatMut, MatRef};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

mod traced;

/// How the stored parameters enter the pre-activations.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Parameterization {
    /// `z = W a + b`.
    Standard,
    /// `z = σ_w/√fan_in · W a + σ_b b` (Jacot et al.; stored `W, b ~ N(0, 1)`).
    Ntk {
        /// Weight multiplier `σ_w`.
        sigma_w: f64,
        /// Bias multiplier `σ_b`.
        sigma_b: f64,
    },
}

/// A fully connected network `widths = [d, h₁, …, C]` with one activation on every hidden
/// layer and a linear read-out. θ is the concatenation over layers of `W_l` (row-major,
/// `fan_out × fan_in`) then `b_l`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    widths: Vec<usize>,
    activation: Activation,
    parameterization: Parameterization,
    layers: Vec<Layer>,
}

impl Mlp {
    /// An MLP with the standard parameterisation.
    ///
    /// # Errors
    /// [`Error::Config`] if there are fewer than two widths or a width is zero.
    pub fn new(widths: &[usize], activation: Activation) -> Result<Self> {
        Self::with_parameterization(widths, activation, Parameterization::Standard)
    }

    /// An MLP with the given parameterisation.
    ///
    /// # Errors
    /// [`Error::Config`] if there are fewer than two widths, a width is zero, or a σ is not
    /// finite and positive.
    pub fn with_parameterization(
        widths: &[usize],
        activation: Activation,
        parameterization: Parameterization,
    ) -> Result<Self> {
        if widths.len() < 2 {
            return Err(Error::config(format!(
                "an MLP needs at least an input and an output width, got {widths:?}"
            )));
        }
        if let Some(i) = widths.iter().position(|&w| w == 0) {
            return Err(Error::config(format!("width {i} of {widths:?} is zero")));
        }
        if let Parameterization::Ntk { sigma_w, sigma_b } = parameterization
            && !(sigma_w.is_finite() && sigma_w > 0.0 && sigma_b.is_finite() && sigma_b >= 0.0)
        {
            return Err(Error::config(format!(
                "NTK parameterisation needs σ_w > 0 and σ_b ≥ 0, got σ_w={sigma_w}, σ_b={sigma_b}"
            )));
        }
        let mut layers = Vec::with_capacity(widths.len() - 1);
        let mut off = 0;
        for w in widths.windows(2) {
            let (fan_in, fan_out) = (w[0], w[1]);
            let (w_scale, b_scale) = match parameterization {
                Parameterization::Standard => (1.0, 1.0),
                Parameterization::Ntk { sigma_w, sigma_b } => {
                    (sigma_w / (fan_in as f64).sqrt(), sigma_b)
                }
            };
            layers.push(Layer {
                fan_in,
                fan_out,
                w_offset: off,
                b_offset: off + fan_in * fan_out,
                w_scale,
                b_scale,
            });
            off += fan_in * fan_out + fan_out;
        }
        Ok(Self {
            widths: widths.to_vec(),
            activation,
            parameterization,
            layers,
        })
    }

    /// The widths `[d, h₁, …, C]`.
    pub fn widths(&self) -> &[usize] {
        &self.widths
    }
    /// The hidden activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }
    /// The parameterisation.
    pub fn parameterization(&self) -> Parameterization {
        self.parameterization
    }
    /// The layers, input to output.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Draws θ with the given scheme from a ChaCha8 stream seeded by `seed`. Values are drawn
    /// in `f64` and rounded, so `init::<f32>` is `init::<f64>` rounded.
    pub fn init<T: Real>(&self, init: Init, seed: u64) -> Vec<T> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut theta = vec![T::zero_impl(); self.n_params_total()];
        for layer in &self.layers {
            // Effective standard deviations of W and b.
            let (sd_w, sd_b) = match init {
                Init::Standard => {
                    let gain = if self.activation == Activation::Relu {
                        2f64.sqrt()
                    } else {
                        1.0
                    };
                    (gain / (layer.fan_in as f64).sqrt(), 0.0)
                }
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

    fn n_params_total(&self) -> usize {
        self.layers.last().map_or(0, |l| l.b_offset + l.fan_out)
    }

    /// Checks θ and `X` against the MLP (the shape preconditions of every product).
    #[track_caller]
    fn check_theta_x<T: Real>(&self, what: &str, theta: &[T], x: MatRef<'_, T>) {
        self.check_on::<T, Cpu>(what, &theta, &x);
    }

    /// The backprop signals `G_l = ∂f/∂z_l` for all `N·C` outputs and the layer inputs
    /// `A_{l−1}`: everything the explicit Jacobian and the structured NTK are built from.
    ///
    /// # Panics
    /// If `θ.len() != P` or `X` does not have `d` columns.
    #[track_caller]
    pub fn signals<T: Real>(&self, theta: &[T], x: MatRef<'_, T>) -> Signals<T> {
        self.check_theta_x("signals", theta, x);
        let mut tr = Trace::new();
        self.trace_into(theta, x, &mut tr);
        let mut grads = Vec::new();
        self.signals_on(&Cpu, &theta, &tr, &mut grads)
            .unwrap_or_else(|e| unreachable!("the CPU backend does not fail: {e}"));
        // The Jacobian and the structured NTK read the first layer's input from the signals.
        let (n, d) = (x.nrows(), self.widths[0]);
        let mut acts = tr.acts;
        acts[0] = vec![T::zero_impl(); n * d];
        MatMut::from_row_major_slice_mut(&mut acts[0], n, d).copy_from(x);
        Signals {
            n,
            c: self.n_outputs_total(),
            layers: self.layers.clone(),
            acts,
            grads,
            output: tr.output,
        }
    }

    fn n_outputs_total(&self) -> usize {
        *self.widths.last().expect("at least two widths")
    }
}

/// `z ← s_w · a Wᵀ + s_b · b` (all row-major): a dense layer on the CPU backend.
pub(crate) fn affine<T: Real>(theta: &[T], layer: &Layer, a: MatRef<'_, T>, z: &mut [T]) {
    let w = layer.weights(theta);
    let b = &theta[layer.b_offset..layer.b_offset + layer.fan_out];
    let z = MatMut::from_row_major_slice_mut(z, a.nrows(), layer.fan_out);
    let (sw, sb) = (T::from_f64(layer.w_scale), T::from_f64(layer.b_scale));
    Backend::<T>::dense(&Cpu, z, &a, &w, &b, sw, sb)
        .unwrap_or_else(|e| unreachable!("the CPU backend does not fail: {e}"));
}

fn row_major_to_mat<T: Real>(data: &[T], n: usize, c: usize) -> Mat<T> {
    MatRef::from_row_major_slice(data, n, c).to_owned()
}

impl<T: Real> Model<T> for Mlp {
    fn n_params(&self) -> usize {
        self.n_params_total()
    }
    fn n_inputs(&self) -> usize {
        self.widths[0]
    }
    fn n_outputs(&self) -> usize {
        self.n_outputs_total()
    }

    #[track_caller]
    fn forward(&self, theta: &[T], x: MatRef<'_, T>) -> Mat<T> {
        let mut tr = Trace::new();
        self.trace_on(&Cpu, &theta, &x, &mut tr, false)
            .unwrap_or_else(|e| unreachable!("the CPU backend does not fail: {e}"));
        row_major_to_mat(&tr.output, tr.n, self.n_outputs_total())
    }

    /// The convenience form of [`Mlp::trace_into`] + [`Mlp::jvp_with_trace_into`] (fresh
    /// buffers each call).
    #[track_caller]
    fn jvp(&self, theta: &[T], x: MatRef<'_, T>, v: &[T]) -> (Mat<T>, Mat<T>) {
        self.check_theta_x("jvp", theta, x);
        let (mut tr, mut ws) = (Trace::new(), super::Workspace::new());
        Mlp::trace_into(self, theta, x, &mut tr);
        let (n, c) = (x.nrows(), self.n_outputs_total());
        let mut jv = vec![T::zero_impl(); n * c];
        Mlp::jvp_with_trace_into(self, theta, x, &tr, v, &mut jv, &mut ws);
        (
            row_major_to_mat(tr.output(), n, c),
            row_major_to_mat(&jv, n, c),
        )
    }

    /// The convenience form of [`Mlp::trace_into`] + [`Mlp::vjp_with_trace_into`] (fresh
    /// buffers each call).
    #[track_caller]
    fn vjp(&self, theta: &[T], x: MatRef<'_, T>, u: MatRef<'_, T>) -> Vec<T> {
        self.check_theta_x("vjp", theta, x);
        let (mut tr, mut ws) = (Trace::new(), super::Workspace::new());
        Mlp::trace_into(self, theta, x, &mut tr);
        let mut grad = vec![T::zero_impl(); theta.len()];
        Mlp::vjp_with_trace_into(self, theta, x, &tr, u, &mut grad, &mut ws);
        grad
    }

    #[track_caller]
    fn jacobian(&self, theta: &[T], x: MatRef<'_, T>) -> Jacobian<T> {
        let s = self.signals(theta, x);
        let mut j = Jacobian::zeros(s.n * s.c, theta.len());
        s.write_jacobian(j.as_mut_slice());
        j
    }

    #[track_caller]
    fn jacobian_into(&self, theta: &[T], x: MatRef<'_, T>, out: &mut Jacobian<T>) {
        let s = self.signals(theta, x);
        let (m, p) = (s.n * s.c, theta.len());
        if out.nrows() != m || out.ncols() != p {
            *out = Jacobian::zeros(m, p);
        }
        s.write_jacobian(out.as_mut_slice());
    }

    #[track_caller]
    fn trace_into(&self, theta: &[T], x: MatRef<'_, T>, trace: &mut Trace<T>) {
        Mlp::trace_into(self, theta, x, trace);
    }

    #[track_caller]
    fn jvp_with_trace_into(
        &self,
        theta: &[T],
        x: MatRef<'_, T>,
        trace: &Trace<T>,
        v: &[T],
        jv: &mut [T],
        ws: &mut super::Workspace<T>,
    ) {
        Mlp::jvp_with_trace_into(self, theta, x, trace, v, jv, ws);
    }

    #[track_caller]
    fn vjp_with_trace_into(
        &self,
        theta: &[T],
        x: MatRef<'_, T>,
        trace: &Trace<T>,
        u: MatRef<'_, T>,
        grad: &mut [T],
        ws: &mut super::Workspace<T>,
    ) {
        Mlp::vjp_with_trace_into(self, theta, x, trace, u, grad, ws);
    }

    #[track_caller]
    fn ntk_columns(&self, theta: &[T], x: MatRef<'_, T>, samples: &[usize]) -> Mat<T> {
        super::ntk_columns::structured_columns(&self.signals(theta, x), samples)
    }

    #[track_caller]
    fn ntk_diagonal(&self, theta: &[T], x: MatRef<'_, T>) -> Vec<T> {
        super::ntk_columns::structured_diagonal(&self.signals(theta, x))
    }

    #[track_caller]
    fn ntk_lower(&self, theta: &[T], x: MatRef<'_, T>, method: Method) -> Mat<T> {
        let structured = match method {
            Method::Structured => true,
            Method::Explicit => false,
            Method::Auto => {
                let (e, s) = flop_estimates(self, x.nrows());
                s <= e
            }
        };
        if structured {
            structured_lower(&self.signals(theta, x))
        } else {
            explicit_lower(&Model::<T>::jacobian(self, theta, x))
        }
    }
}

/// Flop estimates `(explicit, structured)` of the two NTK methods for an MLP on `N` samples:
/// `J Jᵀ` costs `M² P` with `M = N·C`; the structured form costs
/// `M² Σ_{l<L} fan_out_l + N² Σ_l fan_in_l` (one Gram of signals and one of activations per
/// layer, none of signals for the read-out layer).
pub fn flop_estimates(mlp: &Mlp, n: usize) -> (f64, f64) {
    let c = *mlp.widths().last().expect("widths") as f64;
    let m = n as f64 * c;
    let p = <Mlp as Model<f64>>::n_params(mlp) as f64;
    let sum_out: f64 = mlp.layers()[..mlp.layers().len() - 1]
        .iter()
        .map(|l| l.fan_out as f64)
        .sum();
    let sum_in: f64 = mlp.layers().iter().map(|l| l.fan_in as f64).sum();
    (m * m * p, m * m * sum_out + (n * n) as f64 * sum_in)
}
