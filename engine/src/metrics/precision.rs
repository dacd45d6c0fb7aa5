//! `precision`: the per-class precision values averaged over classes (scikit-learn's `macro`).

use super::{Computation, MetricRow};
use crate::scores::macro_average;

pub(super) const ROW: MetricRow = MetricRow {
    per_class: true,
    ..MetricRow::new(
        "precision",
        "Macro-averaged precision (per-class values in the record's `per_class`).",
        "precision",
        Computation::Host(|input| macro_average(input, |c| c.precision)),
    )
    .classes()
};
