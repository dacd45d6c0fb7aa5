//! Eval metrics: one file per metric (its row: name, description, the task it measures,
//! how it is computed) and one registry ([`METRICS`], plus those a binary registers
//! through `engine::extend`). The parser, the schema, the did-you-mean lists, the task
//! checks, the evals, the metrics records, the log, the run summary, the report and the
//! callbacks that watch a metric all read the registry; adding a metric is its file and
//! one line in the table.

mod accuracy;
mod confusion;
mod f1;
mod loss;
mod mae;
mod precision;
mod r2;
mod recall;
mod rmse;
mod roc_auc;
mod top5;

use ops::loss::LossTargets;

use crate::extend::MetricTruth;
use crate::run::StepMetricsSummary;
use crate::scores::ClassReport;
use crate::spec::tagged::named_row;

/// One metric: what a pipeline names and how an eval computes it.
pub struct MetricRow {
    /// The name in `metrics:` and in the metrics records.
    pub name: &'static str,
    /// One sentence for the schema and the docs.
    pub description: &'static str,
    /// How the report's scores section names it (`RMSE`, `R²`).
    pub label: &'static str,
    /// The task it measures: class ids or float targets (`None`: either).
    pub targets: Option<LossTargets>,
    /// Whether larger is better.
    pub higher_is_better: bool,
    /// Shown as a percentage.
    pub percent: bool,
    /// Computed when an eval lists no metrics (for its task).
    pub default: bool,
    /// Needs exactly two classes (a validation error otherwise).
    pub binary_only: bool,
    /// `engine eval` lists it for a model with at least this many classes.
    pub min_classes: usize,
    /// Whether the record also carries the per-class table (precision, recall, F1).
    pub per_class: bool,
    /// How it is computed.
    pub value: Computation,
}

impl MetricRow {
    /// A row with the common settings: measures either task, larger is better, shown as
    /// a number, not a default, for any number of classes, no per-class table.
    pub const fn new(
        name: &'static str,
        description: &'static str,
        label: &'static str,
        value: Computation,
    ) -> MetricRow {
        MetricRow {
            name,
            description,
            label,
            targets: None,
            higher_is_better: true,
            percent: false,
            default: false,
            binary_only: false,
            min_classes: 0,
            per_class: false,
            value,
        }
    }

    /// Measures classification only.
    pub const fn classes(self) -> MetricRow {
        MetricRow {
            targets: Some(LossTargets::Classes),
            ..self
        }
    }

    /// Measures regression only.
    pub const fn values(self) -> MetricRow {
        MetricRow {
            targets: Some(LossTargets::Values),
            ..self
        }
    }

    /// Smaller is better.
    pub const fn lower_is_better(self) -> MetricRow {
        MetricRow {
            higher_is_better: false,
            ..self
        }
    }

    /// Computed when an eval lists no metrics.
    pub const fn default_metric(self) -> MetricRow {
        MetricRow {
            default: true,
            ..self
        }
    }

    /// Shown as a percentage.
    pub const fn percent(self) -> MetricRow {
        MetricRow {
            percent: true,
            ..self
        }
    }
}

/// How a metric is computed.
#[derive(Clone, Copy)]
pub enum Computation {
    /// Summed on the device during every eval pass: read from the pass's summary.
    Device(fn(&StepMetricsSummary) -> f64),
    /// Scored on the host over the model's outputs (`None`: undefined for this data).
    Host(fn(&ScoreInput) -> Option<f64>),
    /// A registered metric's score ([`crate::extend::Metric::score`]).
    Registered(fn(&[f64], MetricTruth<'_>, usize) -> f64),
    /// The confusion matrix: a table in the record and report, not one number.
    Confusion,
}

/// What a host-side metric scores: every sample of the split, in sample order.
pub struct ScoreInput<'a> {
    /// `[samples, width]` row-major: the logits (classification) or the outputs in the
    /// targets' units (regression).
    pub outputs: &'a [f64],
    /// One class id per sample, or `width` targets per sample in their units.
    pub truth: MetricTruth<'a>,
    /// Outputs per sample.
    pub width: usize,
    /// Classification: per-class scores and the confusion matrix.
    pub report: Option<&'a ClassReport>,
}

/// The built-in metrics, in the order the docs, the schema and `engine eval` list them.
pub static METRICS: &[MetricRow] = &[
    loss::ROW,
    accuracy::ROW,
    top5::ROW,
    precision::ROW,
    recall::ROW,
    f1::ROW,
    roc_auc::ROW,
    confusion::ROW,
    mae::ROW,
    rmse::ROW,
    r2::ROW,
];

/// A metric an eval computes: a row of the registry.
#[derive(Clone, Copy)]
pub struct EvalMetric(&'static MetricRow);

impl EvalMetric {
    /// The mean loss.
    pub const LOSS: EvalMetric = EvalMetric(&loss::ROW);
    /// Top-1 accuracy.
    pub const ACCURACY: EvalMetric = EvalMetric(&accuracy::ROW);

    /// Every metric: the built-in ones, then those the binary registered.
    pub fn all() -> impl Iterator<Item = EvalMetric> {
        METRICS
            .iter()
            .chain(crate::extend::registry().metric_rows.iter())
            .map(EvalMetric)
    }

    /// Every name a pipeline can write (did-you-mean lists and messages).
    pub fn names() -> &'static [&'static str] {
        crate::extend::registry().metric_names
    }

    /// The metric named `name`: built in or registered.
    pub fn named(name: &str) -> Option<EvalMetric> {
        EvalMetric::all().find(|m| m.as_str() == name)
    }

    /// Its row.
    pub fn row(self) -> &'static MetricRow {
        self.0
    }

    /// The name as written in pipelines and metrics records.
    pub fn as_str(self) -> &'static str {
        self.0.name
    }

    /// Whether it needs the model's outputs per sample (read back from the device),
    /// not only the device-accumulated loss and hit counts.
    pub fn needs_outputs(self) -> bool {
        !matches!(self.0.value, Computation::Device(_))
    }

    /// Whether it measures regression outputs only.
    pub fn is_regression(self) -> bool {
        self.0.targets == Some(LossTargets::Values)
    }

    /// Whether it fits a task with these targets.
    pub fn fits(self, targets: LossTargets) -> bool {
        self.0.targets.is_none_or(|t| t == targets)
    }

    /// Whether a larger value is better.
    pub fn higher_is_better(self) -> bool {
        self.0.higher_is_better
    }

    /// Whether it is one number a callback can watch (`confusion` is a matrix).
    pub fn is_scalar(self) -> bool {
        !matches!(self.0.value, Computation::Confusion)
    }

    /// Its value in an eval's summary (NaN where it was not computed).
    pub fn of(self, m: &StepMetricsSummary) -> f64 {
        match self.0.value {
            Computation::Device(read) => read(m),
            Computation::Host(_) | Computation::Registered(_) => {
                m.scores.get(self.0.name).unwrap_or(f64::NAN)
            }
            Computation::Confusion => f64::NAN,
        }
    }

    /// Its score over a pass's outputs, for a host-side metric.
    pub fn score(self, input: &ScoreInput) -> Option<f64> {
        match self.0.value {
            Computation::Host(score) => score(input),
            Computation::Registered(score) => Some(score(input.outputs, input.truth, input.width)),
            Computation::Device(_) | Computation::Confusion => None,
        }
    }

    /// Its value as the log, the run summary and `engine eval` show it.
    pub fn show(self, m: &StepMetricsSummary) -> Option<String> {
        // A host metric the pass did not compute is left out; one it computed as NaN shows.
        let value = match self.0.value {
            Computation::Host(_) | Computation::Registered(_) => m.scores.get(self.0.name)?,
            Computation::Device(read) => read(m),
            Computation::Confusion => return None,
        };
        Some(if self.0.percent {
            format!("{} {:.2}%", self.0.name, value * 100.0)
        } else {
            format!("{} {value:.4}", self.0.name)
        })
    }

    /// What an eval computes when it lists no metrics.
    pub fn defaults(regression: bool) -> Vec<EvalMetric> {
        let task = if regression {
            LossTargets::Values
        } else {
            LossTargets::Classes
        };
        EvalMetric::all()
            .filter(|m| m.0.default && m.fits(task))
            .collect()
    }
}

named_row!(EvalMetric, "A metric an eval computes.");

/// The row of a metric the binary registered.
pub(crate) fn registered_row(m: &crate::extend::RegisteredMetric) -> MetricRow {
    MetricRow {
        targets: Some(m.targets),
        higher_is_better: m.higher_is_better,
        ..MetricRow::new(
            m.name,
            m.description,
            m.name,
            Computation::Registered(m.score),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_has_unique_names_and_defaults_per_task() {
        let names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        assert_eq!(&EvalMetric::names()[..names.len()], names.as_slice());
        let names = |v: Vec<EvalMetric>| v.iter().map(|m| m.as_str()).collect::<Vec<_>>();
        assert_eq!(names(EvalMetric::defaults(false)), ["loss", "accuracy"]);
        assert_eq!(
            names(EvalMetric::defaults(true)),
            ["loss", "mae", "rmse", "r2"]
        );
    }
}
