//! `roc_auc`: area under the ROC curve of class 1, binary tasks only.

use super::{Computation, MetricRow, ScoreInput};
use crate::extend::MetricTruth;

pub(super) const ROW: MetricRow = MetricRow {
    binary_only: true,
    min_classes: 2,
    ..MetricRow::new(
        "roc_auc",
        "Area under the ROC curve of the positive class (class 1), binary tasks only.",
        "ROC AUC",
        Computation::Host(score),
    )
    .classes()
};

fn score(input: &ScoreInput) -> Option<f64> {
    let MetricTruth::Classes(labels) = input.truth else {
        return None;
    };
    if input.width != 2 {
        return None;
    }
    // The positive class's score: softmax(z)_1 is monotone in z_1 - z_0.
    let scores: Vec<f64> = input.outputs.chunks(2).map(|z| z[1] - z[0]).collect();
    let positive: Vec<bool> = labels.iter().map(|&l| l == 1).collect();
    crate::scores::roc_auc(&scores, &positive)
}
