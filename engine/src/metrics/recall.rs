//! `recall`: the per-class recall values averaged over classes (scikit-learn's `macro`).

use super::{Computation, MetricRow};
use crate::scores::macro_average;

pub(super) const ROW: MetricRow = MetricRow {
    per_class: true,
    ..MetricRow::new(
        "recall",
        "Macro-averaged recall.",
        "recall",
        Computation::Host(|input| macro_average(input, |c| c.recall)),
    )
    .classes()
};
