//! `loss`: the mean loss, summed on the device.

use super::{Computation, MetricRow};

pub(super) const ROW: MetricRow = MetricRow::new(
    "loss",
    "Mean loss.",
    "loss",
    Computation::Device(|m| m.loss),
)
.lower_is_better()
.default_metric();
