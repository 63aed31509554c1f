//! The [`Mlp`] on the device: forward pass, JVP, VJP, backprop signals and the explicit
//! Jacobian, with cuBLAS GEMMs for the layer products and the crate's kernels for the rest.
//! Same maths, layout and scales as the CPU implementation in `src/model/`.
//!
//! All matrices are row-major device buffers: `X` is `N × d`, outputs are `N × C`, `θ` and
//! tangents have the [parameter layout](crate::maths#parameter-layout), `J` is `(N·C) × P` with row `n·C + c`.

use super::blas::CudaReal;
use super::context::CudaBackend;
use super::ops::{self, DevicePtrDyn};
use crate::model::Layer;
use crate::{Activation, Mlp, Model, Result};
use cudarc::driver::{CudaSlice, CudaView, DevicePtr, DevicePtrMut};

/// What a device forward pass keeps for backprop: `acts[l]` is the input of layer `l`
/// (`acts[0]` is a copy of `X`), `derivs[l]` is `φ'(z_{l})` at that input for `l ≥ 1`
/// (`derivs[0]` is `None`), `output` is `f(X; θ)` (`N × C`).
#[derive(Debug)]
pub struct DeviceTrace<T> {
    /// Number of samples `N`.
    pub n: usize,
    /// Layer inputs `A_{l−1}` (row-major `N × fan_in`).
    pub acts: Vec<CudaSlice<T>>,
    /// `φ'` at the layer inputs (row-major `N × fan_in`); `None` for layer 0 and when the
    /// trace was taken without derivatives.
    pub derivs: Vec<Option<CudaSlice<T>>>,
    /// `f(X; θ)`, row-major `N × C`.
    pub output: CudaSlice<T>,
}

/// Device twin of [`crate::model::Signals`]: the trace plus the backprop signals
/// `G_l = ∂f/∂z_l` (row-major `(N·C) × fan_out`) of every layer.
#[derive(Debug)]
pub struct DeviceSignals<T> {
    /// The forward trace (layer inputs, derivatives, output).
    pub trace: DeviceTrace<T>,
    /// `G_l` for each layer `l`, input to output.
    pub grads: Vec<CudaSlice<T>>,
}

/// `φ'` at the input of layer `l ≥ 1` from a trace taken with derivatives.
#[track_caller]
fn deriv<T>(tr: &DeviceTrace<T>, l: usize) -> &CudaSlice<T> {
    tr.derivs[l]
        .as_ref()
        .expect("cuda::mlp: this trace was taken without derivatives")
}

fn w_view<'a, T>(theta: &'a CudaSlice<T>, l: &Layer) -> CudaView<'a, T> {
    theta.slice(l.w_offset..l.b_offset)
}

fn b_view<'a, T>(theta: &'a CudaSlice<T>, l: &Layer) -> CudaView<'a, T> {
    theta.slice(l.b_offset..l.b_offset + l.fan_out)
}

#[track_caller]
fn check(mlp: &Mlp, what: &str, theta_len: usize, x_len: usize, n: usize) {
    let p = <Mlp as Model<f64>>::n_params(mlp);
    let d = mlp.widths()[0];
    assert_eq!(
        theta_len,
        p,
        "cuda::mlp::{what}: θ has length {theta_len}, the MLP {:?} has {p} parameters",
        mlp.widths()
    );
    assert_eq!(
        x_len,
        n * d,
        "cuda::mlp::{what}: X has {x_len} entries, expected N×d = {n}×{d}"
    );
}

/// Forward pass keeping the layer inputs and (when `keep_derivs`) the activation derivatives.
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
    check(mlp, "trace", theta.len(), x.len(), n);
    let layers = mlp.layers();
    let last = layers.len() - 1;
    let mut acts = Vec::with_capacity(layers.len());
    let mut derivs = Vec::with_capacity(layers.len());
    acts.push(
        be.stream()
            .clone_dtod(x)
            .map_err(super::context::dev_err("copying X"))?,
    );
    derivs.push(None);
    let mut output = None;
    for (l, layer) in layers.iter().enumerate() {
        // z = s_w A Wᵀ (every element written by the GEMM with β = 0).
        let mut z = be.alloc_uninit::<T>(n * layer.fan_out)?;
        ops::gemm_rm(
            be,
            false,
            true,
            n,
            layer.fan_out,
            layer.fan_in,
            T::from_f64(layer.w_scale),
            &acts[l],
            &w_view(theta, layer),
            T::zero_impl(),
            &mut z,
        )?;
        let b = b_view(theta, layer);
        let sb = T::from_f64(layer.b_scale);
        if l == last {
            ops::bias_act_in_place(
                be,
                Activation::Identity,
                &mut z,
                Some(&b),
                sb,
                n,
                layer.fan_out,
                None,
            )?;
            output = Some(z);
        } else {
            let mut d = if keep_derivs {
                Some(be.alloc_uninit::<T>(z.len())?)
            } else {
                None
            };
            let dref: Option<&mut dyn ops::DevicePtrMutDyn<T>> = match d.as_mut() {
                Some(d) => Some(d),
                None => None,
            };
            ops::bias_act_in_place(
                be,
                mlp.activation(),
                &mut z,
                Some(&b),
                sb,
                n,
                layer.fan_out,
                dref,
            )?;
            acts.push(z);
            derivs.push(d);
        }
    }
    Ok(DeviceTrace {
        n,
        acts,
        derivs,
        output: output.expect("an MLP has at least one layer"),
    })
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
    Ok(trace(be, mlp, theta, x, n, false)?.output)
}

/// Forward mode: `(f(X; θ), J v)`, both row-major `N × C`.
///
/// `ż_l = s_w (ȧ_{l−1} Wᵀ + a_{l−1} dWᵀ) + s_b db`, `ȧ_l = φ'(z_l) ⊙ ż_l`, `ȧ_0 = 0`.
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
    check(mlp, "jvp", theta.len(), x.len(), n);
    assert_eq!(
        v.len(),
        theta.len(),
        "cuda::mlp::jvp: tangent has length {}, θ has length {}",
        v.len(),
        theta.len()
    );
    let tr = trace(be, mlp, theta, x, n, true)?;
    let layers = mlp.layers();
    let last = layers.len() - 1;
    let mut a_dot: Option<CudaSlice<T>> = None;
    for (l, layer) in layers.iter().enumerate() {
        let sw = T::from_f64(layer.w_scale);
        let mut z_dot = be.alloc_uninit::<T>(n * layer.fan_out)?;
        ops::gemm_rm(
            be,
            false,
            true,
            n,
            layer.fan_out,
            layer.fan_in,
            sw,
            &tr.acts[l],
            &w_view(v, layer),
            T::zero_impl(),
            &mut z_dot,
        )?;
        if let Some(ad) = &a_dot {
            ops::gemm_rm(
                be,
                false,
                true,
                n,
                layer.fan_out,
                layer.fan_in,
                sw,
                ad,
                &w_view(theta, layer),
                T::one_impl(),
                &mut z_dot,
            )?;
        }
        let db = b_view(v, layer);
        let d: Option<&dyn DevicePtrDyn<T>> = if l < last {
            Some(deriv(&tr, l + 1))
        } else {
            None
        };
        ops::bias_mul(
            be,
            &mut z_dot,
            Some(&db),
            T::from_f64(layer.b_scale),
            n,
            layer.fan_out,
            d,
        )?;
        a_dot = Some(z_dot);
    }
    Ok((tr.output, a_dot.expect("an MLP has at least one layer")))
}

/// Reverse mode on a trace: `Jᵀ u` (length `P`) for a cotangent `u` (row-major `N × C`).
///
/// # Panics
/// If `u.len() != N·C` or the trace does not belong to this MLP.
///
/// # Errors
/// [`crate::Error::Device`] on a driver, cuBLAS or kernel failure.
#[track_caller]
pub fn vjp_with_trace<T: CudaReal>(
    be: &CudaBackend,
    mlp: &Mlp,
    theta: &CudaSlice<T>,
    tr: &DeviceTrace<T>,
    u: &impl DevicePtr<T>,
) -> Result<CudaSlice<T>> {
    let n = tr.n;
    let c = <Mlp as Model<f64>>::n_outputs(mlp);
    assert_eq!(
        u.len(),
        n * c,
        "cuda::mlp::vjp: cotangent has {} entries, expected N×C = {n}×{c}",
        u.len()
    );
    assert_eq!(
        tr.acts.len(),
        mlp.layers().len(),
        "cuda::mlp::vjp: trace of another MLP"
    );
    let mut grad = be.alloc_uninit::<T>(theta.len())?;
    let mut delta: CudaSlice<T> = be.alloc_uninit::<T>(n * c)?;
    be.stream()
        .memcpy_dtod(u, &mut delta)
        .map_err(super::context::dev_err("copying the cotangent"))?;
    for (l, layer) in mlp.layers().iter().enumerate().rev() {
        let sw = T::from_f64(layer.w_scale);
        {
            // dW = s_w δᵀ A_{l−1}  (fan_out × fan_in), fully written (β = 0).
            let mut dw = grad.slice_mut(layer.w_offset..layer.b_offset);
            ops::gemm_rm(
                be,
                true,
                false,
                layer.fan_out,
                layer.fan_in,
                n,
                sw,
                &delta,
                &tr.acts[l],
                T::zero_impl(),
                &mut dw,
            )?;
        }
        {
            // db = s_b Σ_n δ_n
            let mut db = grad.slice_mut(layer.b_offset..layer.b_offset + layer.fan_out);
            ops::col_sum(
                be,
                &delta,
                n,
                layer.fan_out,
                T::from_f64(layer.b_scale),
                &mut db,
            )?;
        }
        if l > 0 {
            let mut prev = be.alloc_uninit::<T>(n * layer.fan_in)?;
            ops::gemm_rm(
                be,
                false,
                false,
                n,
                layer.fan_in,
                layer.fan_out,
                sw,
                &delta,
                &w_view(theta, layer),
                T::zero_impl(),
                &mut prev,
            )?;
            ops::bias_mul(
                be,
                &mut prev,
                None,
                T::zero_impl(),
                n,
                layer.fan_in,
                Some(deriv(tr, l)),
            )?;
            delta = prev;
        }
    }
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
    check(mlp, "vjp", theta.len(), x.len(), n);
    let tr = trace(be, mlp, theta, x, n, true)?;
    vjp_with_trace(be, mlp, theta, &tr, u)
}

/// The backprop signals `G_l` of all `N·C` outputs (batched backprop: one GEMM per layer,
/// `G_{l−1} = s_w (G_l W_l) ⊙ φ'(z_{l−1})`, `G_L` has rows `e_c`) and the forward trace.
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
    check(mlp, "signals", theta.len(), x.len(), n);
    let tr = trace(be, mlp, theta, x, n, true)?;
    let c = <Mlp as Model<f64>>::n_outputs(mlp);
    let m = n * c;
    let layers = mlp.layers();
    let nl = layers.len();
    let mut grads: Vec<Option<CudaSlice<T>>> = (0..nl).map(|_| None).collect();
    let mut g_last = be.alloc_uninit::<T>(m * c)?;
    ops::eye_rows(be, &mut g_last, m, c)?;
    grads[nl - 1] = Some(g_last);
    for l in (1..nl).rev() {
        let layer = &layers[l];
        let mut g_prev = be.alloc_uninit::<T>(m * layer.fan_in)?;
        ops::gemm_rm(
            be,
            false,
            false,
            m,
            layer.fan_in,
            layer.fan_out,
            T::from_f64(layer.w_scale),
            grads[l].as_ref().expect("filled in the previous iteration"),
            &w_view(theta, layer),
            T::zero_impl(),
            &mut g_prev,
        )?;
        ops::mul_bcast_rows(be, &mut g_prev, deriv(&tr, l), m, layer.fan_in, c)?;
        grads[l - 1] = Some(g_prev);
    }
    Ok(DeviceSignals {
        trace: tr,
        grads: grads
            .into_iter()
            .map(|g| g.expect("every layer filled"))
            .collect(),
    })
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
    let m = s.trace.n * c;
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
            a: &s.trace.acts[l],
            g: &s.grads[l],
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
            &s.trace.acts[l],
            &s.grads[l],
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
