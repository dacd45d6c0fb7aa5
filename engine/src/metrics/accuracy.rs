//! `accuracy`: top-1 hits, counted on the device.

use super::{Computation, MetricRow};

pub(super) const ROW: MetricRow = MetricRow::new(
    "accuracy",
    "Fraction of samples whose top class is the label.",
    "accuracy",
    Computation::Device(|m| m.accuracy),
)
.classes()
.percent()
.default_metric();
