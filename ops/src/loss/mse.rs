//! Mean squared error: per sample `loss = mean_j (y_j - t_j)^2`, `dy_j = 2 (y_j - t_j) / D`.
//! Its kernel is dispatched by [`super::regression_dispatch`].

use super::{LossOutput, per_value_cpu};
use crate::tensor::Tensor;

pub(super) const WGSL: &str = include_str!("../../../shaders/mse.wgsl");

/// CPU reference over the first `rows` rows of `y` `[batch, D]`, targets `[rows * D]`.
pub fn mse_cpu(y: &Tensor, targets: &[f32], rows: usize) -> LossOutput {
    per_value_cpu(y, targets, rows, |d| (d * d, 2.0 * d))
}
