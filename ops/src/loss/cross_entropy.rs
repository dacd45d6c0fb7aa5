//! Softmax cross entropy with label smoothing, fused forward + backward.
//!
//! With `q_j = eps / C + (1 - eps) [j == label]`: `loss = logsumexp(z) - sum_j q_j z_j`,
//! `dz_j = softmax(z)_j - q_j`. A label `>= C` contributes nothing (zero loss and gradient).

use super::LossOutput;
use crate::elementwise::wgsl_f32;
use crate::gpu::{BufferRef, Dispatch, GpuError, KernelBuilder, grid_1d};
use crate::tensor::Tensor;

const WGSL: &str = include_str!("../../../shaders/cross_entropy.wgsl");

/// CPU reference over the first `rows` rows of `logits` `[batch, classes]`.
pub fn cross_entropy_cpu(
    logits: &Tensor,
    labels: &[u32],
    rows: usize,
    label_smoothing: f32,
) -> LossOutput {
    cross_entropy_weighted_cpu(logits, labels, rows, label_smoothing, None)
}

/// [`cross_entropy_cpu`] with each row's loss and gradient scaled by `weights[label]`.
#[allow(clippy::needless_range_loop)]
pub fn cross_entropy_weighted_cpu(
    logits: &Tensor,
    labels: &[u32],
    rows: usize,
    label_smoothing: f32,
    weights: Option<&[f32]>,
) -> LossOutput {
    let batch = logits.batch();
    let classes = logits.len() / batch.max(1);
    let mut grad = Tensor::zeros(&logits.shape);
    let (mut loss_sum, mut correct, mut top5) = (0.0f64, 0u64, 0u64);
    let eps = label_smoothing as f64;
    for r in 0..rows.min(batch) {
        let z = &logits.data[r * classes..(r + 1) * classes];
        let label = labels.get(r).copied().unwrap_or(u32::MAX) as usize;
        if label >= classes {
            continue;
        }
        let max = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let sum: f64 = z.iter().map(|&v| (v as f64 - max).exp()).sum();
        let lse = max + sum.ln();
        let zsum: f64 = z.iter().map(|&v| v as f64).sum();
        let w = weights.map_or(1.0, |w| f64::from(w.get(label).copied().unwrap_or(1.0)));
        loss_sum += w * (lse - (eps / classes as f64 * zsum + (1.0 - eps) * z[label] as f64));
        for j in 0..classes {
            let q = eps / classes as f64 + if j == label { 1.0 - eps } else { 0.0 };
            grad.data[r * classes + j] = (w * ((z[j] as f64 - max).exp() / sum - q)) as f32;
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
    labels: &BufferRef,
    dlogits: &BufferRef,
    row_stats: &BufferRef,
    batch: usize,
    classes: usize,
    label_smoothing: f32,
    class_weights: Option<&[f32]>,
) -> Result<Dispatch, GpuError> {
    let (groups, stride) = grid_1d(batch);
    // Unweighted, the shader multiplies by nothing (the same kernel as before weights).
    let (weights, weight) = match class_weights {
        Some(w) => (
            format!(
                "const WEIGHTS = array<f32, {}>({});",
                w.len(),
                w.iter()
                    // Rust's shortest round-trip decimal: WGSL reads back the same f32.
                    .map(|&v| format!("{v:?}f"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "WEIGHTS[label]".to_string(),
        ),
        None => (String::new(), "1.0".to_string()),
    };
    if class_weights.is_some_and(|w| w.len() != classes) {
        return Err(GpuError::InvalidConfig(format!(
            "cross_entropy has {classes} classes but {} class weights",
            class_weights.map_or(0, <[f32]>::len)
        )));
    }
    k.compute(
        "cross_entropy",
        &[WGSL],
        &[
            ("BATCH", batch.to_string()),
            ("C", classes.to_string()),
            ("STRIDE", stride.to_string()),
            ("SMOOTHING", wgsl_f32(label_smoothing)),
            ("WEIGHTS_DECL", weights),
            ("WEIGHT", weight),
        ],
        &[step, logits, labels, dlogits, row_stats],
        groups,
    )
}
