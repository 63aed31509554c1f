//! The [`Mlp`] on the device: forward pass, JVP, VJP, backprop signals and the explicit
//! Jacobian, with cuBLAS GEMMs for the layer products and the crate's kernels for the rest.
//! Same maths, layout and scales as the CPU implementation in `src/model/`.
//!
//! All matrices are row-major device buffers: `X` is `N × d`, outputs are `N × C`, `θ` and
//! tangents have the [parameter layout](crate::maths#parameter-layout), `J` is `(N·C) × P` with row `n·C + c`.

use super::blas::CudaReal;
use super::context::CudaBackend;
use super::ops;
use crate::backend::cuda::{DevMat, DevSlice, DeviceBuf};
use crate::model::{Trace, Workspace};
use crate::{Mlp, Model, Result};
use cudarc::driver::{CudaSlice, DevicePtrMut};

/// What a device forward pass keeps for backprop: the crate's [`Trace`] on the CUDA
/// backend (layer inputs `A_{l−1}` for `l ≥ 1`, `φ'` at them, and `f(X; θ)`, all row-major
/// device buffers). The traces of [`signals`] also hold a copy of `X` as the first layer's
/// input, which the Jacobian writers and the NTK read.
pub type DeviceTrace<T> = Trace<T, CudaBackend>;

/// Device twin of [`crate::model::Signals`]: the trace plus the backprop signals
/// `G_l = ∂f/∂z_l` (row-major `(N·C) × fan_out`) of every layer.
#[derive(Debug)]
pub struct DeviceSignals<T: CudaReal> {
    /// The forward trace (layer inputs with `X` first, derivatives, output).
    pub trace: DeviceTrace<T>,
    /// `G_l` for each layer `l`, input to output.
    pub grads: Vec<DeviceBuf<T>>,
}

/// θ (or a tangent) as a backend view.
fn vec_view<T>(v: &CudaSlice<T>) -> DevSlice<'_, T> {
    DevSlice(v.slice(..))
}

/// `X` (`N × d`, row-major) as a backend view.
#[track_caller]
fn x_view<'a, T>(mlp: &Mlp, what: &str, x: &'a CudaSlice<T>, n: usize) -> DevMat<'a, T> {
    let d = mlp.widths()[0];
    assert_eq!(
        x.len(),
        n * d,
        "cuda::mlp::{what}: X has {} entries, expected N×d = {n}×{d}",
        x.len()
    );
    DevMat {
        view: x.slice(..),
        rows: n,
        cols: d,
        trans: false,
    }
}

/// The device buffer out of a backend buffer that the algorithm has sized.
fn into_slice<T>(b: DeviceBuf<T>) -> CudaSlice<T> {
    b.into_inner()
        .unwrap_or_else(|| unreachable!("every output buffer is sized before it is written"))
}

/// Forward pass keeping the layer inputs and (when `keep_derivs`) the activation
/// derivatives: [`Mlp::trace_on`] on the CUDA backend.
///
/// # Panics
/// If `θ.len() != P` or `x.len() != N·d`.
///
/// # Errors
/// [`crate::Error::Device`] on a driver, cuBLAS or kernel failure.
#[track_caller]
pub fn trace<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    theta: &CudaSlice<T>,
    x: &CudaSlice<T>,
    n: usize,
    keep_derivs: bool,
) -> Result<DeviceTrace<T>> {
    let xm = x_view(mlp, "trace", x, n);
    let mut tr = Trace::new();
    mlp.trace_on(be, &vec_view(theta), &xm, &mut tr, keep_derivs)?;
    Ok(tr)
}

/// `f(X; θ)`, row-major `N × C`.
///
/// # Panics
/// If `θ.len() != P` or `x.len() != N·d`.
///
/// # Errors
/// [`crate::Error::Device`] on a driver, cuBLAS or kernel failure.
#[track_caller]
pub fn forward<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    theta: &CudaSlice<T>,
    x: &CudaSlice<T>,
    n: usize,
) -> Result<CudaSlice<T>> {
    Ok(into_slice(trace(be, mlp, theta, x, n, false)?.output))
}

/// Forward mode: `(f(X; θ), J v)`, both row-major `N × C` ([`Mlp::jvp_on`] on the CUDA
/// backend: `ż_l = s_w (ȧ_{l−1} Wᵀ + a_{l−1} dWᵀ) + s_b db`, `ȧ_l = φ'(z_l) ⊙ ż_l`).
///
/// # Panics
/// If `θ.len() != P`, `v.len() != P` or `x.len() != N·d`.
///
/// # Errors
/// [`crate::Error::Device`] on a driver, cuBLAS or kernel failure.
#[track_caller]
pub fn jvp<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    theta: &CudaSlice<T>,
    x: &CudaSlice<T>,
    n: usize,
    v: &CudaSlice<T>,
) -> Result<(CudaSlice<T>, CudaSlice<T>)> {
    let tr = trace(be, mlp, theta, x, n, true)?;
    let jv = jvp_with_trace(be, mlp, theta, x, &tr, v)?;
    Ok((into_slice(tr.output), jv))
}

/// Forward mode on a trace of `x` at θ: `J v` (row-major `N × C`) by [`Mlp::jvp_on`], the
/// trace's output being `f(X; θ)` (one forward pass serves a JVP and a VJP).
///
/// # Panics
/// If `v.len() != P` or the trace does not belong to this MLP and `x`.
///
/// # Errors
/// [`crate::Error::Device`] on a driver, cuBLAS or kernel failure.
#[track_caller]
pub fn jvp_with_trace<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    theta: &CudaSlice<T>,
    x: &CudaSlice<T>,
    tr: &DeviceTrace<T>,
    v: &CudaSlice<T>,
) -> Result<CudaSlice<T>> {
    let xm = x_view(mlp, "jvp", x, tr.n_rows());
    let c = <Mlp as Model<f64>>::n_outputs(mlp);
    let mut jv = be.alloc_uninit::<T>(tr.n_rows() * c)?;
    let mut ws = Workspace::new();
    mlp.jvp_on(
        be,
        &vec_view(theta),
        &xm,
        tr,
        &vec_view(v),
        jv.slice_mut(..),
        &mut ws,
    )?;
    Ok(jv)
}

/// Reverse mode on a trace of `x`: `Jᵀ u` (length `P`) for a cotangent `u` (row-major
/// `N × C`) ([`Mlp::vjp_on`] on the CUDA backend).
///
/// # Panics
/// If `u.len() != N·C` or the trace does not belong to this MLP and `x`.
///
/// # Errors
/// [`crate::Error::Device`] on a driver, cuBLAS or kernel failure.
#[track_caller]
pub fn vjp_with_trace<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    theta: &CudaSlice<T>,
    x: &CudaSlice<T>,
    tr: &DeviceTrace<T>,
    u: &CudaSlice<T>,
) -> Result<CudaSlice<T>> {
    let n = tr.n_rows();
    let c = <Mlp as Model<f64>>::n_outputs(mlp);
    assert_eq!(
        u.len(),
        n * c,
        "cuda::mlp::vjp: cotangent has {} entries, expected N×C = {n}×{c}",
        u.len()
    );
    let xm = x_view(mlp, "vjp", x, n);
    let um = DevMat {
        view: u.slice(..),
        rows: n,
        cols: c,
        trans: false,
    };
    let mut grad = be.alloc_uninit::<T>(theta.len())?;
    let mut ws = Workspace::new();
    mlp.vjp_on(
        be,
        &vec_view(theta),
        &xm,
        tr,
        &um,
        grad.slice_mut(..),
        &mut ws,
    )?;
    Ok(grad)
}

/// Reverse mode: `Jᵀ u` (length `P`) for a cotangent `u` (row-major `N × C`).
///
/// # Panics
/// If `θ.len() != P`, `x.len() != N·d` or `u.len() != N·C`.
///
/// # Errors
/// [`crate::Error::Device`] on a driver, cuBLAS or kernel failure.
#[track_caller]
pub fn vjp<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    theta: &CudaSlice<T>,
    x: &CudaSlice<T>,
    n: usize,
    u: &CudaSlice<T>,
) -> Result<CudaSlice<T>> {
    let tr = trace(be, mlp, theta, x, n, true)?;
    vjp_with_trace(be, mlp, theta, x, &tr, u)
}

/// The backprop signals `G_l` of all `N·C` outputs and the forward trace
/// ([`Mlp::signals_on`] on the CUDA backend: `G_L` has rows `e_c`,
/// `G_{l−1} = s_w (G_l W_l) ⊙ φ'(z_{l−1})`); the trace holds a copy of `X` as the first
/// layer's input.
///
/// # Panics
/// If `θ.len() != P` or `x.len() != N·d`.
///
/// # Errors
/// [`crate::Error::Device`] on a driver, cuBLAS or kernel failure.
#[track_caller]
pub fn signals<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    theta: &CudaSlice<T>,
    x: &CudaSlice<T>,
    n: usize,
) -> Result<DeviceSignals<T>> {
    let mut tr = trace(be, mlp, theta, x, n, true)?;
    let mut grads = Vec::new();
    mlp.signals_on(be, &vec_view(theta), &tr, &mut grads)?;
    let mut x0 = be.alloc_uninit::<T>(x.len())?;
    if !x.is_empty() {
        be.stream()
            .memcpy_dtod(x, &mut x0)
            .map_err(super::context::dev_err("copying X"))?;
    }
    tr.acts[0] = DeviceBuf::new(x0);
    Ok(DeviceSignals { trace: tr, grads })
}

/// `(N·C, P, C)` of the Jacobian built from `s`, checking the output buffer and that the
/// signals belong to `mlp` (the shared precondition of every `write_jacobian*`).
#[track_caller]
fn jacobian_shape<T: CudaReal>(
    what: &str,
    mlp: &Mlp,
    s: &DeviceSignals<T>,
    len: usize,
) -> (usize, usize, usize) {
    let c = <Mlp as Model<f64>>::n_outputs(mlp);
    let p = <Mlp as Model<f64>>::n_params(mlp);
    let m = s.trace.n_rows() * c;
    assert_eq!(
        len,
        m * p,
        "cuda::mlp::{what}: buffer of {len} for a {m}×{p} Jacobian"
    );
    assert_eq!(
        s.grads.len(),
        mlp.layers().len(),
        "cuda::mlp::{what}: signals of another MLP"
    );
    (m, p, c)
}

/// Writes the explicit Jacobian (row-major `(N·C) × P`) from device signals into `j`:
/// [`write_jacobian_stripes`] with its default block shape (the fastest on an H100:
/// 2.8 TB/s in f32, 3.0 TB/s in f64 for 784-128-128-10), which itself falls back to
/// [`write_jacobian_flat`] / [`write_jacobian_per_layer`] for shapes it does not take.
///
/// # Panics
/// If `j.len() != N·C·P` or the signals are not those of `mlp`.
///
/// # Errors
/// [`crate::Error::Device`] on a kernel failure.
#[track_caller]
pub fn write_jacobian<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    s: &DeviceSignals<T>,
    j: &mut impl DevicePtrMut<T>,
) -> Result<()> {
    write_jacobian_stripes(be, mlp, s, j, ops::StripeOpts::default())
}

/// Writes the explicit Jacobian (row-major `(N·C) × P`) from device signals into `j`, all
/// layers in one launch (`ops::jacobian_all`: one pass of 16-byte streaming stores over the
/// flat `J`, any shape and alignment); MLPs with more than `ops::JACOBIAN_MAX_LAYERS` layers
/// take [`write_jacobian_per_layer`].
///
/// # Panics
/// If `j.len() != N·C·P` or the signals are not those of `mlp`.
///
/// # Errors
/// [`crate::Error::Device`] on a kernel failure.
#[track_caller]
pub fn write_jacobian_flat<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    s: &DeviceSignals<T>,
    j: &mut impl DevicePtrMut<T>,
) -> Result<()> {
    let (m, p, c) = jacobian_shape("write_jacobian_flat", mlp, s, j.len());
    if mlp.layers().len() > ops::JACOBIAN_MAX_LAYERS {
        return write_jacobian_per_layer(be, mlp, s, j);
    }
    ops::jacobian_all(be, j, m, p, c, &jacobian_layers(mlp, s))
}

/// The per-layer table of [`write_jacobian_flat`] and [`write_jacobian_stripes`].
fn jacobian_layers<'a, T: CudaReal>(
    mlp: &Mlp,
    s: &'a DeviceSignals<T>,
) -> Vec<ops::JacobianLayer<'a, T>> {
    mlp.layers()
        .iter()
        .enumerate()
        .map(|(l, layer)| ops::JacobianLayer {
            a: s.trace.acts[l].get(),
            g: s.grads[l].get(),
            fan_in: layer.fan_in,
            fan_out: layer.fan_out,
            sw: T::from_f64(layer.w_scale),
            sb: T::from_f64(layer.b_scale),
        })
        .collect()
}

/// Writes the explicit Jacobian (row-major `(N·C) × P`) from device signals into `j`, the
/// same values as [`write_jacobian_flat`] bit for bit, by `ops::jacobian_stripes` (per layer, one thread
/// per 16-byte column slot of the weight rows with its activations in registers; a second
/// kernel for the packets around biases and boundaries; `opts` sets the block shape). Falls
/// back to `ops::jacobian_all` when a `fan_in` is not a multiple of `16 / size_of::<T>()` or
/// `j` is misaligned, and to [`write_jacobian_per_layer`] for more than `ops::JACOBIAN_MAX_LAYERS`
/// layers.
///
/// # Panics
/// If `j.len() != N·C·P` or the signals are not those of `mlp`.
///
/// # Errors
/// [`crate::Error::Device`] on a kernel failure.
#[track_caller]
pub fn write_jacobian_stripes<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    s: &DeviceSignals<T>,
    j: &mut impl DevicePtrMut<T>,
    opts: ops::StripeOpts,
) -> Result<()> {
    let (m, p, c) = jacobian_shape("write_jacobian_stripes", mlp, s, j.len());
    if mlp.layers().len() > ops::JACOBIAN_MAX_LAYERS {
        return write_jacobian_per_layer(be, mlp, s, j);
    }
    ops::jacobian_stripes(be, j, m, p, c, &jacobian_layers(mlp, s), opts)
}

/// Writes the explicit Jacobian (row-major `(N·C) × P`) from device signals into `j`,
/// one kernel launch per layer (`ops::jacobian_layer`, any number of layers): the path for
/// MLPs with more than `ops::JACOBIAN_MAX_LAYERS` layers, and the first version in the bench.
///
/// # Panics
/// If `j.len() != N·C·P` or the signals are not those of `mlp`.
///
/// # Errors
/// [`crate::Error::Device`] on a kernel failure.
#[track_caller]
pub fn write_jacobian_per_layer<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    s: &DeviceSignals<T>,
    j: &mut impl DevicePtrMut<T>,
) -> Result<()> {
    let (m, p, c) = jacobian_shape("write_jacobian_per_layer", mlp, s, j.len());
    for (l, layer) in mlp.layers().iter().enumerate() {
        ops::jacobian_layer(
            be,
            j,
            m,
            p,
            c,
            s.trace.acts[l].get(),
            s.grads[l].get(),
            layer.fan_in,
            layer.fan_out,
            layer.w_offset,
            T::from_f64(layer.w_scale),
            T::from_f64(layer.b_scale),
        )?;
    }
    Ok(())
}

/// The explicit Jacobian `J` (row-major `(N·C) × P`, row `n·C + c`) in a new device buffer.
///
/// # Panics
/// If `θ.len() != P` or `x.len() != N·d`.
///
/// # Errors
/// [`crate::Error::Device`] on a driver, cuBLAS or kernel failure, including running out of
/// device memory for `J`.
#[track_caller]
pub fn jacobian<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    theta: &CudaSlice<T>,
    x: &CudaSlice<T>,
    n: usize,
) -> Result<CudaSlice<T>> {
    let s = signals(be, mlp, theta, x, n)?;
    let m = n * <Mlp as Model<f64>>::n_outputs(mlp);
    // Every element is written by `write_jacobian` (the layers tile the columns).
    let mut j = be.alloc_uninit::<T>(m * theta.len())?;
    write_jacobian(be, mlp, &s, &mut j)?;
    Ok(j)
}
