//! `f1`: the per-class F1 values averaged over classes (scikit-learn's `macro`).

use super::{Computation, MetricRow};
use crate::scores::macro_average;

pub(super) const ROW: MetricRow = MetricRow {
    per_class: true,
    ..MetricRow::new(
        "f1",
        "Macro-averaged F1 score.",
        "F1",
        Computation::Host(|input| macro_average(input, |c| c.f1)),
    )
    .classes()
};
