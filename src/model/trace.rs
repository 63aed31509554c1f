//! The reusable buffers of the workspace tier: a forward [`Trace`] at a point θ on a batch
//! `X` (what a JVP and a VJP at the same θ and `X` both need) and a [`Workspace`] of scratch
//! for the products. Both keep their allocations between calls, so repeated steps on batches
//! of one shape allocate nothing after the first.

/// A forward pass at θ on `X` kept for reuse: for a network of layers, the input `A_{l−1}`
/// (row-major `N × w_{l−1}`) and the activation derivative `φ'(z_l)` of every hidden layer,
/// and the output `f(X; θ)` (row-major `N × C`). For a model without layer structure only
/// the output is kept (see [`Model::trace_into`](super::Model::trace_into)).
///
/// The trace is valid only for the θ and `X` it was made at; the `_with_trace_into`
/// products must be called with those same θ and `X`.
#[derive(Clone, Debug, Default)]
pub struct Trace<T> {
    /// Rows `N` of the batch.
    pub(crate) n: usize,
    /// `acts[l]`: the input of layer `l` for `l ≥ 1` (row-major; `acts[0]` is unused).
    pub(crate) acts: Vec<Vec<T>>,
    /// `derivs[l]`: `φ'(z)` at the input of layer `l` for `l ≥ 1` (`derivs[0]` is unused).
    pub(crate) derivs: Vec<Vec<T>>,
    /// `f(X; θ)`, row-major `N × C`.
    pub(crate) output: Vec<T>,
    /// Scratch for pre-activations while tracing.
    pub(crate) z: Vec<T>,
    /// `index[l]`: for a max-pooling layer `l` of a network, the flat input index of each
    /// window's first maximum (per sample, row-major `N × out`); empty otherwise.
    pub(crate) index: Vec<Vec<u32>>,
    /// A second scratch buffer for a network's intermediate outputs.
    pub(crate) scratch: Vec<T>,
}

impl<T> Trace<T> {
    /// An empty trace (no allocation until first filled).
    pub fn new() -> Self {
        Self {
            n: 0,
            acts: Vec::new(),
            derivs: Vec::new(),
            output: Vec::new(),
            z: Vec::new(),
            index: Vec::new(),
            scratch: Vec::new(),
        }
    }
    /// Rows `N` of the traced batch.
    pub fn n_rows(&self) -> usize {
        self.n
    }
    /// `f(X; θ)` as a row-major slice of `N·C` entries (row `n`, output `k` at `n·C + k`).
    pub fn output(&self) -> &[T] {
        &self.output
    }
}

/// Scratch for the workspace-tier JVP and VJP (two ping-pong buffers of `N × width`
/// entries). Reused across calls; it only grows.
#[derive(Clone, Debug, Default)]
pub struct Workspace<T> {
    pub(crate) a: Vec<T>,
    pub(crate) b: Vec<T>,
}

impl<T> Workspace<T> {
    /// An empty workspace (no allocation until first used).
    pub fn new() -> Self {
        Self {
            a: Vec::new(),
            b: Vec::new(),
        }
    }
}

/// Sets `v` to length `len`, reusing its capacity (new entries are zero; every caller
/// overwrites all of them).
pub(crate) fn set_len<T: Copy + Default>(v: &mut Vec<T>, len: usize) {
    v.resize(len, T::default());
}
