//! Scalar twins of the SIMD kernels: the reference every SIMD kernel is tested against.

use faer::traits::RealField;

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
