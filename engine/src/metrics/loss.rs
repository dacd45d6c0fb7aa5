//! `loss`: the mean loss, summed on the device.

use super::{MetricRow, Value};

pub(super) const ROW: MetricRow = MetricRow {
    name: "loss",
    description: "Mean loss.",
    label: "loss",
    targets: None,
    higher_is_better: false,
    percent: false,
    default: true,
    binary_only: false,
    min_classes: 0,
    per_class: false,
    value: Value::Device(|m| m.loss),
};
