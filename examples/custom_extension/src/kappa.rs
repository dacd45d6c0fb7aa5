//! `cohen_kappa`: Cohen's kappa of the predicted classes (the arg-max of the outputs)
//! against the labels, `(p_o - p_e) / (1 - p_e)`: agreement corrected for chance
//! (scikit-learn's `cohen_kappa_score`, unweighted).

use engine::extend::{LossTargets, Metric, MetricTruth};

/// Cohen's kappa.
pub struct CohenKappa;

impl Metric for CohenKappa {
    const NAME: &'static str = "cohen_kappa";
    const DESCRIPTION: &'static str = "Cohen's kappa of the predicted classes against the labels: agreement corrected for chance.";
    const TARGETS: LossTargets = LossTargets::Classes;
    const HIGHER_IS_BETTER: bool = true;

    fn score(outputs: &[f64], truth: MetricTruth<'_>, width: usize) -> f64 {
        let MetricTruth::Classes(labels) = truth else {
            unreachable!("TARGETS is Classes: the engine hands class ids")
        };
        let n = labels.len();
        let mut confusion = vec![0u64; width * width];
        for (row, &label) in outputs.chunks(width).zip(labels) {
            // The first maximum, as the engine's accuracy counts it.
            let predicted = (0..width).fold(0, |best, j| if row[j] > row[best] { j } else { best });
            confusion[label as usize * width + predicted] += 1;
        }
        let total = n as f64;
        let agree: u64 = (0..width).map(|c| confusion[c * width + c]).sum();
        let chance: f64 = (0..width)
            .map(|c| {
                let actual: u64 = (0..width).map(|p| confusion[c * width + p]).sum();
                let predicted: u64 = (0..width).map(|a| confusion[a * width + c]).sum();
                actual as f64 * predicted as f64
            })
            .sum::<f64>()
            / (total * total);
        let observed = agree as f64 / total;
        if chance >= 1.0 {
            // One class everywhere: kappa is undefined; scikit-learn reports NaN too.
            return f64::NAN;
        }
        (observed - chance) / (1.0 - chance)
    }
}
