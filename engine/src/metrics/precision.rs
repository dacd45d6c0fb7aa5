//! `precision`: the per-class precision values averaged over classes (scikit-learn's `macro`).

use ops::loss::LossTargets;

use super::{MetricRow, ScoreInput, Value};

pub(super) const ROW: MetricRow = MetricRow {
    name: "precision",
    description: "Macro-averaged precision (per-class values in the record's `per_class`).",
    label: "precision",
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
        .then(|| per_class.iter().map(|c| c.precision).sum::<f64>() / per_class.len() as f64)
}
