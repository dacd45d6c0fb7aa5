//! `f1`: the per-class F1 values averaged over classes (scikit-learn's `macro`).

use ops::loss::LossTargets;

use super::{MetricRow, ScoreInput, Value};

pub(super) const ROW: MetricRow = MetricRow {
    name: "f1",
    description: "Macro-averaged F1 score.",
    label: "F1",
    targets: Some(LossTargets::Classes),
    higher_is_better: true,
    percent: false,
    default: false,
    binary_only: false,
    min_classes: 0,
    per_class: true,
    value: Value::Host(score),
};

fn score(input: &ScoreInput) -> Option<f64> {
    let per_class = &input.report?.per_class;
    (!per_class.is_empty())
        .then(|| per_class.iter().map(|c| c.f1).sum::<f64>() / per_class.len() as f64)
}
