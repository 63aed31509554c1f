//! The linearised model at a point θ̃: `f_lin(x; θ) = f(x; θ̃) + J(x; θ̃)(θ − θ̃)`.
//!
//! A [`Linearisation`] holds θ̃, the data it was built on, `f(X; θ̃)`, and the explicit
//! Jacobian when it fits the memory budget; otherwise every product goes through the model's
//! JVP/VJP at θ̃ (matrix-free). Either way the products are the same numbers up to rounding.
//!
//! A [`BatchLinearisation`] is the form a first-order training step uses: one forward
//! [`Trace`] at θ̃ on the step's mini-batch serves both the JVP that gives
//! `f_lin = f(X_b; θ̃) + J(θ − θ̃)` and the VJP that gives the gradient `Jᵀ ∂L/∂f_lin`, and
//! every buffer is reused, so a step allocates nothing once the buffers have the batch's size.

use crate::loss::{Loss, loss_gradient_into};
use crate::memory::{default_budget, dense_bytes};
use crate::model::{Trace, Workspace};
use crate::{Jacobian, Model, Real};
use faer::{Mat, MatMut, MatRef};

/// The linearisation of a model at θ̃ on a fixed data set `X`.
pub struct Linearisation<'m, T: Real, M: Model<T> + ?Sized> {
    model: &'m M,
    point: Vec<T>,
    x: Mat<T>,
    f0: Mat<T>,
    jacobian: Option<Jacobian<T>>,
}

impl<'m, T: Real, M: Model<T> + ?Sized> Linearisation<'m, T, M> {
    /// Linearises at θ̃ on `X`, forming `J` if it fits the default memory budget
    /// ([`default_budget`]).
    ///
    /// # Panics
    /// If θ̃ or `X` do not fit the model.
    #[track_caller]
    pub fn new(model: &'m M, point: &[T], x: MatRef<'_, T>) -> Self {
        Self::with_budget(model, point, x, default_budget())
    }

    /// Linearises at θ̃ on `X`, forming `J` only if its `N·C·P` entries fit in `budget` bytes.
    ///
    /// # Panics
    /// If θ̃ or `X` do not fit the model.
    #[track_caller]
    pub fn with_budget(model: &'m M, point: &[T], x: MatRef<'_, T>, budget: u64) -> Self {
        let (n, c, p) = (x.nrows(), model.n_outputs(), model.n_params());
        let explicit = dense_bytes::<T>(n * c, p) <= budget;
        let (f0, jacobian) = if explicit {
            let f0 = model.forward(point, x);
            (f0, Some(model.jacobian(point, x)))
        } else {
            (model.forward(point, x), None)
        };
        Self {
            model,
            point: point.to_vec(),
            x: x.to_owned(),
            f0,
            jacobian,
        }
    }

    /// The linearisation point θ̃.
    pub fn point(&self) -> &[T] {
        &self.point
    }
    /// `f(X; θ̃)`, `N × C`.
    pub fn f0(&self) -> MatRef<'_, T> {
        self.f0.as_ref()
    }
    /// The data `X`.
    pub fn x(&self) -> MatRef<'_, T> {
        self.x.as_ref()
    }
    /// The explicit Jacobian, if it was formed.
    pub fn jacobian(&self) -> Option<&Jacobian<T>> {
        self.jacobian.as_ref()
    }
    /// Whether `J` is held explicitly.
    pub fn is_explicit(&self) -> bool {
        self.jacobian.is_some()
    }
    /// Bytes held (J, X, f(X; θ̃), θ̃).
    pub fn memory_bytes(&self) -> u64 {
        let j = self.jacobian.as_ref().map_or(0, |j| j.bytes() as u64);
        j + dense_bytes::<T>(self.x.nrows(), self.x.ncols())
            + dense_bytes::<T>(self.f0.nrows(), self.f0.ncols())
            + dense_bytes::<T>(self.point.len(), 1)
    }

    /// `J v` as an `N × C` matrix.
    ///
    /// # Panics
    /// If `v.len() != P`.
    #[track_caller]
    pub fn jvp(&self, v: &[T]) -> Mat<T> {
        let (n, c) = (self.f0.nrows(), self.f0.ncols());
        match &self.jacobian {
            Some(j) => {
                let out = j.mul_vec(v);
                MatRef::from_row_major_slice(&out, n, c).to_owned()
            }
            None => self.model.jvp(&self.point, self.x.as_ref(), v).1,
        }
    }

    /// `Jᵀ u` for `u` (`N × C`).
    ///
    /// # Panics
    /// If `u` is not `N × C`.
    #[track_caller]
    pub fn vjp(&self, u: MatRef<'_, T>) -> Vec<T> {
        match &self.jacobian {
            Some(j) => {
                assert!(
                    u.nrows() == self.f0.nrows() && u.ncols() == self.f0.ncols(),
                    "Linearisation::vjp: u is {}×{}, expected {}×{}",
                    u.nrows(),
                    u.ncols(),
                    self.f0.nrows(),
                    self.f0.ncols()
                );
                let flat: Vec<T> = (0..u.nrows())
                    .flat_map(|i| (0..u.ncols()).map(move |k| u[(i, k)]))
                    .collect();
                j.tmul_vec(&flat)
            }
            None => self.model.vjp(&self.point, self.x.as_ref(), u),
        }
    }

    /// `Jᵀ (J v)` (the Gauss-Newton product; one pass over `J` when explicit).
    ///
    /// # Panics
    /// If `v.len() != P`.
    #[track_caller]
    pub fn gn_mul_vec(&self, v: &[T]) -> Vec<T> {
        match &self.jacobian {
            Some(j) => j.gn_mul_vec(v),
            None => {
                let jv = self.jvp(v);
                self.vjp(jv.as_ref())
            }
        }
    }

    /// `f_lin(X; θ) = f(X; θ̃) + J (θ − θ̃)`.
    ///
    /// # Panics
    /// If `θ.len() != P`.
    #[track_caller]
    pub fn predict(&self, theta: &[T]) -> Mat<T> {
        assert_eq!(
            theta.len(),
            self.point.len(),
            "Linearisation::predict: θ has length {}, θ̃ has {}",
            theta.len(),
            self.point.len()
        );
        let d: Vec<T> = theta
            .iter()
            .zip(&self.point)
            .map(|(a, b)| *a - *b)
            .collect();
        let jd = self.jvp(&d);
        Mat::from_fn(self.f0.nrows(), self.f0.ncols(), |i, k| {
            self.f0[(i, k)] + jd[(i, k)]
        })
    }
}

/// The linearisation at θ̃ on one mini-batch `X_b`, with the buffers of a first-order step:
///
/// 1. [`linearise`](Self::linearise): one forward trace at θ̃ on `X_b` (kept), then
///    `f_lin = f(X_b; θ̃) + J(X_b; θ̃)(θ − θ̃)` (one JVP on that trace; just `f(X_b; θ̃)` when
///    `θ = θ̃`);
/// 2. [`gradient`](Self::gradient): `u = ∂L/∂f_lin` of the mean loss over the batch, then
///    `g = J(X_b; θ̃)ᵀ u` (one VJP on the same trace).
///
/// The numbers are those of the convenience forms ([`Model::forward`] / [`Model::jvp`],
/// [`loss_gradient`](crate::loss::loss_gradient), [`Model::vjp`]) bit for bit; the model's
/// forward pass at θ̃ runs once per step instead of twice. θ̃ and `X_b` are the caller's
/// (the trainer owns θ̃ and the batch buffer) and must be the same in both calls.
#[derive(Clone, Debug, Default)]
pub struct BatchLinearisation<T: Real> {
    trace: Trace<T>,
    ws: Workspace<T>,
    /// `θ − θ̃`.
    delta: Vec<T>,
    /// `J(θ − θ̃)`, then `f_lin`, row-major `N × C`.
    flin: Vec<T>,
    /// `∂L/∂f_lin`, row-major `N × C`.
    u: Vec<T>,
    /// `Jᵀ u`.
    grad: Vec<T>,
    /// Softmax scratch.
    p: Vec<f64>,
    n: usize,
    c: usize,
}

impl<T: Real> BatchLinearisation<T> {
    /// Empty buffers (they grow on first use).
    pub fn new() -> Self {
        Self {
            trace: Trace::new(),
            ws: Workspace::new(),
            delta: Vec::new(),
            flin: Vec::new(),
            u: Vec::new(),
            grad: Vec::new(),
            p: Vec::new(),
            n: 0,
            c: 0,
        }
    }

    /// Traces `model` at `theta_tilde` on `x` and forms `f_lin(x; θ)`; `theta` is `None` when
    /// `θ = θ̃` (then `f_lin = f(x; θ̃)` and no JVP runs).
    ///
    /// # Panics
    /// If θ̃, θ or `x` do not fit the model.
    #[track_caller]
    pub fn linearise<M: Model<T> + ?Sized>(
        &mut self,
        model: &M,
        theta_tilde: &[T],
        theta: Option<&[T]>,
        x: MatRef<'_, T>,
    ) {
        let (n, c) = (x.nrows(), model.n_outputs());
        model.trace_into(theta_tilde, x, &mut self.trace);
        self.n = n;
        self.c = c;
        self.flin.resize(n * c, T::zero_impl());
        // sized on every call, so that the first step (at θ̃) already holds every buffer
        self.delta.resize(theta_tilde.len(), T::zero_impl());
        match theta {
            None => self.flin.copy_from_slice(self.trace.output()),
            Some(theta) => {
                assert_eq!(
                    theta.len(),
                    theta_tilde.len(),
                    "BatchLinearisation::linearise: θ has length {}, θ̃ has {}",
                    theta.len(),
                    theta_tilde.len()
                );
                for ((d, &a), &b) in self.delta.iter_mut().zip(theta).zip(theta_tilde) {
                    *d = a - b;
                }
                model.jvp_with_trace_into(
                    theta_tilde,
                    x,
                    &self.trace,
                    &self.delta,
                    &mut self.flin,
                    &mut self.ws,
                );
                for (f, &f0) in self.flin.iter_mut().zip(self.trace.output()) {
                    *f = f0 + *f;
                }
            }
        }
    }

    /// `f_lin` of the last [`linearise`](Self::linearise), `N × C`.
    pub fn f_lin(&self) -> MatRef<'_, T> {
        MatRef::from_row_major_slice(&self.flin, self.n, self.c)
    }

    /// The gradient of the mean `loss` of `f_lin` against the targets `y` (`N × C`):
    /// `Jᵀ ∂L/∂f_lin`, on the trace of the last [`linearise`](Self::linearise) (the same
    /// `model`, θ̃ and `x` must be passed). The returned buffer is this object's; the caller
    /// may overwrite it (the next call rewrites it whole).
    ///
    /// # Panics
    /// If the arguments do not fit the last `linearise`.
    #[track_caller]
    pub fn gradient<M: Model<T> + ?Sized>(
        &mut self,
        model: &M,
        theta_tilde: &[T],
        x: MatRef<'_, T>,
        loss: Loss,
        y: MatRef<'_, T>,
    ) -> &mut [T] {
        let (n, c) = (self.n, self.c);
        self.u.resize(n * c, T::zero_impl());
        loss_gradient_into(
            loss,
            MatRef::from_row_major_slice(&self.flin, n, c),
            y,
            MatMut::from_row_major_slice_mut(&mut self.u, n, c),
            &mut self.p,
        );
        self.grad.resize(theta_tilde.len(), T::zero_impl());
        model.vjp_with_trace_into(
            theta_tilde,
            x,
            &self.trace,
            MatRef::from_row_major_slice(&self.u, n, c),
            &mut self.grad,
            &mut self.ws,
        );
        &mut self.grad
    }
}
