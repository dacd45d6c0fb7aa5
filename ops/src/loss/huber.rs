//! Huber loss (PyTorch's `HuberLoss`, mean over features): per value with `d = y - t`,
//! `0.5 d²` where `|d| <= delta`, else `delta (|d| - 0.5 delta)`; `dy = clamp(d, -delta,
//! delta) / D`. Squared near the target, linear far from it: robust to outlying targets.
//! Its kernel is a [`FusedLoss`] over float targets.

use std::sync::Arc;

use super::{FusedLoss, LossOutput, LossTargets, per_value_cpu};
use crate::elementwise::wgsl_f32;
use crate::tensor::Tensor;

const WGSL: &str = include_str!("../../../shaders/huber.wgsl");

/// The loss with threshold `delta` (> 0).
pub fn huber(delta: f32) -> FusedLoss {
    FusedLoss {
        name: "huber",
        targets: LossTargets::Values,
        wgsl: WGSL,
        defines: vec![("DELTA", wgsl_f32(delta))],
        cpu: Arc::new(move |y, truth, rows| huber_cpu(y, super::value_targets(truth), rows, delta)),
    }
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

/// The native (cpu backend) `huber`: per value the WGSL's select between the squared and
/// the linear branch, `dy = clamp(diff, -delta, delta) / D` (as `min(max(..))`, WGSL's
/// `clamp`, which unlike `f32::clamp` cannot panic on odd bounds).
pub(crate) fn native(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    let delta = c.f32_bits("DELTA")?;
    super::fused::native_per_value(c, move |diff| {
        let a = diff.abs();
        let value = if a <= delta {
            0.5 * diff * diff
        } else {
            delta * (a - 0.5 * delta)
        };
        (value, diff.max(-delta).min(delta))
    })
}
