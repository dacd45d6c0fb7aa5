//! Huber loss (PyTorch's `HuberLoss`, mean over features): per value with `d = y - t`,
//! `0.5 d²` where `|d| <= delta`, else `delta (|d| - 0.5 delta)`; `dy = clamp(d, -delta,
//! delta) / D`. Squared near the target, linear far from it: robust to outlying targets.
//! Its kernel is dispatched by [`super::regression_dispatch`].

use super::{LossOutput, per_value_cpu};
use crate::elementwise::wgsl_f32;
use crate::tensor::Tensor;

pub(super) const WGSL: &str = include_str!("../../../shaders/huber.wgsl");

/// The shader's parameters.
pub(super) fn params(delta: f32) -> Vec<(&'static str, String)> {
    vec![("DELTA", wgsl_f32(delta))]
}

/// CPU reference over the first `rows` rows of `y` `[batch, D]`, targets `[rows * D]`.
pub fn huber_cpu(y: &Tensor, targets: &[f32], rows: usize, delta: f32) -> LossOutput {
    let delta = f64::from(delta);
    per_value_cpu(y, targets, rows, |d| {
        let value = if d.abs() <= delta {
            0.5 * d * d
        } else {
            delta * (d.abs() - 0.5 * delta)
        };
        (value, d.clamp(-delta, delta))
    })
}
