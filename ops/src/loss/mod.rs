//! Losses. Each has a CPU reference and a fused GPU kernel that writes the per-sample
//! gradient (not divided by the batch: the optimizer scales by 1/samples of the
//! accumulation group) and per-row statistics, reduced into the device metrics by
//! `shaders/metrics_reduce.wgsl`.

pub mod cross_entropy;
pub mod distill;
pub mod fused;
pub mod huber;
pub mod l1;
pub mod mse;

use crate::tensor::Tensor;

pub use fused::{FusedLoss, KernelOutput, LossTargets, Truth};

/// Which loss a training step minimises.
#[derive(Clone, Debug, PartialEq)]
pub enum LossKind {
    /// Softmax cross entropy over class logits, with optional label smoothing in [0, 1).
    CrossEntropy { label_smoothing: f32 },
    /// Knowledge distillation from a teacher's outputs at `temperature`, weighted `alpha`
    /// against cross entropy on the labels (see [`distill`]).
    Distill { temperature: f32, alpha: f32 },
    /// A loss computed by one fused kernel with the common bindings: `mse`, `l1`, `huber`
    /// ([`mse::mse`], [`l1::l1`], [`huber::huber`]) and those a program supplies.
    Fused(FusedLoss),
}

impl LossKind {
    /// Whether it trains against float targets rather than class ids.
    pub fn has_value_targets(&self) -> bool {
        match self {
            LossKind::Fused(f) => f.targets == LossTargets::Values,
            LossKind::CrossEntropy { .. } | LossKind::Distill { .. } => false,
        }
    }
}

/// What a loss produces for one batch (CPU reference).
#[derive(Clone, Debug, PartialEq)]
pub struct LossOutput {
    /// Sum over the valid rows of the per-sample loss.
    pub loss_sum: f64,
    /// Rows whose arg-max equals the label (classification losses only).
    pub correct: u64,
    /// Rows whose label is among the 5 largest logits (cross entropy only).
    pub top5_correct: u64,
    /// Gradient of the summed loss w.r.t. the outputs; zero in padded rows.
    pub grad: Tensor,
}

/// Whether `label` is the arg-max of `z` (first maximum on ties) and among its 5 largest
/// values: the accuracy counts of the classification losses' CPU references.
pub fn rank_hits(z: &[f32], label: usize) -> (u64, u64) {
    let argmax = (0..z.len()).fold(0, |best, j| if z[j] > z[best] { j } else { best });
    let above = z.iter().filter(|&&v| v > z[label]).count();
    ((argmax == label) as u64, (above < 5) as u64)
}

/// CPU reference of a regression loss that is, per sample, the mean over its `D` values of
/// `term(y - t)`; `term` returns the value and its derivative. Over the first `rows` rows
/// of `y` `[batch, D]`, targets `[rows * D]`.
pub(crate) fn per_value_cpu(
    y: &Tensor,
    targets: &[f32],
    rows: usize,
    term: impl Fn(f64) -> (f64, f64),
) -> LossOutput {
    let batch = y.batch();
    let d = y.len() / batch.max(1);
    let mut grad = Tensor::zeros(&y.shape);
    let mut loss_sum = 0.0f64;
    for r in 0..rows.min(batch) {
        let mut row = 0.0f64;
        for j in 0..d {
            let diff = f64::from(y.data[r * d + j])
                - f64::from(targets.get(r * d + j).copied().unwrap_or(0.0));
            let (value, derivative) = term(diff);
            row += value;
            grad.data[r * d + j] = (derivative / d as f64) as f32;
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

/// The targets of a value loss (none for class labels: such a loss is never bound to
/// them, see [`FusedLoss::targets`]).
pub(crate) fn value_targets(truth: Truth<'_>) -> &[f32] {
    match truth {
        Truth::Values(v) => v,
        Truth::Classes(_) => &[],
    }
}

/// The natively implemented kernels of losses (beyond cross entropy, listed with the step kernels) (the cpu backend; see `crate::native`).
///
/// A fused loss is found by its name: one a program supplies under the name of a built-in
/// loss would run the built-in's native code, not its own WGSL.
pub(crate) static NATIVE_KERNELS: &[(&str, crate::gpu::cpu::NativeFactory)] = &[
    ("mse", mse::native),
    ("l1", l1::native),
    ("huber", huber::native),
    ("distill", distill::native),
];
