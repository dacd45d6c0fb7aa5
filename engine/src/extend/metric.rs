//! Metrics from a user's crate: a score of one eval pass, computed on the host from the
//! model's outputs and the truth.

pub use ops::loss::LossTargets;

/// A metric a binary adds with
/// [`EngineBuilder::register_metric`](super::EngineBuilder::register_metric).
///
/// Listed in an eval's `metrics:` by [`Metric::NAME`]; its value goes into the eval's
/// metrics record, the log line and run summary, the report's scores section, the
/// `Event` callbacks see, and can be watched by early stopping, checkpoints and monitors
/// as `<eval>.<NAME>`.
pub trait Metric: 'static {
    /// The name in `metrics:` (snake_case, not a built-in metric's).
    const NAME: &'static str;
    /// One sentence for `engine schema`.
    const DESCRIPTION: &'static str;
    /// Class ids (classification data) or float targets (regression).
    const TARGETS: LossTargets;
    /// Whether larger is better (the default mode of early stopping and checkpoints).
    const HIGHER_IS_BETTER: bool;

    /// The score over every sample of the split, in sample order. `outputs` is
    /// `[samples, width]` row-major: the logits (classification) or the outputs in the
    /// targets' units (regression). `truth` holds one class id per sample, or `width`
    /// targets per sample in their units.
    fn score(outputs: &[f64], truth: MetricTruth<'_>, width: usize) -> f64;
}

/// The truth a [`Metric`] scores against.
#[derive(Clone, Copy, Debug)]
pub enum MetricTruth<'a> {
    /// One class id per sample.
    Classes(&'a [u32]),
    /// `width` targets per sample, in the targets' units.
    Values(&'a [f64]),
}

/// A registered metric with its type erased.
pub(crate) struct RegisteredMetric {
    pub name: &'static str,
    pub description: &'static str,
    pub targets: LossTargets,
    pub higher_is_better: bool,
    pub score: fn(&[f64], MetricTruth<'_>, usize) -> f64,
}

impl RegisteredMetric {
    pub fn of<M: Metric>() -> RegisteredMetric {
        RegisteredMetric {
            name: M::NAME,
            description: M::DESCRIPTION,
            targets: M::TARGETS,
            higher_is_better: M::HIGHER_IS_BETTER,
            score: M::score,
        }
    }
}
