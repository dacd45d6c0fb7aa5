//! Losses. Each has a CPU reference and a fused GPU kernel that writes the per-sample
//! gradient (not divided by the batch: the optimizer scales by 1/samples of the
//! accumulation group) and per-row statistics, reduced into the device metrics by
//! `shaders/metrics_reduce.wgsl`.

pub mod cross_entropy;
pub mod distill;
pub mod mse;

use crate::tensor::Tensor;

/// Which loss a training step minimises.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossKind {
    /// Softmax cross entropy over class logits, with optional label smoothing in [0, 1).
    CrossEntropy { label_smoothing: f32 },
    /// Mean squared error against float targets (mean over features, per sample).
    Mse,
    /// Knowledge distillation from a teacher's outputs at `temperature`, weighted `alpha`
    /// against cross entropy on the labels (see [`distill`]).
    Distill { temperature: f32, alpha: f32 },
}

/// What a loss produces for one batch (CPU reference).
#[derive(Clone, Debug, PartialEq)]
pub struct LossOutput {
    /// Sum over the valid rows of the per-sample loss.
    pub loss_sum: f64,
    /// Rows whose arg-max equals the label (cross entropy only).
    pub correct: u64,
    /// Rows whose label is among the 5 largest logits (cross entropy only).
    pub top5_correct: u64,
    /// Gradient of the summed loss w.r.t. the outputs; zero in padded rows.
    pub grad: Tensor,
}

/// Whether `label` is the arg-max of `z` (first maximum on ties) and among its 5 largest
/// values: the accuracy counts of the classification losses' CPU references.
pub(crate) fn rank_hits(z: &[f32], label: usize) -> (u64, u64) {
    let argmax = (0..z.len()).fold(0, |best, j| if z[j] > z[best] { j } else { best });
    let above = z.iter().filter(|&&v| v > z[label]).count();
    ((argmax == label) as u64, (above < 5) as u64)
}
