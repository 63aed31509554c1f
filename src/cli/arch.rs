//! The model of a run: an [`Mlp`] from `--arch`/`--act`, or a [`Network`] of layers from
//! `--net SPEC` on the data's sample shape; checked against the data before anything runs.

use faer::{Mat, MatRef};
use itlin::data::SampleShape;
use itlin::model::{LayerKind, Trace, Workspace};
use itlin::ntk::Method;
use itlin::{Activation, Error, Init, Jacobian, Mlp, Model, Network, Real, Result};

/// The network a run trains.
#[derive(Clone, Debug)]
pub enum Arch {
    /// `--arch` widths with one `--act` activation.
    Mlp(Mlp),
    /// `--net SPEC`.
    Net(Network),
}

/// Joins widths as `--arch` spells them.
fn widths_text(w: &[usize]) -> String {
    w.iter()
        .map(|w| w.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

impl Arch {
    /// The model of `--net` (when given) or `--arch`/`--act`, for data of `d` features per
    /// sample stored as `shape`, and `c` outputs.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad spec or widths, a net whose input or output does not
    /// match the data, and a net with spatial layers on data without an image shape.
    pub fn from_flags(
        net: Option<&str>,
        arch: &[usize],
        act: &str,
        shape: &SampleShape,
        d: usize,
        c: usize,
    ) -> Result<Self> {
        let Some(spec) = net else {
            let act: Activation = act.parse()?;
            if arch.len() < 2 || arch[0] != d || arch[arch.len() - 1] != c {
                return Err(Error::config(format!(
                    "--arch {}: the data has {d} inputs and {c} outputs, so --arch must start with {d} and end with {c}",
                    widths_text(arch)
                )));
            }
            return Ok(Arch::Mlp(Mlp::new(arch, act)?));
        };
        let image = shape.image();
        let input = image.unwrap_or((d, 1, 1));
        let net = Network::from_spec(input, spec).map_err(|e| match e {
            Error::Config(m) => Error::config(format!("--net: {m}")),
            e => e,
        })?;
        let spatial = net.layers().iter().any(|l| {
            matches!(
                l.kind,
                LayerKind::Conv { .. } | LayerKind::AvgPool { .. } | LayerKind::MaxPool { .. }
            )
        });
        if spatial && image.is_none() {
            return Err(Error::config(format!(
                "--net {spec}: conv and pool layers need image data (N×H×W or N×C×H×W); these features have per-sample shape {:?} (test {:?})",
                shape.train, shape.test
            )));
        }
        let out = Model::<f64>::n_outputs(&net);
        if out != c {
            return Err(Error::config(format!(
                "--net {spec}: the network has {out} outputs but the data has {c} (make the last layer dense({c}))"
            )));
        }
        Ok(Arch::Net(net))
    }

    /// θ₀ with the standard initialisation from `seed`.
    pub fn init<T: Real>(&self, seed: u64) -> Vec<T> {
        match self {
            Arch::Mlp(m) => m.init(Init::Standard, seed),
            Arch::Net(n) => n.init(Init::Standard, seed),
        }
    }

    /// The MLP, when the run trains one (the CUDA paths take only MLPs).
    pub fn as_mlp(&self) -> Option<&Mlp> {
        match self {
            Arch::Mlp(m) => Some(m),
            Arch::Net(_) => None,
        }
    }

    /// How the model is described in messages: `--arch 784,256,10` or `--net SPEC`.
    pub fn describe(&self) -> String {
        match self {
            Arch::Mlp(m) => format!("--arch {}", widths_text(m.widths())),
            Arch::Net(n) => format!("--net {}", n.spec()),
        }
    }

    /// Entries per sample of what the forward pass keeps (every layer's output, and for
    /// conv layers the `H'W' × C_in K²` patch matrix behind it).
    pub fn per_sample_activations(&self) -> u64 {
        match self {
            Arch::Mlp(m) => m.widths().iter().map(|&w| w as u64).sum(),
            Arch::Net(n) => {
                let (c, h, w) = n.input_shape();
                let mut s = (c * h * w) as u64;
                for l in n.layers() {
                    s = s.saturating_add(l.output.size() as u64);
                    if let LayerKind::Conv { kernel, .. } = l.kind {
                        let patch =
                            (l.output.h * l.output.w) as u64 * (l.input.c * kernel * kernel) as u64;
                        s = s.saturating_add(patch);
                    }
                }
                s
            }
        }
    }

    /// Bytes per evaluated row of `size`-byte reals that an evaluation holds at its peak:
    /// for an MLP four copies of the activations (values, derivatives, tangents and the
    /// evaluation buffers); a network of layers keeps one trace entry per activation and
    /// patch (measured: 2.35 GB peak RSS for the 20,490-parameter benchmark CNN evaluating
    /// 8,000 rows in f32, where this model says 3.7 GB).
    pub fn eval_bytes_per_row(&self, size: u64) -> u64 {
        let acts = self.per_sample_activations();
        match self {
            Arch::Mlp(_) => acts.saturating_mul(4 * size),
            Arch::Net(_) => acts.saturating_mul(3 * size) / 2,
        }
    }
}

/// Every method of [`Model`] is forwarded (defaults included), so an [`Arch::Mlp`] runs
/// exactly the MLP's own implementations.
macro_rules! both {
    ($self:ident, $m:ident => $e:expr) => {
        match $self {
            Arch::Mlp($m) => $e,
            Arch::Net($m) => $e,
        }
    };
}

impl<T: Real> Model<T> for Arch {
    fn n_params(&self) -> usize {
        both!(self, m => Model::<T>::n_params(m))
    }
    fn n_inputs(&self) -> usize {
        both!(self, m => Model::<T>::n_inputs(m))
    }
    fn n_outputs(&self) -> usize {
        both!(self, m => Model::<T>::n_outputs(m))
    }
    fn forward(&self, theta: &[T], x: MatRef<'_, T>) -> Mat<T> {
        both!(self, m => m.forward(theta, x))
    }
    fn jvp(&self, theta: &[T], x: MatRef<'_, T>, v: &[T]) -> (Mat<T>, Mat<T>) {
        both!(self, m => m.jvp(theta, x, v))
    }
    fn vjp(&self, theta: &[T], x: MatRef<'_, T>, u: MatRef<'_, T>) -> Vec<T> {
        both!(self, m => m.vjp(theta, x, u))
    }
    fn jacobian(&self, theta: &[T], x: MatRef<'_, T>) -> Jacobian<T> {
        both!(self, m => m.jacobian(theta, x))
    }
    fn jacobian_into(&self, theta: &[T], x: MatRef<'_, T>, out: &mut Jacobian<T>) {
        both!(self, m => m.jacobian_into(theta, x, out))
    }
    fn ntk_lower(&self, theta: &[T], x: MatRef<'_, T>, method: Method) -> Mat<T> {
        both!(self, m => m.ntk_lower(theta, x, method))
    }
    fn ntk_columns(&self, theta: &[T], x: MatRef<'_, T>, samples: &[usize]) -> Mat<T> {
        both!(self, m => m.ntk_columns(theta, x, samples))
    }
    fn ntk_diagonal(&self, theta: &[T], x: MatRef<'_, T>) -> Vec<T> {
        both!(self, m => m.ntk_diagonal(theta, x))
    }
    fn trace_into(&self, theta: &[T], x: MatRef<'_, T>, trace: &mut Trace<T>) {
        both!(self, m => m.trace_into(theta, x, trace))
    }
    fn jvp_with_trace_into(
        &self,
        theta: &[T],
        x: MatRef<'_, T>,
        trace: &Trace<T>,
        v: &[T],
        jv: &mut [T],
        ws: &mut Workspace<T>,
    ) {
        both!(self, m => m.jvp_with_trace_into(theta, x, trace, v, jv, ws))
    }
    fn vjp_with_trace_into(
        &self,
        theta: &[T],
        x: MatRef<'_, T>,
        trace: &Trace<T>,
        u: MatRef<'_, T>,
        grad: &mut [T],
        ws: &mut Workspace<T>,
    ) {
        both!(self, m => m.vjp_with_trace_into(theta, x, trace, u, grad, ws))
    }
}
