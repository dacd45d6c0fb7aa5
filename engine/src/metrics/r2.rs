//! `r2`: coefficient of determination per target column, averaged over columns.

use super::{Computation, MetricRow, ScoreInput};
use crate::scores::per_column;

pub(super) const ROW: MetricRow = MetricRow::new(
    "r2",
    "Coefficient of determination R² (1 − residual / total sum of squares), averaged\nover target columns.",
    "R²",
    Computation::Host(score),
)
.values()
.default_metric();

fn score(input: &ScoreInput) -> Option<f64> {
    per_column(input, |y, t| {
        let mean = t.iter().sum::<f64>() / t.len() as f64;
        let sq: f64 = y.iter().zip(t).map(|(a, b)| (a - b).powi(2)).sum();
        let total: f64 = t.iter().map(|b| (b - mean).powi(2)).sum();
        // scikit-learn's convention for a constant column: 1 if predicted exactly, else 0.
        if total > 0.0 {
            1.0 - sq / total
        } else if sq == 0.0 {
            1.0
        } else {
            0.0
        }
    })
}
