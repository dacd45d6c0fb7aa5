//! `top5`: top-5 hits, counted on the device.

use ops::loss::LossTargets;

use super::{MetricRow, Value};

pub(super) const ROW: MetricRow = MetricRow {
    name: "top5",
    description: "Fraction of samples whose label is among the 5 top classes.",
    label: "top-5",
    targets: Some(LossTargets::Classes),
    higher_is_better: true,
    percent: true,
    default: false,
    binary_only: false,
    // With 5 classes or fewer every label is among the top 5.
    min_classes: 6,
    per_class: false,
    value: Value::Device(|m| m.top5),
};
