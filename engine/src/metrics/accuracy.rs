//! `accuracy`: top-1 hits, counted on the device.

use ops::loss::LossTargets;

use super::{MetricRow, Value};

pub(super) const ROW: MetricRow = MetricRow {
    name: "accuracy",
    description: "Fraction of samples whose top class is the label.",
    label: "accuracy",
    targets: Some(LossTargets::Classes),
    higher_is_better: true,
    percent: true,
    default: true,
    binary_only: false,
    min_classes: 0,
    per_class: false,
    value: Value::Device(|m| m.accuracy),
};
