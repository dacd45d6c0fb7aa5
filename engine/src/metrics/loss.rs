//! `loss`: the mean loss, summed on the device.

use super::{MetricRow, Value};

pub(super) const ROW: MetricRow =
    MetricRow::new("loss", "Mean loss.", "loss", Value::Device(|m| m.loss))
        .lower_is_better()
        .default_metric();
