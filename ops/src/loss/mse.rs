//! Mean squared error: per sample `loss = mean_j (y_j - t_j)^2`, `dy_j = 2 (y_j - t_j) / D`.
//! Its kernel is a [`FusedLoss`] over float targets.

use std::sync::Arc;

use super::{FusedLoss, LossOutput, LossTargets, per_value_cpu};
use crate::tensor::Tensor;

const WGSL: &str = include_str!("../../../shaders/mse.wgsl");

/// CPU reference over the first `rows` rows of `y` `[batch, D]`, targets `[rows * D]`.
pub fn mse_cpu(y: &Tensor, targets: &[f32], rows: usize) -> LossOutput {
    per_value_cpu(y, targets, rows, |d| (d * d, 2.0 * d))
}

/// The loss.
pub fn mse() -> FusedLoss {
    FusedLoss {
        name: "mse",
        targets: LossTargets::Values,
        wgsl: WGSL,
        defines: Vec::new(),
        cpu: Arc::new(|y, truth, rows| mse_cpu(y, super::value_targets(truth), rows)),
    }
}

/// The native (cpu backend) `mse`: per value `diff²`, `dy = 2 diff / D`, as the WGSL.
pub(crate) fn native(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    super::fused::native_per_value(c, |diff| (diff * diff, 2.0 * diff))
}
