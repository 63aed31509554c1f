//! The [`Network`] type: construction from a spec string, the layer table, accessors and
//! the shape checks of the public entry points.

use super::shape::{self, InputShape, NetLayer, Shape};
use super::spec;
use crate::model::trace::Trace;
use crate::model::{Layer, Mlp, Parameterization};
use crate::{Real, Result};
use faer::{Mat, MatRef};

/// A network of layers (see the [module docs](super) for the layout and
/// [`spec`](super::spec) for the spec string).
///
/// ```
/// use itlin::{Init, Model, Network};
/// let net = Network::from_spec((1, 28, 28), "conv(8,3,pad=1),relu,avgpool(2),dense(10)")?;
/// assert_eq!(net.output_shape(), (10, 1, 1));
/// assert_eq!(Model::<f64>::n_params(&net), 8 * 9 + 8 + 10 * 8 * 14 * 14 + 10);
/// let theta: Vec<f64> = net.init(Init::Standard, 0);
/// let x = faer::Mat::<f64>::zeros(2, 784);
/// assert_eq!(net.forward(&theta, x.as_ref()).ncols(), 10);
/// # Ok::<(), itlin::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    pub(super) input: Shape,
    pub(super) layers: Vec<NetLayer>,
    pub(super) parameterization: Parameterization,
    pub(super) n_params: usize,
}

impl Network {
    /// The network described by `spec` on inputs of shape `input_shape` (`C×H×W`; a plain
    /// `D` is `D×1×1`), with the standard parameterisation.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config), one line naming the layer (1-based index and
    /// its text), for an unknown layer, a bad or unknown argument, a zero size, a kernel
    /// larger than the padded input, a pooling window larger than its input; also for an
    /// empty spec, a zero input dimension or a spec without dense or conv layer.
    pub fn from_spec(input_shape: impl Into<InputShape>, spec: &str) -> Result<Network> {
        Self::with_parameterization(input_shape, spec, Parameterization::Standard)
    }

    /// As [`from_spec`](Self::from_spec) with the given parameterisation; under
    /// [`Parameterization::Ntk`] a layer computes `σ_w/√fan_in · (W ⋆ a) + σ_b b` with
    /// `fan_in = IN` (dense) or `C_in·K·K` (conv).
    ///
    /// # Errors
    /// As [`from_spec`](Self::from_spec), and for σ's that are not finite and positive.
    pub fn with_parameterization(
        input_shape: impl Into<InputShape>,
        spec: &str,
        p: Parameterization,
    ) -> Result<Network> {
        let input = input_shape.into();
        let items = spec::parse(spec)?;
        let layers = shape::build(input, &items, p)?;
        let n_params = layers
            .iter()
            .rev()
            .find_map(|l| l.params)
            .map_or(0, |l| l.b_offset + l.fan_out);
        Ok(Network {
            input,
            layers,
            parameterization: p,
            n_params,
        })
    }

    /// The input shape `(C, H, W)`.
    pub fn input_shape(&self) -> (usize, usize, usize) {
        self.input.dims()
    }
    /// The shape `(C, H, W)` of the last layer's output (`f` is it flattened).
    pub fn output_shape(&self) -> (usize, usize, usize) {
        self.layers
            .last()
            .expect("a network has layers")
            .output
            .dims()
    }
    /// The layers, input to output, with their shapes and θ offsets.
    pub fn layers(&self) -> &[NetLayer] {
        &self.layers
    }
    /// The parameterisation.
    pub fn parameterization(&self) -> Parameterization {
        self.parameterization
    }
    /// The canonical spec string (lowercase, no spaces, default arguments omitted);
    /// `Network::from_spec(net.input_shape(), &net.spec())` is `net` again.
    pub fn spec(&self) -> String {
        self.layers
            .iter()
            .map(|l| l.kind.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Index of the first layer with parameters (the reverse pass stops there).
    pub(super) fn first_param(&self) -> usize {
        self.layers
            .iter()
            .position(|l| l.params.is_some())
            .expect("a network has a parameterised layer")
    }

    pub(super) fn n_out(&self) -> usize {
        self.layers
            .last()
            .expect("a network has layers")
            .output
            .size()
    }

    #[track_caller]
    pub(super) fn check_theta_x<T: Real>(&self, what: &str, theta: &[T], x: MatRef<'_, T>) {
        assert_eq!(
            theta.len(),
            self.n_params,
            "Network::{what}: θ has length {}, the network `{}` has {} parameters",
            theta.len(),
            self.spec(),
            self.n_params
        );
        assert_eq!(
            x.ncols(),
            self.input.size(),
            "Network::{what}: X is {}×{}, the network takes inputs of {} = {} entries",
            x.nrows(),
            x.ncols(),
            self.input,
            self.input.size()
        );
    }

    /// Checks that `trace` was made by this network on a batch of `X`'s rows; returns `N`.
    #[track_caller]
    pub(super) fn check_trace<T: Real>(
        &self,
        what: &str,
        x: MatRef<'_, T>,
        trace: &Trace<T>,
    ) -> usize {
        let n = x.nrows();
        let ok = trace.n == n
            && trace.acts.len() == self.layers.len()
            && trace.index.len() == self.layers.len()
            && trace.acts[0].len() == n * self.input.size()
            && trace.output.len() == n * self.n_out();
        assert!(
            ok,
            "Network::{what}: the trace was made on {} rows by another model or not at all; X has {n} rows (call trace_into first)",
            trace.n
        );
        n
    }
}

impl From<&Mlp> for Network {
    /// The dense network `dense(h₁),φ,…,dense(C)` of an [`Mlp`] (same parameterisation,
    /// θ layout, outputs and derivatives). [`Network::init`] gives the MLP's θ whenever the
    /// MLP has a hidden layer; a one-layer MLP with ReLU draws its read-out with gain `√2`
    /// from an activation it never applies, which the network (without activations) does not.
    fn from(mlp: &Mlp) -> Self {
        let widths = mlp.widths();
        let act = mlp.activation();
        let mut items = Vec::new();
        for (l, &w) in widths[1..].iter().enumerate() {
            if l > 0 {
                items.push(act.name().to_string());
            }
            items.push(format!("dense({w})"));
        }
        Network::with_parameterization(widths[0], &items.join(","), mlp.parameterization())
            .expect("an Mlp's architecture is a valid network")
    }
}

impl Mlp {
    /// The equivalent dense [`Network`] (see `From<&Mlp> for Network`).
    pub fn to_network(&self) -> Network {
        Network::from(self)
    }
}

pub(super) fn row_major_to_mat<T: Real>(data: &[T], n: usize, c: usize) -> Mat<T> {
    MatRef::from_row_major_slice(data, n, c).to_owned()
}

/// The parameter block of a layer that has one.
pub(super) fn params_of(l: &NetLayer) -> &Layer {
    l.params
        .as_ref()
        .expect("a dense or conv layer has parameters")
}
