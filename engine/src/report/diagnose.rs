//! Diagnostics computed from the metrics history: each finding is one sentence that
//! carries its evidence (values, steps), so a reader can check it against the charts.

use super::MetricPoint;
use super::series::{Group, group_metrics};
use super::text::short_number;

/// Evaluations without a new best loss before a plateau is reported.
pub const PLATEAU_EVALS: usize = 5;
/// A loss above this multiple of its best so far is a divergence.
pub const DIVERGENCE_FACTOR: f64 = 3.0;
/// Train minus eval accuracy, in percentage points, above which a gap is reported.
pub const GAP_ACCURACY_POINTS: f64 = 5.0;
/// Eval loss above this multiple of the train loss is a gap.
pub const GAP_LOSS_FACTOR: f64 = 1.5;

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    /// A NaN or infinite loss was recorded.
    NonFinite,
    /// A loss rose above [`DIVERGENCE_FACTOR`] times its best so far.
    Divergence,
    /// An eval loss stopped improving for [`PLATEAU_EVALS`] evaluations.
    Plateau,
    /// Train and eval metrics are far apart at the end.
    GeneralisationGap,
}

impl FindingKind {
    /// A short title, also used as a CSS class.
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::NonFinite => "non-finite",
            FindingKind::Divergence => "divergence",
            FindingKind::Plateau => "plateau",
            FindingKind::GeneralisationGap => "generalisation-gap",
        }
    }

    /// The heading shown before the sentence.
    pub fn title(self) -> &'static str {
        match self {
            FindingKind::NonFinite => "Non-finite loss",
            FindingKind::Divergence => "Divergence",
            FindingKind::Plateau => "Plateau",
            FindingKind::GeneralisationGap => "Generalisation gap",
        }
    }
}

/// One diagnostic with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// What it is about.
    pub kind: FindingKind,
    /// A sentence with the evidence.
    pub message: String,
}

/// Every finding in the history; empty when nothing looks wrong.
pub fn diagnose(metrics: &[MetricPoint]) -> Vec<Finding> {
    let groups = group_metrics(metrics);
    let mut findings = Vec::new();
    for group in &groups {
        findings.extend(non_finite(group));
        findings.extend(divergence(group));
        if !group.is_train {
            findings.extend(plateau(group));
        }
    }
    if let Some(train) = groups.iter().find(|g| g.is_train) {
        for eval in groups.iter().filter(|g| !g.is_train) {
            findings.extend(gap(train, eval));
        }
    }
    findings
}

fn at(record: &MetricPoint) -> String {
    format!(
        "step {} (epoch {})",
        record.step,
        record.epoch.saturating_add(1)
    )
}

fn non_finite(group: &Group) -> Option<Finding> {
    let bad: Vec<&&MetricPoint> = group
        .records
        .iter()
        .filter(|r| !r.loss.is_finite())
        .collect();
    let first = bad.first()?;
    let more = match bad.len() {
        1 => String::new(),
        n => format!(
            "; {} of its {} records are non-finite",
            n,
            group.records.len()
        ),
    };
    Some(Finding {
        kind: FindingKind::NonFinite,
        message: format!(
            "{} loss is not a finite number at {} ({}){more}.",
            group.label,
            at(first),
            short_number(first.loss)
        ),
    })
}

fn divergence(group: &Group) -> Option<Finding> {
    let mut best: Option<&MetricPoint> = None;
    for record in &group.records {
        if !record.loss.is_finite() {
            continue;
        }
        if let Some(b) = best.filter(|b| b.loss > 0.0 && record.loss > DIVERGENCE_FACTOR * b.loss) {
            return Some(Finding {
                kind: FindingKind::Divergence,
                message: format!(
                    "{} loss rose to {} at {}, {:.1}× its best so far ({} at step {}).",
                    group.label,
                    short_number(record.loss),
                    at(record),
                    record.loss / b.loss,
                    short_number(b.loss),
                    b.step
                ),
            });
        }
        if best.is_none_or(|b| record.loss < b.loss) {
            best = Some(record);
        }
    }
    None
}

fn plateau(group: &Group) -> Option<Finding> {
    let finite: Vec<&MetricPoint> = group
        .records
        .iter()
        .copied()
        .filter(|r| r.loss.is_finite())
        .collect();
    // The first record with the lowest loss; later ties are not improvements.
    let (best_index, best) =
        finite
            .iter()
            .enumerate()
            .fold(None::<(usize, &MetricPoint)>, |acc, (i, r)| match acc {
                Some((_, b)) if b.loss <= r.loss => acc,
                _ => Some((i, r)),
            })?;
    let since = finite.len() - 1 - best_index;
    if since < PLATEAU_EVALS {
        return None;
    }
    let last = finite.last()?;
    Some(Finding {
        kind: FindingKind::Plateau,
        message: format!(
            "{} loss has not improved for the last {since} evaluations: best {} at {}, latest {} at {}.",
            group.label,
            short_number(best.loss),
            at(best),
            short_number(last.loss),
            at(last)
        ),
    })
}

fn gap(train: &Group, eval: &Group) -> Option<Finding> {
    let train_last = train.records.last()?;
    let eval_last = eval.records.last()?;
    let mut reasons = Vec::new();
    if let (Some(t), Some(e)) = (train_last.accuracy, eval_last.accuracy) {
        let points = (t - e) * 100.0;
        if points > GAP_ACCURACY_POINTS {
            reasons.push(format!(
                "final train accuracy {:.1}% vs {} {:.1}% ({points:.1} points)",
                t * 100.0,
                eval.label,
                e * 100.0
            ));
        }
    }
    let (t, e) = (train_last.loss, eval_last.loss);
    if t.is_finite() && e.is_finite() && t > 0.0 && e > GAP_LOSS_FACTOR * t {
        reasons.push(format!(
            "{} loss {} is {:.1}× the final train loss {}",
            eval.label,
            short_number(e),
            e / t,
            short_number(t)
        ));
    }
    if reasons.is_empty() {
        return None;
    }
    Some(Finding {
        kind: FindingKind::GeneralisationGap,
        message: format!(
            "Generalisation gap between train and {} (the model may overfit): {}.",
            eval.label,
            reasons.join("; ")
        ),
    })
}
