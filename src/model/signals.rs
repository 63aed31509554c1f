//! Backprop signals of an [`Mlp`](super::Mlp) for every output: the factors of the explicit
//! Jacobian and of the structured NTK.

use crate::Real;
use crate::backend::Layer;
use rayon::prelude::*;

/// For each layer `l` (input to output): the layer input `A_{l−1}` (row-major `N × fan_in`)
/// and the backprop signal `G_l = ∂f/∂z_l` (row-major `(N·C) × fan_out`, row `n·C + c` is
/// `∂f_c(x_n)/∂z_l`). The Jacobian block of `W_l` in row `n·C + c` is
/// `s_w · g_{l,nc} ⊗ a_{l−1,n}`, that of `b_l` is `s_b · g_{l,nc}`.
#[derive(Clone, Debug)]
pub struct Signals<T> {
    /// Number of samples `N`.
    pub n: usize,
    /// Number of outputs `C`.
    pub c: usize,
    /// Layout and scales of each layer.
    pub layers: Vec<Layer>,
    /// `A_{l−1}` for each layer `l`.
    pub acts: Vec<Vec<T>>,
    /// `G_l` for each layer `l`.
    pub grads: Vec<Vec<T>>,
    /// `f(X; θ)`, row-major `N × C`.
    pub output: Vec<T>,
}

impl<T: Real> Signals<T> {
    /// Writes the explicit Jacobian, row-major `(N·C) × P`, into `out`: rows in parallel,
    /// each row block written as scaled copies of the activation row (`g_i · a`).
    ///
    /// # Panics
    /// If `out.len() != N·C·P`.
    #[track_caller]
    pub fn write_jacobian(&self, out: &mut [T]) {
        let p = self.layers.last().map_or(0, |l| l.b_offset + l.fan_out);
        assert_eq!(
            out.len(),
            self.n * self.c * p,
            "write_jacobian: buffer of {} for a {}×{p} Jacobian",
            out.len(),
            self.n * self.c
        );
        if p == 0 {
            return;
        }
        out.par_chunks_mut(p).enumerate().for_each(|(r, row)| {
            let n = r / self.c;
            for (l, layer) in self.layers.iter().enumerate() {
                write_row_block(
                    layer,
                    &self.grads[l][r * layer.fan_out..(r + 1) * layer.fan_out],
                    &self.acts[l][n * layer.fan_in..(n + 1) * layer.fan_in],
                    row,
                );
            }
        });
    }
}

#[inline]
fn write_row_block<T: Real>(layer: &Layer, g: &[T], a: &[T], row: &mut [T]) {
    let sw = T::from_f64(layer.w_scale);
    let sb = T::from_f64(layer.b_scale);
    let w_block = &mut row[layer.w_offset..layer.b_offset];
    T::outer_into_stream(sw, g, a, w_block);
    for (gi, dst) in g
        .iter()
        .zip(&mut row[layer.b_offset..layer.b_offset + layer.fan_out])
    {
        *dst = sb * *gi;
    }
}
