//! Groups the metrics history into series: the training records, then one series per
//! eval stage in order of first appearance. A series keeps its index everywhere so it
//! has the same colour in every chart.

use super::MetricPoint;

/// The records of one producer (training, or one eval stage), in file order.
#[derive(Debug, Clone)]
pub struct Group<'a> {
    /// `train`, or the eval stage id with its split when they differ: `holdout (test)`.
    pub label: String,
    /// Whether these are training records.
    pub is_train: bool,
    /// Position among all groups (the colour).
    pub index: usize,
    /// The records.
    pub records: Vec<&'a MetricPoint>,
}

/// Splits the history into groups; records of events other than `train` and `eval`
/// are left out. With several training chains, each has its group, `train <chain>`.
pub fn group_metrics(metrics: &[MetricPoint]) -> Vec<Group<'_>> {
    let mut groups: Vec<Group> = Vec::new();
    let mut chains: Vec<&str> = Vec::new();
    for m in metrics.iter().filter(|m| m.event == "train") {
        let chain = m.chain.as_deref().unwrap_or("");
        if !chains.contains(&chain) {
            chains.push(chain);
        }
    }
    let train_label = |record: &MetricPoint| match &record.chain {
        Some(chain) if chains.len() > 1 => format!("train {chain}"),
        _ => "train".to_string(),
    };
    // The training groups come first whenever there are any, so they keep colours 0...
    for record in metrics.iter().filter(|m| m.event == "train") {
        let label = train_label(record);
        if !groups.iter().any(|g| g.label == label) {
            groups.push(Group {
                label,
                is_train: true,
                index: groups.len(),
                records: Vec::new(),
            });
        }
    }
    for record in metrics {
        let is_train = match record.event.as_str() {
            "train" => true,
            "eval" => false,
            _ => continue,
        };
        let label = if is_train || record.split.is_empty() || record.split == record.stage {
            if is_train {
                train_label(record)
            } else {
                record.stage.clone()
            }
        } else {
            format!("{} ({})", record.stage, record.split)
        };
        match groups
            .iter_mut()
            .find(|g| g.is_train == is_train && g.label == label)
        {
            Some(group) => group.records.push(record),
            None => {
                let index = groups.len();
                groups.push(Group {
                    label,
                    is_train,
                    index,
                    records: vec![record],
                });
            }
        }
    }
    groups
}

/// What a chart plots against the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Mean loss.
    Loss,
    /// Top-1 accuracy, in percent.
    Accuracy,
    /// Learning rate (training records only).
    LearningRate,
}

/// One line of a chart: (step, value) pairs, non-finite values included (the chart
/// leaves them out; the diagnostics report them).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Colour index.
    pub index: usize,
    /// (step, value) in file order.
    pub points: Vec<(f64, f64)>,
}

/// The series of one measure; groups without that measure are left out.
pub fn series_of(groups: &[Group], measure: Measure) -> Vec<Series> {
    groups
        .iter()
        .filter_map(|group| {
            let points: Vec<(f64, f64)> = group
                .records
                .iter()
                .filter_map(|r| {
                    let value = match measure {
                        Measure::Loss => Some(r.loss),
                        Measure::Accuracy => r.accuracy.map(|a| a * 100.0),
                        Measure::LearningRate => r.lr,
                    }?;
                    Some((r.step as f64, value))
                })
                .collect();
            (!points.is_empty()).then(|| Series {
                label: group.label.clone(),
                index: group.index,
                points,
            })
        })
        .collect()
}
