//! `rmse`: root mean squared error per target column, averaged over columns.

use super::{Computation, MetricRow, ScoreInput};
use crate::scores::per_column;

pub(super) const ROW: MetricRow = MetricRow::new(
    "rmse",
    "Root mean squared error of regression outputs, in the targets' units.",
    "RMSE",
    Computation::Host(score),
)
.values()
.lower_is_better()
.default_metric();

fn score(input: &ScoreInput) -> Option<f64> {
    per_column(input, |y, t| {
        let sq: f64 = y.iter().zip(t).map(|(a, b)| (a - b).powi(2)).sum();
        (sq / t.len() as f64).sqrt()
    })
}
