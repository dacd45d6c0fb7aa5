//! `accuracy`: top-1 hits, counted on the device.

use super::{MetricRow, Value};

pub(super) const ROW: MetricRow = MetricRow::new(
    "accuracy",
    "Fraction of samples whose top class is the label.",
    "accuracy",
    Value::Device(|m| m.accuracy),
)
.classes()
.percent()
.default_metric();
