//! One evaluation pass over a split: the device accumulates loss and hit counts; when a
//! metric needs the outputs themselves (F1, ROC AUC, R², …) each batch's outputs are read
//! back and scored on the host ([`crate::scores`]). Runs' evals and `engine eval` share it,
//! so both report the same numbers.

use ops::gpu::Gpu;
use ops::train::EvalStep;

use crate::data::{Batch, BatchConfig, BatchIter, Normalizer, Split};
use crate::extend::MetricTruth;
use crate::scores::{self, ClassReport};
use crate::spec::EvalMetric;

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
        if dataset.targets.is_some() {
            let mut y: Vec<f64> = outputs.iter().map(|&v| f64::from(v)).collect();
            let mut t: Vec<f64> = targets.iter().map(|&v| f64::from(v)).collect();
            target_scaling.invert(&mut y);
            target_scaling.invert(&mut t);
            summary.scores = scores::regression(&y, &t, dataset.target_width);
            summary.scores.extra =
                registered_scores(metrics, &y, MetricTruth::Values(&t), dataset.target_width);
            regression = Some((t, y, dataset.target_width));
        } else {
            let names: Vec<String> = match class_names {
                Some(names) => names.to_vec(),
                None => (0..classes).map(|c| c.to_string()).collect(),
            };
            let (s, r) = scores::classification(&outputs, &labels, classes, &names);
            summary.scores = s;
            if metrics
                .iter()
                .any(|m| matches!(m, EvalMetric::Extension(_)))
            {
                let logits: Vec<f64> = outputs.iter().map(|&v| f64::from(v)).collect();
                summary.scores.extra =
                    registered_scores(metrics, &logits, MetricTruth::Classes(&labels), classes);
            }
            let wants_report = metrics.iter().any(|m| {
                matches!(
                    m,
                    EvalMetric::Precision
                        | EvalMetric::Recall
                        | EvalMetric::F1
                        | EvalMetric::Confusion
                )
            });
            report = wants_report.then_some(r);
        }
    }
    Ok(EvalOutcome {
        summary,
        report,
        regression,
    })
}

/// The metrics the binary registered among `metrics`, each scored over the whole split.
fn registered_scores(
    metrics: &[EvalMetric],
    outputs: &[f64],
    truth: MetricTruth<'_>,
    width: usize,
) -> std::collections::BTreeMap<String, f64> {
    metrics
        .iter()
        .filter_map(|m| match m {
            EvalMetric::Extension(name) => crate::extend::registry().metric(name),
            _ => None,
        })
        .map(|entry| (entry.name.to_string(), (entry.score)(outputs, truth, width)))
        .collect()
}
