//! Mean squared error: per sample `loss = mean_j (y_j - t_j)^2`, `dy_j = 2 (y_j - t_j) / D`.

use super::LossOutput;
use crate::gpu::{BufferRef, Dispatch, GpuError, KernelBuilder, grid_1d};
use crate::tensor::Tensor;

const WGSL: &str = include_str!("../../../shaders/mse.wgsl");

/// CPU reference over the first `rows` rows of `y` `[batch, D]`, targets `[rows * D]`.
pub fn mse_cpu(y: &Tensor, targets: &[f32], rows: usize) -> LossOutput {
    let batch = y.batch();
    let d = y.len() / batch.max(1);
    let mut grad = Tensor::zeros(&y.shape);
    let mut loss_sum = 0.0f64;
    for r in 0..rows.min(batch) {
        let mut row = 0.0f64;
        for j in 0..d {
            let diff =
                y.data[r * d + j] as f64 - targets.get(r * d + j).copied().unwrap_or(0.0) as f64;
            row += diff * diff;
            grad.data[r * d + j] = (2.0 * diff / d as f64) as f32;
        }
        loss_sum += row / d as f64;
    }
    LossOutput {
        loss_sum,
        correct: 0,
        top5_correct: 0,
        grad,
    }
}

/// The fused kernel: per row, writes `dy` and `row_stats[3r..3r+3] = (loss, 0, 0)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dispatch(
    k: &mut KernelBuilder,
    step: &BufferRef,
    y: &BufferRef,
    targets: &BufferRef,
    dy: &BufferRef,
    row_stats: &BufferRef,
    batch: usize,
    features: usize,
) -> Result<Dispatch, GpuError> {
    let (groups, stride) = grid_1d(batch);
    k.compute(
        "mse",
        &[WGSL],
        &[
            ("BATCH", batch.to_string()),
            ("D", features.to_string()),
            ("STRIDE", stride.to_string()),
        ],
        &[step, y, targets, dy, row_stats],
        groups,
    )
}
