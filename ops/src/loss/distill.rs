//! Knowledge distillation (Hinton et al. 2015), fused forward + backward: the student's
//! loss mixes cross entropy on the labels with the KL divergence to a teacher's outputs
//! softened by a temperature `T`, scaled by `T²` so its gradient keeps its size as `T`
//! changes:
//!
//! `loss = α T² KL(softmax(t / T) ‖ softmax(z / T)) + (1 − α) CE(z, label)`,
//! `dz_j = α T (softmax(z / T)_j − softmax(t / T)_j) + (1 − α) (softmax(z)_j − [j = label])`.
//!
//! Accuracy and top-5 are the student's against the labels. A label `>= C` contributes
//! nothing (zero loss and gradient), as in cross entropy.

use super::LossOutput;
use crate::elementwise::wgsl_f32;
use crate::gpu::{BufferRef, Dispatch, GpuError, KernelBuilder, grid_1d};
use crate::tensor::Tensor;

const WGSL: &str = include_str!("../../../shaders/distill.wgsl");

/// `softmax(z / temperature)` and its log, in f64.
fn softened(z: &[f32], temperature: f64) -> (Vec<f64>, Vec<f64>) {
    let max = z
        .iter()
        .fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64 / temperature));
    let sum: f64 = z
        .iter()
        .map(|&v| (v as f64 / temperature - max).exp())
        .sum();
    let log_p: Vec<f64> = z
        .iter()
        .map(|&v| v as f64 / temperature - max - sum.ln())
        .collect();
    (log_p.iter().map(|l| l.exp()).collect(), log_p)
}

/// CPU reference over the first `rows` rows of the student's `logits` and the
/// `teacher`'s, both `[batch, classes]`.
pub fn distill_cpu(
    logits: &Tensor,
    teacher: &Tensor,
    labels: &[u32],
    rows: usize,
    temperature: f32,
    alpha: f32,
) -> LossOutput {
    let batch = logits.batch();
    let classes = logits.len() / batch.max(1);
    let mut grad = Tensor::zeros(&logits.shape);
    let (mut loss_sum, mut correct, mut top5) = (0.0f64, 0u64, 0u64);
    let (t, a) = (temperature as f64, alpha as f64);
    for r in 0..rows.min(batch) {
        let z = &logits.data[r * classes..(r + 1) * classes];
        let zt = &teacher.data[r * classes..(r + 1) * classes];
        let label = labels.get(r).copied().unwrap_or(u32::MAX) as usize;
        if label >= classes {
            continue;
        }
        let (p, log_p) = softened(z, 1.0);
        let (ps, log_ps) = softened(z, t);
        let (pt, log_pt) = softened(zt, t);
        let kl: f64 = (0..classes).map(|j| pt[j] * (log_pt[j] - log_ps[j])).sum();
        loss_sum += a * t * t * kl - (1.0 - a) * log_p[label];
        for j in 0..classes {
            let hard = p[j] - if j == label { 1.0 } else { 0.0 };
            grad.data[r * classes + j] = (a * t * (ps[j] - pt[j]) + (1.0 - a) * hard) as f32;
        }
        let (hit, hit5) = super::rank_hits(z, label);
        correct += hit;
        top5 += hit5;
    }
    LossOutput {
        loss_sum,
        correct,
        top5_correct: top5,
        grad,
    }
}

/// The fused kernel: per row, writes `dlogits` and `row_stats[3r..3r+3] = (loss, correct, top5)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dispatch(
    k: &mut KernelBuilder,
    step: &BufferRef,
    logits: &BufferRef,
    teacher: &BufferRef,
    labels: &BufferRef,
    dlogits: &BufferRef,
    row_stats: &BufferRef,
    batch: usize,
    classes: usize,
    temperature: f32,
    alpha: f32,
) -> Result<Dispatch, GpuError> {
    let (groups, stride) = grid_1d(batch);
    k.compute(
        "distill",
        &[WGSL],
        &[
            ("BATCH", batch.to_string()),
            ("C", classes.to_string()),
            ("STRIDE", stride.to_string()),
            ("TEMPERATURE", wgsl_f32(temperature)),
            ("ALPHA", wgsl_f32(alpha)),
        ],
        &[step, logits, teacher, labels, dlogits, row_stats],
        groups,
    )
}
