//! The multi-layer perceptron: layout of θ (see [parameter layout](crate::maths#parameter-layout)),
//! forward, JVP, VJP and the fast explicit Jacobian.

use super::layer::Layer;
use super::ntk_lower::{Method, explicit_lower, structured_lower};
use super::signals::Signals;
use super::trace::Trace;
use super::{Activation, Init, Jacobian, Model};
use crate::{Error, Real, Result};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

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

pub(crate) fn par() -> Par {
    faer::get_global_parallelism()
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

    #[track_caller]
    fn check_theta_x<T: Real>(&self, what: &str, theta: &[T], x: MatRef<'_, T>) {
        assert_eq!(
            theta.len(),
            self.n_params_total(),
            "Mlp::{what}: θ has length {}, the MLP {:?} has {} parameters",
            theta.len(),
            self.widths,
            self.n_params_total()
        );
        assert_eq!(
            x.ncols(),
            self.widths[0],
            "Mlp::{what}: X is {}×{}, the MLP {:?} takes {} inputs",
            x.nrows(),
            x.ncols(),
            self.widths,
            self.widths[0]
        );
    }

    /// Forward pass keeping what backprop needs: `acts[l]` is the (row-major `N × w_l`)
    /// input of layer `l` for `l ≥ 1` (`acts[0]` is a row-major copy of X only when
    /// `input_rows`: the GEMMs read X in place, whatever its strides), `derivs[l]` is `φ'(z)`
    /// at that input (for `l ≥ 1`), and `output` is `f(X; θ)` row-major `N × C`.
    pub(crate) fn trace<T: Real>(
        &self,
        theta: &[T],
        x: MatRef<'_, T>,
        keep_derivs: bool,
        input_rows: bool,
    ) -> Trace<T> {
        let n = x.nrows();
        let mut acts = Vec::with_capacity(self.layers.len());
        let mut derivs = Vec::with_capacity(self.layers.len());
        let mut x0 = Vec::new();
        if input_rows {
            x0 = vec![T::zero_impl(); n * self.widths[0]];
            MatMut::from_row_major_slice_mut(&mut x0, n, self.widths[0]).copy_from(x);
        }
        acts.push(x0);
        derivs.push(Vec::new());
        let last = self.layers.len() - 1;
        let mut output = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            let mut z = vec![T::zero_impl(); n * layer.fan_out];
            let input = if l == 0 {
                x
            } else {
                MatRef::from_row_major_slice(&acts[l], n, layer.fan_in)
            };
            affine(theta, layer, input, &mut z);
            if l == last {
                output = z;
            } else {
                let mut a = vec![T::zero_impl(); z.len()];
                if keep_derivs {
                    let mut d = vec![T::zero_impl(); z.len()];
                    self.activation.apply_slice(&z, &mut a, Some(&mut d));
                    derivs.push(d);
                } else {
                    self.activation.apply_slice(&z, &mut a, None);
                    derivs.push(Vec::new());
                }
                acts.push(a);
            }
        }
        Trace {
            n,
            acts,
            derivs,
            output,
            z: Vec::new(),
            index: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// The backprop signals `G_l = ∂f/∂z_l` for all `N·C` outputs and the layer inputs
    /// `A_{l−1}`: everything the explicit Jacobian and the structured NTK are built from.
    ///
    /// # Panics
    /// If `θ.len() != P` or `X` does not have `d` columns.
    #[track_caller]
    pub fn signals<T: Real>(&self, theta: &[T], x: MatRef<'_, T>) -> Signals<T> {
        self.check_theta_x("signals", theta, x);
        let tr = self.trace(theta, x, true, true);
        let (n, c) = (tr.n, self.n_outputs_total());
        let m = n * c;
        let nl = self.layers.len();
        let mut grads: Vec<Vec<T>> = vec![Vec::new(); nl];
        // G_L: row n·C + k is e_k.
        let mut g_last = vec![T::zero_impl(); m * c];
        for r in 0..m {
            g_last[r * c + r % c] = T::one_impl();
        }
        grads[nl - 1] = g_last;
        for l in (1..nl).rev() {
            let layer = &self.layers[l];
            let mut g_prev = vec![T::zero_impl(); m * layer.fan_in];
            {
                let w = layer.weights(theta);
                let g = MatRef::from_row_major_slice(&grads[l], m, layer.fan_out);
                let dst = MatMut::from_row_major_slice_mut(&mut g_prev, m, layer.fan_in);
                matmul(dst, Accum::Replace, g, w, T::from_f64(layer.w_scale), par());
            }
            let d = &tr.derivs[l];
            let h = layer.fan_in;
            g_prev.par_chunks_mut(h).enumerate().for_each(|(r, row)| {
                T::mul_elementwise(row, &d[(r / c) * h..(r / c + 1) * h]);
            });
            grads[l - 1] = g_prev;
        }
        Signals {
            n,
            c,
            layers: self.layers.clone(),
            acts: tr.acts,
            grads,
            output: tr.output,
        }
    }

    fn n_outputs_total(&self) -> usize {
        *self.widths.last().expect("at least two widths")
    }
}

impl<T: Real> Trace<T> {
    /// The input of layer `l` as a matrix: X itself for the first layer.
    fn input<'a>(&'a self, l: usize, x: MatRef<'a, T>, fan_in: usize) -> MatRef<'a, T> {
        if l == 0 {
            x
        } else {
            MatRef::from_row_major_slice(&self.acts[l], self.n, fan_in)
        }
    }
}

/// `z ← s_w · a Wᵀ + s_b · b` (all row-major).
pub(crate) fn affine<T: Real>(theta: &[T], layer: &Layer, a: MatRef<'_, T>, z: &mut [T]) {
    let n = a.nrows();
    let b = &theta[layer.b_offset..layer.b_offset + layer.fan_out];
    let sb = T::from_f64(layer.b_scale);
    for row in z.chunks_exact_mut(layer.fan_out) {
        for (zi, &bi) in row.iter_mut().zip(b) {
            *zi = sb * bi;
        }
    }
    let w = layer.weights(theta);
    let dst = MatMut::from_row_major_slice_mut(z, n, layer.fan_out);
    matmul(
        dst,
        Accum::Add,
        a,
        w.transpose(),
        T::from_f64(layer.w_scale),
        par(),
    );
}

/// `x ← x ⊙ d` with the SIMD kernel, split across threads only when large enough to pay
/// for waking the pool.
pub(crate) fn mul_elementwise_par<T: Real>(x: &mut [T], d: &[T]) {
    const SERIAL_BELOW: usize = 1 << 16;
    if x.len() < SERIAL_BELOW {
        T::mul_elementwise(x, d);
    } else {
        x.par_chunks_mut(SERIAL_BELOW / 4)
            .zip(d.par_chunks(SERIAL_BELOW / 4))
            .for_each(|(xc, dc)| T::mul_elementwise(xc, dc));
    }
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
        self.check_theta_x("forward", theta, x);
        let tr = self.trace(theta, x, false, false);
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
