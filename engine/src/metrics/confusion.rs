//! `confusion`: the confusion matrix, in the record and the report.

use ops::loss::LossTargets;

use super::{MetricRow, Value};

pub(super) const ROW: MetricRow = MetricRow {
    name: "confusion",
    description: "The confusion matrix (`confusion[actual][predicted]`), in the record and report.",
    label: "confusion",
    targets: Some(LossTargets::Classes),
    higher_is_better: true,
    percent: false,
    default: false,
    binary_only: false,
    min_classes: 0,
    per_class: false,
    value: Value::Confusion,
};
