//! One evaluation pass over a split: the device accumulates loss and hit counts; when a
//! metric needs the outputs themselves (F1, ROC AUC, R², …) each batch's outputs are read
//! back and scored on the host ([`crate::scores`]). Runs' evals and `engine eval` share it,
//! so both report the same numbers.

use ops::gpu::Gpu;
use ops::train::EvalStep;

use crate::data::{Batch, BatchConfig, BatchIter, Normalizer, Split};
use crate::extend::MetricTruth;
use crate::metrics::{EvalMetric, ScoreInput};
use crate::scores::{self, ClassReport};

use super::chain::loss_targets;
use super::checkpoint::MetricSums;
use super::{RunError, StepMetricsSummary};

/// What one evaluation pass measured.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOutcome {
    /// Loss, accuracies and the scalar scores asked for.
    pub summary: StepMetricsSummary,
    /// Per-class scores and the confusion matrix (classification evals that ask for
    /// precision, recall, F1 or the confusion matrix).
    pub report: Option<ClassReport>,
    /// Regression: every sample's targets and outputs in the targets' units, row-major
    /// `[samples, width]`, and the width.
    pub regression: Option<(Vec<f64>, Vec<f64>, usize)>,
}

/// Evaluates `step` on `split` in batches of `batch_size`, in sample order.
/// `one_hot_targets`: the loss compares with one-hot rows (mse on classes);
/// `target_scaling` maps regression outputs and targets back to the targets' units;
/// `class_names` names classes in the per-class report.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_split(
    gpu: &Gpu,
    step: &mut EvalStep,
    split: &Split,
    batch_size: usize,
    one_hot_targets: bool,
    metrics: &[EvalMetric],
    target_scaling: &Normalizer,
    class_names: Option<&[String]>,
) -> Result<EvalOutcome, RunError> {
    let config = BatchConfig {
        batch_size,
        shuffle: false,
        drop_last: false,
        seed: 0,
    };
    let needs_outputs = metrics.iter().any(|m| m.needs_outputs());
    let mut batch = Batch::default();
    let mut iter = BatchIter::new(split.clone(), config, 0)?;
    let mut buffer = Vec::new();
    let dataset = split.dataset();
    let classes = dataset.classes;
    let (mut outputs, mut labels, mut targets) = (Vec::new(), Vec::new(), Vec::new());
    while iter.next_into(&mut batch) {
        let target = loss_targets(classes, one_hot_targets, &batch, &mut buffer);
        step.upload_batch(gpu, &batch.features, &batch.labels, target, batch.rows)?;
        step.record(gpu)?;
        if needs_outputs {
            outputs.extend(step.read_outputs(gpu)?);
            labels.extend_from_slice(&batch.labels[..batch.rows.min(batch.labels.len())]);
            if let Some(t) = &batch.targets {
                targets.extend_from_slice(t);
            }
        }
    }
    let mut summary: StepMetricsSummary = MetricSums::from(step.read_metrics(gpu)?).into();
    let mut report = None;
    let mut regression = None;
    if needs_outputs {
        let y: Vec<f64> = outputs.iter().map(|&v| f64::from(v)).collect();
        if dataset.targets.is_some() {
            let (mut y, mut t): (Vec<f64>, Vec<f64>) =
                (y, targets.iter().map(|&v| f64::from(v)).collect());
            target_scaling.invert(&mut y);
            target_scaling.invert(&mut t);
            let width = dataset.target_width;
            score_into(
                &mut summary,
                metrics,
                &ScoreInput {
                    outputs: &y,
                    truth: MetricTruth::Values(&t),
                    width,
                    report: None,
                },
            );
            regression = Some((t, y, width));
        } else {
            let names: Vec<String> = match class_names {
                Some(names) => names.to_vec(),
                None => (0..classes).map(|c| c.to_string()).collect(),
            };
            let class_report = scores::classification(&outputs, &labels, classes, &names);
            score_into(
                &mut summary,
                metrics,
                &ScoreInput {
                    outputs: &y,
                    truth: MetricTruth::Classes(&labels),
                    width: classes,
                    report: Some(&class_report),
                },
            );
            let wants_report = metrics.iter().any(|m| m.row().per_class || !m.is_scalar());
            report = wants_report.then_some(class_report);
        }
    }
    Ok(EvalOutcome {
        summary,
        report,
        regression,
    })
}

/// The host-side scores of `metrics` over one pass's outputs, into `summary`.
fn score_into(summary: &mut StepMetricsSummary, metrics: &[EvalMetric], input: &ScoreInput) {
    for metric in metrics {
        if let Some(value) = metric.score(input) {
            summary.scores.insert(metric.as_str(), value);
        }
    }
}
