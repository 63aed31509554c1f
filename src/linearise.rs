//! The linearised model at a point θ̃: `f_lin(x; θ) = f(x; θ̃) + J(x; θ̃)(θ − θ̃)`.
//!
//! A [`Linearisation`] holds θ̃, the data it was built on, `f(X; θ̃)`, and the explicit
//! Jacobian when it fits the memory budget; otherwise every product goes through the model's
//! JVP/VJP at θ̃ (matrix-free). Either way the products are the same numbers up to rounding.

use crate::memory::{default_budget, dense_bytes};
use crate::{Jacobian, Model, Real};
use faer::{Mat, MatRef};

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
