//! `top5`: top-5 hits, counted on the device.

use super::{Computation, MetricRow};

pub(super) const ROW: MetricRow = MetricRow {
    // With 5 classes or fewer every label is among the top 5.
    min_classes: 6,
    ..MetricRow::new(
        "top5",
        "Fraction of samples whose label is among the 5 top classes.",
        "top-5",
        Computation::Device(|m| m.top5),
    )
    .classes()
    .percent()
};
