//! Scores computed on the host from a model's per-sample outputs: precision, recall, F1,
//! the confusion matrix and ROC AUC for classification; MAE, RMSE and R² for regression.
//! Pure functions of their inputs, summed in sample order (the same bits every run).
//! Definitions follow scikit-learn's defaults (see docs/metrics.md).

use serde::{Deserialize, Serialize};

/// The scalar scores an eval reports besides loss and accuracy (`None`: not computed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Macro-averaged precision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
    /// Macro-averaged recall.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall: Option<f64>,
    /// Macro-averaged F1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f1: Option<f64>,
    /// Area under the ROC curve of class 1 (binary tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roc_auc: Option<f64>,
    /// Mean absolute error, averaged over target columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mae: Option<f64>,
    /// Root mean squared error, averaged over target columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
    /// R², averaged over target columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r2: Option<f64>,
    /// Metrics the binary registered (`engine::extend`), by name; in records beside the
    /// built-in ones. Read back leniently: a record's other keys that reach it through
    /// `flatten` (federated `clients` lists, later fields) are skipped, not errors, and
    /// `null` (how JSON writes NaN) reads as NaN.
    #[serde(default, flatten, deserialize_with = "numbers_only")]
    pub extra: std::collections::BTreeMap<String, f64>,
}

fn numbers_only<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, f64>, D::Error> {
    let all = std::collections::BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    Ok(all
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::Number(n) => n.as_f64().map(|x| (k, x)),
            serde_json::Value::Null => Some((k, f64::NAN)),
            _ => None,
        })
        .collect())
}

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScore {
    /// The class name (or its id as text).
    pub class: String,
    /// Of the samples predicted as this class, the fraction that are (0 when none are).
    pub precision: f64,
    /// Of the samples of this class, the fraction predicted as it (0 when there are none).
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// Samples of this class.
    pub support: u64,
}

/// Per-class scores and the confusion matrix of a classification eval.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ClassReport {
    /// One entry per class, in class order.
    pub per_class: Vec<ClassScore>,
    /// `confusion[actual][predicted]` sample counts.
    pub confusion: Vec<Vec<u64>>,
}

/// The index of the largest value (the first on ties, as the device's accuracy counts).
pub fn argmax(z: &[f32]) -> usize {
    (0..z.len()).fold(0, |best, j| if z[j] > z[best] { j } else { best })
}

/// Softmax probabilities of one row of logits, in f64.
pub fn softmax(z: &[f32]) -> Vec<f64> {
    let max = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let e: Vec<f64> = z.iter().map(|&v| (v as f64 - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// Classification scores of row-major `logits` `[n, classes]` against `labels` `[n]`
/// (`names[i]` names class `i`). ROC AUC is computed for two classes only.
pub fn classification(
    logits: &[f32],
    labels: &[u32],
    classes: usize,
    names: &[String],
) -> (Scores, ClassReport) {
    let classes = classes.max(1);
    let mut confusion = vec![vec![0u64; classes]; classes];
    for (row, &label) in logits.chunks(classes).zip(labels) {
        if let Some(line) = confusion.get_mut(label as usize) {
            line[argmax(row)] += 1;
        }
    }
    let per_class: Vec<ClassScore> = (0..classes)
        .map(|c| {
            let tp = confusion[c][c] as f64;
            let support: u64 = confusion[c].iter().sum();
            let predicted: u64 = confusion.iter().map(|line| line[c]).sum();
            let ratio = |a: f64, b: u64| if b == 0 { 0.0 } else { a / b as f64 };
            let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassScore {
                class: names.get(c).cloned().unwrap_or_else(|| c.to_string()),
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    let mean = |f: fn(&ClassScore) -> f64| per_class.iter().map(f).sum::<f64>() / classes as f64;
    let roc_auc = (classes == 2).then(|| {
        // The positive class's score: softmax(z)_1 is monotone in z_1 - z_0.
        let scores: Vec<f64> = logits
            .chunks(2)
            .map(|z| f64::from(z[1]) - f64::from(z[0]))
            .collect();
        let positive: Vec<bool> = labels.iter().map(|&l| l == 1).collect();
        roc_auc(&scores, &positive)
    });
    let scores = Scores {
        precision: Some(mean(|c| c.precision)),
        recall: Some(mean(|c| c.recall)),
        f1: Some(mean(|c| c.f1)),
        roc_auc: roc_auc.flatten(),
        ..Scores::default()
    };
    (
        scores,
        ClassReport {
            per_class,
            confusion,
        },
    )
}

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting one half (the Mann–Whitney statistic). `None` without both
/// positives and negatives.
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let mut order: Vec<usize> = (0..scores.len().min(positive.len())).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks (1-based) over runs of equal scores.
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += rank * order[i..=j].iter().filter(|&&k| positive[k]).count() as f64;
        i = j + 1;
    }
    let pos = order.iter().filter(|&&k| positive[k]).count() as f64;
    let neg = order.len() as f64 - pos;
    (pos > 0.0 && neg > 0.0).then(|| (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Regression scores of row-major `outputs` against `targets`, both `[n, width]` in the
/// targets' units: per target column, then averaged over columns.
pub fn regression(outputs: &[f64], targets: &[f64], width: usize) -> Scores {
    let width = width.max(1);
    let n = (outputs.len().min(targets.len()) / width) as f64;
    if n == 0.0 {
        return Scores::default();
    }
    let (mut mae, mut rmse, mut r2) = (0.0, 0.0, 0.0);
    for j in 0..width {
        let column = |v: &[f64]| v.iter().skip(j).step_by(width).copied().collect::<Vec<_>>();
        let (y, t) = (column(outputs), column(targets));
        let mean = t.iter().sum::<f64>() / n;
        let abs: f64 = y.iter().zip(&t).map(|(a, b)| (a - b).abs()).sum();
        let sq: f64 = y.iter().zip(&t).map(|(a, b)| (a - b).powi(2)).sum();
        let total: f64 = t.iter().map(|b| (b - mean).powi(2)).sum();
        mae += abs / n;
        rmse += (sq / n).sqrt();
        // scikit-learn's convention for a constant column: 1 if predicted exactly, else 0.
        r2 += if total > 0.0 {
            1.0 - sq / total
        } else if sq == 0.0 {
            1.0
        } else {
            0.0
        };
    }
    let w = width as f64;
    Scores {
        mae: Some(mae / w),
        rmse: Some(rmse / w),
        r2: Some(r2 / w),
        ..Scores::default()
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn registered_scores_read_back_from_records_with_other_keys_and_nan() {
        let record = serde_json::json!({
            "f1": 0.5, "cohen_kappa": 0.9, "undefined_kappa": null,
            "clients": [1, 2], "client_accuracy": {"mean": 0.8}, "event": "round",
        });
        let s: Scores = serde_json::from_value(record).unwrap();
        assert_eq!(s.f1, Some(0.5));
        assert_eq!(s.extra.get("cohen_kappa"), Some(&0.9));
        assert!(s.extra["undefined_kappa"].is_nan());
        assert!(!s.extra.contains_key("clients") && !s.extra.contains_key("event"));
    }

    use super::*;

    #[test]
    fn precision_recall_f1_and_confusion() {
        // Labels 0 0 1 1 2; predictions 0 1 1 1 0.
        let logits = [
            5.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 5.0, 0.0, 0.0, 5.0, 0.0, 5.0, 0.0, 0.0,
        ];
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let (s, report) = classification(&logits, &[0, 0, 1, 1, 2], 3, &names);
        assert_eq!(
            report.confusion,
            vec![vec![1, 1, 0], vec![0, 2, 0], vec![1, 0, 0]]
        );
        let a = &report.per_class[0];
        assert_eq!((a.precision, a.recall, a.support), (0.5, 0.5, 2));
        let b = &report.per_class[1];
        assert!((b.precision - 2.0 / 3.0).abs() < 1e-12 && b.recall == 1.0);
        assert!((b.f1 - 0.8).abs() < 1e-12);
        let c = &report.per_class[2];
        assert_eq!((c.precision, c.recall, c.f1), (0.0, 0.0, 0.0));
        assert!((s.f1.unwrap() - (0.5 + 0.8) / 3.0).abs() < 1e-12);
        assert_eq!(s.roc_auc, None);
        assert_eq!(report.per_class[2].class, "c");
    }

    #[test]
    fn roc_auc_counts_pairs_and_ties() {
        assert_eq!(
            roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            Some(0.75)
        );
        assert_eq!(roc_auc(&[0.5, 0.5], &[false, true]), Some(0.5));
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
        // Binary classification scores by z1 - z0: perfectly separated here.
        let (s, _) = classification(&[1.0, 0.0, 0.0, 1.0, 2.0, 0.5], &[0, 1, 0], 2, &[]);
        assert_eq!(s.roc_auc, Some(1.0));
    }

    #[test]
    fn regression_scores() {
        let s = regression(&[1.0, 2.0, 4.0], &[1.0, 3.0, 5.0], 1);
        assert!((s.mae.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.rmse.unwrap() - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        // Targets' mean 3: total 8, residual 2.
        assert!((s.r2.unwrap() - 0.75).abs() < 1e-12);
        // Two columns are averaged; the second is predicted exactly.
        let s = regression(
            &[1.0, 0.0, 2.0, 1.0, 4.0, 2.0],
            &[1.0, 0.0, 3.0, 1.0, 5.0, 2.0],
            2,
        );
        assert!((s.r2.unwrap() - 0.875).abs() < 1e-12);
    }
}
