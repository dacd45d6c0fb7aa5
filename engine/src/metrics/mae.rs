//! `mae`: mean absolute error per target column, averaged over columns.

use super::{Computation, MetricRow, ScoreInput};
use crate::scores::per_column;

pub(super) const ROW: MetricRow = MetricRow::new(
    "mae",
    "Mean absolute error of regression outputs, in the targets' units.",
    "MAE",
    Computation::Host(score),
)
.values()
.lower_is_better()
.default_metric();

fn score(input: &ScoreInput) -> Option<f64> {
    per_column(input, |y, t| {
        y.iter().zip(t).map(|(a, b)| (a - b).abs()).sum::<f64>() / t.len() as f64
    })
}
