//! What the host-side metrics (`crate::metrics`) share: the scores an eval computed, the
//! per-class table and confusion matrix, ROC AUC and per-column averaging. Pure functions
//! of their inputs, summed in sample order (the same bits every run). Definitions follow
//! scikit-learn's defaults (see docs/metrics.md).

use serde::{Deserialize, Serialize};

/// The scores an eval computed on the host, by metric name (`None` where a metric was not
/// computed); in records beside the loss and accuracies. Read back leniently: a record's
/// other keys that reach it through `flatten` (federated `clients` lists, later fields)
/// are skipped, not errors, and `null` (how JSON writes NaN) reads as NaN.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    #[serde(flatten, deserialize_with = "numbers_only")]
    values: std::collections::BTreeMap<String, f64>,
}

impl Scores {
    /// The score of metric `name`.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.get(name).copied()
    }

    /// Records the score of metric `name`.
    pub fn insert(&mut self, name: &str, value: f64) {
        self.values.insert(name.to_string(), value);
    }

    /// Every score, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.values.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// Only the scores `keep` accepts.
    pub fn filtered(self, keep: impl Fn(&str) -> bool) -> Scores {
        Scores {
            values: self.values.into_iter().filter(|(k, _)| keep(k)).collect(),
        }
    }
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

/// The per-class scores and confusion matrix of row-major `logits` `[n, classes]` against
/// `labels` `[n]` (`names[i]` names class `i`).
pub fn classification(
    logits: &[f32],
    labels: &[u32],
    classes: usize,
    names: &[String],
) -> ClassReport {
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
    ClassReport {
        per_class,
        confusion,
    }
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

/// A per-class score averaged over classes (`None` without the per-class table).
pub fn macro_average(
    input: &crate::metrics::ScoreInput,
    of: impl Fn(&ClassScore) -> f64,
) -> Option<f64> {
    let per_class = &input.report?.per_class;
    (!per_class.is_empty()).then(|| per_class.iter().map(of).sum::<f64>() / per_class.len() as f64)
}

/// A regression score computed per target column by `column(outputs, targets)` and
/// averaged over columns (`None` without samples or for class labels).
pub fn per_column(
    input: &crate::metrics::ScoreInput,
    column: impl Fn(&[f64], &[f64]) -> f64,
) -> Option<f64> {
    let crate::extend::MetricTruth::Values(targets) = input.truth else {
        return None;
    };
    let width = input.width.max(1);
    let n = input.outputs.len().min(targets.len()) / width;
    if n == 0 {
        return None;
    }
    let mut sum = 0.0;
    for j in 0..width {
        let values = |v: &[f64]| {
            v.iter()
                .skip(j)
                .step_by(width)
                .take(n)
                .copied()
                .collect::<Vec<_>>()
        };
        sum += column(&values(input.outputs), &values(targets));
    }
    Some(sum / width as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extend::MetricTruth;
    use crate::metrics::{EvalMetric, ScoreInput};

    fn score(name: &str, outputs: &[f64], truth: MetricTruth, width: usize) -> Option<f64> {
        let logits: Vec<f32> = outputs.iter().map(|&v| v as f32).collect();
        let report = match truth {
            MetricTruth::Classes(labels) => Some(classification(&logits, labels, width, &[])),
            MetricTruth::Values(_) => None,
        };
        let input = ScoreInput {
            outputs,
            truth,
            width,
            report: report.as_ref(),
        };
        EvalMetric::named(name).unwrap().score(&input)
    }

    #[test]
    fn scores_read_back_from_records_with_other_keys_and_nan() {
        let record = serde_json::json!({
            "f1": 0.5, "cohen_kappa": 0.9, "undefined_kappa": null,
            "clients": [1, 2], "client_accuracy": {"mean": 0.8}, "event": "round",
        });
        let s: Scores = serde_json::from_value(record).unwrap();
        assert_eq!(s.get("f1"), Some(0.5));
        assert_eq!(s.get("cohen_kappa"), Some(0.9));
        assert!(s.get("undefined_kappa").unwrap().is_nan());
        assert!(s.get("clients").is_none() && s.get("event").is_none());
    }

    #[test]
    fn precision_recall_f1_and_confusion() {
        // Labels 0 0 1 1 2; predictions 0 1 1 1 0.
        let logits = [
            5.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 5.0, 0.0, 0.0, 5.0, 0.0, 5.0, 0.0, 0.0,
        ];
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let report = classification(&logits, &[0, 0, 1, 1, 2], 3, &names);
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
        assert_eq!(report.per_class[2].class, "c");
        let logits: Vec<f64> = logits.iter().map(|&v| f64::from(v)).collect();
        let truth = MetricTruth::Classes(&[0, 0, 1, 1, 2]);
        let f1 = score("f1", &logits, truth, 3).unwrap();
        assert!((f1 - (0.5 + 0.8) / 3.0).abs() < 1e-12);
        let recall = score("recall", &logits, truth, 3).unwrap();
        assert!((recall - 0.5).abs() < 1e-12);
        assert_eq!(score("roc_auc", &logits, truth, 3), None);
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
        let truth = MetricTruth::Classes(&[0, 1, 0]);
        let auc = score("roc_auc", &[1.0, 0.0, 0.0, 1.0, 2.0, 0.5], truth, 2);
        assert_eq!(auc, Some(1.0));
    }

    #[test]
    fn regression_scores() {
        let truth = MetricTruth::Values(&[1.0, 3.0, 5.0]);
        let y = [1.0, 2.0, 4.0];
        assert!((score("mae", &y, truth, 1).unwrap() - 2.0 / 3.0).abs() < 1e-12);
        let rmse = score("rmse", &y, truth, 1).unwrap();
        assert!((rmse - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        // Targets' mean 3: total 8, residual 2.
        assert!((score("r2", &y, truth, 1).unwrap() - 0.75).abs() < 1e-12);
        // Two columns are averaged; the second is predicted exactly.
        let truth = MetricTruth::Values(&[1.0, 0.0, 3.0, 1.0, 5.0, 2.0]);
        let r2 = score("r2", &[1.0, 0.0, 2.0, 1.0, 4.0, 2.0], truth, 2).unwrap();
        assert!((r2 - 0.875).abs() < 1e-12);
        assert_eq!(score("mae", &[], MetricTruth::Values(&[]), 1), None);
    }
}
