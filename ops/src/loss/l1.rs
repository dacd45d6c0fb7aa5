//! Mean absolute error: per sample `loss = mean_j |y_j - t_j|`, `dy_j = sign(y_j - t_j) / D`
//! (0 where `y_j == t_j`, PyTorch's subgradient). Its kernel is dispatched by
//! [`super::regression_dispatch`].

use super::{LossOutput, per_value_cpu};
use crate::tensor::Tensor;

pub(super) const WGSL: &str = include_str!("../../../shaders/l1.wgsl");

/// CPU reference over the first `rows` rows of `y` `[batch, D]`, targets `[rows * D]`.
pub fn l1_cpu(y: &Tensor, targets: &[f32], rows: usize) -> LossOutput {
    per_value_cpu(y, targets, rows, |d| {
        let sign = if d > 0.0 {
            1.0
        } else if d < 0.0 {
            -1.0
        } else {
            0.0
        };
        (d.abs(), sign)
    })
}
