//! `confusion`: the confusion matrix, in the record and the report.

use super::{Computation, MetricRow};

pub(super) const ROW: MetricRow = MetricRow::new(
    "confusion",
    "The confusion matrix (`confusion[actual][predicted]`), in the record and report.",
    "confusion",
    Computation::Confusion,
)
.classes();
