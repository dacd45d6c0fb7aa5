//! `rmse`: root mean squared error per target column, averaged over columns.

use ops::loss::LossTargets;

use super::{MetricRow, ScoreInput, Value};
use crate::scores::per_column;

pub(super) const ROW: MetricRow = MetricRow {
    name: "rmse",
    description: "Root mean squared error of regression outputs, in the targets' units.",
    label: "RMSE",
    targets: Some(LossTargets::Values),
    higher_is_better: false,
    percent: false,
    default: true,
    binary_only: false,
    min_classes: 0,
    per_class: false,
    value: Value::Host(score),
};

fn score(input: &ScoreInput) -> Option<f64> {
    per_column(input, |y, t| {
        let sq: f64 = y.iter().zip(t).map(|(a, b)| (a - b).powi(2)).sum();
        (sq / t.len() as f64).sqrt()
    })
}
