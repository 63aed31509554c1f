//! Scalar twins of the SIMD kernels: the reference every SIMD kernel is tested against.

use faer::traits::RealField;

/// The standard library's `tanh`, for the scalar twin of the vectorised `tanh`
/// (implemented for `f32` and `f64`).
pub trait StdTanh: RealField + Copy {
    /// `tanh x`, as `f32::tanh` / `f64::tanh` compute it.
    fn std_tanh(self) -> Self;
}

impl StdTanh for f32 {
    fn std_tanh(self) -> Self {
        self.tanh()
    }
}

impl StdTanh for f64 {
    fn std_tanh(self) -> Self {
        self.tanh()
    }
}

/// `Σᵢ aᵢ bᵢ`, one accumulator, in order.
///
/// # Panics
/// If `a.len() != b.len()`.
#[track_caller]
pub fn dot<T: RealField + Copy>(a: &[T], b: &[T]) -> T {
    assert_eq!(a.len(), b.len(), "dot: lengths {} and {}", a.len(), b.len());
    let mut s = T::zero_impl();
    for (&x, &y) in a.iter().zip(b) {
        s += x * y;
    }
    s
}

/// `y ← y + α x`.
///
/// # Panics
/// If `x.len() != y.len()`.
#[track_caller]
pub fn axpy<T: RealField + Copy>(alpha: T, x: &[T], y: &mut [T]) {
    assert_eq!(
        x.len(),
        y.len(),
        "axpy: lengths {} and {}",
        x.len(),
        y.len()
    );
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// `out ← α x`.
///
/// # Panics
/// If `x.len() != out.len()`.
#[track_caller]
pub fn scale_into<T: RealField + Copy>(alpha: T, x: &[T], out: &mut [T]) {
    assert_eq!(
        x.len(),
        out.len(),
        "scale_into: lengths {} and {}",
        x.len(),
        out.len()
    );
    for (o, &xi) in out.iter_mut().zip(x) {
        *o = alpha * xi;
    }
}

/// `Σᵢ xᵢ²`.
pub fn sum_sq<T: RealField + Copy>(x: &[T]) -> T {
    let mut s = T::zero_impl();
    for &xi in x {
        s += xi * xi;
    }
    s
}

/// `[r₀·v, r₁·v, r₂·v, r₃·v]`.
///
/// # Panics
/// If a row's length differs from `v.len()`.
#[track_caller]
pub fn dot4<T: RealField + Copy>(rows: [&[T]; 4], v: &[T]) -> [T; 4] {
    rows.map(|r| dot(r, v))
}

/// `y ← y + Σₖ αₖ xₖ` over four rows.
///
/// # Panics
/// If a row's length differs from `y.len()`.
#[track_caller]
pub fn axpy4<T: RealField + Copy>(alpha: [T; 4], x: [&[T]; 4], y: &mut [T]) {
    for (k, xk) in x.iter().enumerate() {
        assert_eq!(
            xk.len(),
            y.len(),
            "axpy4: row {k} has length {}, y has {}",
            xk.len(),
            y.len()
        );
    }
    for (i, yi) in y.iter_mut().enumerate() {
        *yi += alpha[0] * x[0][i] + alpha[1] * x[1][i] + alpha[2] * x[2][i] + alpha[3] * x[3][i];
    }
}

/// `xᵢ ← xᵢ dᵢ`.
///
/// # Panics
/// If `x.len() != d.len()`.
#[track_caller]
pub fn mul_elementwise<T: RealField + Copy>(x: &mut [T], d: &[T]) {
    assert_eq!(
        x.len(),
        d.len(),
        "mul_elementwise: lengths {} and {}",
        x.len(),
        d.len()
    );
    for (xi, &di) in x.iter_mut().zip(d) {
        *xi *= di;
    }
}

/// `out[i·k + j] ← (α gᵢ) aⱼ` with `k = a.len()`: the outer product `α g ⊗ a`, row-major.
///
/// # Panics
/// If `out.len() != g.len()·a.len()`.
#[track_caller]
pub fn outer_into<T: RealField + Copy>(alpha: T, g: &[T], a: &[T], out: &mut [T]) {
    assert_eq!(
        out.len(),
        g.len() * a.len(),
        "outer_into: out has length {}, g ⊗ a is {}×{}",
        out.len(),
        g.len(),
        a.len()
    );
    if a.is_empty() {
        return;
    }
    for (&gi, dst) in g.iter().zip(out.chunks_exact_mut(a.len())) {
        let c = alpha * gi;
        for (o, &aj) in dst.iter_mut().zip(a) {
            *o = c * aj;
        }
    }
}

/// `a ← tanh z` (the standard library's `tanh`) and, when given, `d ← 1 − a²`.
///
/// # Panics
/// If the lengths differ.
#[track_caller]
pub fn tanh_slice<T: StdTanh>(z: &[T], a: &mut [T], d: Option<&mut [T]>) {
    assert_eq!(
        z.len(),
        a.len(),
        "tanh_slice: lengths {} and {}",
        z.len(),
        a.len()
    );
    for (ai, &zi) in a.iter_mut().zip(z) {
        *ai = zi.std_tanh();
    }
    if let Some(d) = d {
        assert_eq!(
            z.len(),
            d.len(),
            "tanh_slice: lengths {} and {}",
            z.len(),
            d.len()
        );
        for (di, &ai) in d.iter_mut().zip(a.iter()) {
            *di = T::one_impl() - ai * ai;
        }
    }
}

/// `x·v`, and `acc ← acc + α prev` (the fused step of `Jᵀ(J v)`).
///
/// # Panics
/// If the four slices do not all have the same length.
#[track_caller]
pub fn dot_axpy<T: RealField + Copy>(x: &[T], v: &[T], alpha: T, prev: &[T], acc: &mut [T]) -> T {
    axpy(alpha, prev, acc);
    dot(x, v)
}
