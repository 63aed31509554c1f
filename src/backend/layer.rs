//! The layout of one dense layer inside θ, shared by the MLP, its backprop signals, the
//! structured NTK and the backends' NTK assembly.

/// Where one layer's parameters sit in θ and how they are scaled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Layer {
    /// Input width of the layer.
    pub fan_in: usize,
    /// Output width of the layer.
    pub fan_out: usize,
    /// Offset of `W` (row-major `fan_out × fan_in`) in θ.
    pub w_offset: usize,
    /// Offset of `b` (length `fan_out`) in θ.
    pub b_offset: usize,
    /// Multiplier of `W a` in the pre-activation (`1` or `σ_w/√fan_in`).
    pub w_scale: f64,
    /// Multiplier of `b` in the pre-activation (`1` or `σ_b`).
    pub b_scale: f64,
}

impl Layer {
    /// `W` of this layer in θ, as a `fan_out × fan_in` row-major view.
    ///
    /// # Panics
    /// If θ is shorter than the layer's end.
    pub fn weights<'a, T>(&self, theta: &'a [T]) -> faer::MatRef<'a, T> {
        faer::MatRef::from_row_major_slice(
            &theta[self.w_offset..self.b_offset],
            self.fan_out,
            self.fan_in,
        )
    }
}
