//! The reusable buffers of the workspace tier: a forward [`Trace`] at a point θ on a batch
//! `X` (what a JVP and a VJP at the same θ and `X` both need) and a [`Workspace`] of scratch
//! for the products. Both keep their allocations between calls, so repeated steps on batches
//! of one shape allocate nothing after the first. Both live on a [`Backend`]: the default
//! [`Cpu`] keeps them in host memory, a GPU backend in device memory.

use crate::Real;
use crate::backend::{Backend, Cpu};

/// A forward pass at θ on `X` kept for reuse: for a network of layers, the input `A_{l−1}`
/// (row-major `N × w_{l−1}`) and the activation derivative `φ'(z_l)` of every hidden layer,
/// and the output `f(X; θ)` (row-major `N × C`). For a model without layer structure only
/// the output is kept (see [`Model::trace_into`](super::Model::trace_into)).
///
/// The trace is valid only for the θ and `X` it was made at; the `_with_trace_into`
/// products must be called with those same θ and `X`.
pub struct Trace<T: Real, B: Backend<T> = Cpu> {
    /// Rows `N` of the batch.
    pub(crate) n: usize,
    /// `acts[l]`: the input of layer `l` for `l ≥ 1` (row-major; `acts[0]` is unused).
    pub(crate) acts: Vec<B::Buf>,
    /// `derivs[l]`: `φ'(z)` at the input of layer `l` for `l ≥ 1` (`derivs[0]` is unused).
    pub(crate) derivs: Vec<B::Buf>,
    /// `f(X; θ)`, row-major `N × C`.
    pub(crate) output: B::Buf,
    /// Scratch for pre-activations while tracing.
    pub(crate) z: B::Buf,
    /// `index[l]`: for a max-pooling layer `l` of a network, the flat input index of each
    /// window's first maximum (per sample, row-major `N × out`); empty otherwise.
    pub(crate) index: Vec<Vec<u32>>,
    /// A second scratch buffer for a network's intermediate outputs.
    pub(crate) scratch: Vec<T>,
}

impl<T: Real, B: Backend<T>> Trace<T, B> {
    /// An empty trace (no allocation until first filled).
    pub fn new() -> Self {
        Self {
            n: 0,
            acts: Vec::new(),
            derivs: Vec::new(),
            output: B::Buf::default(),
            z: B::Buf::default(),
            index: Vec::new(),
            scratch: Vec::new(),
        }
    }
    /// Rows `N` of the traced batch.
    pub fn n_rows(&self) -> usize {
        self.n
    }
    /// The input `A_{l−1}` of layer `l ≥ 1` on the backend (row-major `N × fan_in`); for
    /// `l = 0` empty, unless the trace was made for backprop signals (then a copy of `X`).
    ///
    /// # Panics
    /// If `l` is not a layer of the traced model.
    pub fn input_buf(&self, l: usize) -> &B::Buf {
        &self.acts[l]
    }
    /// `φ'(z)` at the input of layer `l ≥ 1` on the backend (row-major `N × fan_in`; empty
    /// for `l = 0` and for a trace taken without derivatives).
    ///
    /// # Panics
    /// If `l` is not a layer of the traced model.
    pub fn derivative_buf(&self, l: usize) -> &B::Buf {
        &self.derivs[l]
    }
    /// `f(X; θ)` on the backend: `N·C` entries, row-major (row `n`, output `k` at
    /// `n·C + k`).
    pub fn output_buf(&self) -> &B::Buf {
        &self.output
    }
}

impl<T: Real> Trace<T> {
    /// `f(X; θ)` as a row-major slice of `N·C` entries (row `n`, output `k` at `n·C + k`).
    pub fn output(&self) -> &[T] {
        &self.output
    }
}

impl<T: Real, B: Backend<T>> Default for Trace<T, B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Real> Clone for Trace<T> {
    fn clone(&self) -> Self {
        Self {
            n: self.n,
            acts: self.acts.clone(),
            derivs: self.derivs.clone(),
            output: self.output.clone(),
            z: self.z.clone(),
            index: self.index.clone(),
            scratch: self.scratch.clone(),
        }
    }
}

impl<T: Real, B: Backend<T>> std::fmt::Debug for Trace<T, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace")
            .field("n", &self.n)
            .field("layers", &self.acts.len())
            .finish_non_exhaustive()
    }
}

/// Scratch for the workspace-tier JVP and VJP (two ping-pong buffers of `N × width`
/// entries). Reused across calls; it only grows.
pub struct Workspace<T: Real, B: Backend<T> = Cpu> {
    pub(crate) a: B::Buf,
    pub(crate) b: B::Buf,
}

impl<T: Real, B: Backend<T>> Workspace<T, B> {
    /// An empty workspace (no allocation until first used).
    pub fn new() -> Self {
        Self {
            a: B::Buf::default(),
            b: B::Buf::default(),
        }
    }
}

impl<T: Real, B: Backend<T>> Default for Workspace<T, B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Real> Clone for Workspace<T> {
    fn clone(&self) -> Self {
        Self {
            a: self.a.clone(),
            b: self.b.clone(),
        }
    }
}

impl<T: Real, B: Backend<T>> std::fmt::Debug for Workspace<T, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace").finish_non_exhaustive()
    }
}

/// Sets `v` to length `len`, reusing its capacity (new entries are zero; every caller
/// overwrites all of them).
pub(crate) fn set_len<T: Copy + Default>(v: &mut Vec<T>, len: usize) {
    v.resize(len, T::default());
}
