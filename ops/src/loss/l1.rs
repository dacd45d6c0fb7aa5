//! Mean absolute error: per sample `loss = mean_j |y_j - t_j|`, `dy_j = sign(y_j - t_j) / D`
//! (0 where `y_j == t_j`, PyTorch's subgradient). Its kernel is dispatched by
//! [`FusedLoss`] over float targets.

use std::sync::Arc;

use super::{FusedLoss, LossOutput, LossTargets, per_value_cpu};
use crate::tensor::Tensor;

const WGSL: &str = include_str!("../../../shaders/l1.wgsl");

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

/// The loss.
pub fn l1() -> FusedLoss {
    FusedLoss {
        name: "l1",
        targets: LossTargets::Values,
        wgsl: WGSL,
        defines: Vec::new(),
        cpu: Arc::new(|y, truth, rows| l1_cpu(y, super::value_targets(truth), rows)),
    }
}

/// The native (cpu backend) `l1`: per value `|diff|`, `dy = sign(diff) / D` with WGSL's
/// `sign` (0 at a tie, where Rust's `signum` would give ±1).
pub(crate) fn native(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    super::fused::native_per_value(c, |diff| {
        let sign = if diff > 0.0 {
            1.0
        } else if diff < 0.0 {
            -1.0
        } else {
            0.0
        };
        (diff.abs(), sign)
    })
}
