//! Feature normalisation: statistics fitted on the train split, applied to every split.

use rayon::prelude::*;

use super::dataset::Dataset;
use super::error::DataError;

/// Rows per partial sum. Fixed (not derived from the thread count) so the statistics are
/// the same bits on every machine.
const ROWS_PER_CHUNK: usize = 512;

/// How to normalise features.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Normalize {
    /// Leave values as they are.
    #[default]
    None,
    /// Multiply every value by `factor` (e.g. `1/255` for bytes, `1/16` for digits).
    Scale { factor: f32 },
    /// Per feature: subtract the train mean, divide by the train standard deviation
    /// (population std, as scikit-learn's `StandardScaler`). A feature with std 0 is
    /// only centred.
    Standardize,
    /// Per feature: map the train range [min, max] onto [0, 1]. A constant feature is
    /// only shifted to 0.
    MinMax,
}

/// A fitted normalisation: `x' = (x - offset[j]) * factor[j]` for feature `j`,
/// computed in f64 and rounded once to f32.
///
/// ```ignore
/// let normalizer = Normalizer::fit(&Normalize::Standardize, &dataset, &train_rows)?;
/// normalizer.apply(&mut dataset)?; // every split, train statistics
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Normalizer {
    offsets: Vec<f64>,
    factors: Vec<f64>,
}

impl Normalizer {
    /// Fits `method` on the given rows of `dataset` (the train split's indices).
    /// Errors if the statistics need rows and there are none, or if a scale factor is
    /// not finite.
    pub fn fit(
        method: &Normalize,
        dataset: &Dataset,
        rows: &[u32],
    ) -> Result<Normalizer, DataError> {
        Normalizer::fit_values(method, &dataset.features, dataset.sample_len(), rows)
    }

    /// Fits `method` on the given rows of `dataset`'s regression targets (target
    /// standardisation); identity for a classification dataset.
    pub fn fit_targets(
        method: &Normalize,
        dataset: &Dataset,
        rows: &[u32],
    ) -> Result<Normalizer, DataError> {
        match &dataset.targets {
            Some(targets) => Normalizer::fit_values(method, targets, dataset.target_width, rows),
            None => Ok(Normalizer::identity(0)),
        }
    }

    /// The normalisation that changes nothing, over `width` values.
    pub fn identity(width: usize) -> Normalizer {
        Normalizer {
            offsets: vec![0.0; width],
            factors: vec![1.0; width],
        }
    }

    /// A normalisation from stored offsets and factors (see [`Normalizer::offsets`]);
    /// `None` if their lengths differ or a value is not finite.
    pub fn from_parts(offsets: Vec<f64>, factors: Vec<f64>) -> Option<Normalizer> {
        let finite = offsets.iter().chain(&factors).all(|v| v.is_finite());
        (offsets.len() == factors.len() && finite && factors.iter().all(|&f| f != 0.0))
            .then_some(Normalizer { offsets, factors })
    }

    /// Number of values per sample it was fitted on.
    pub fn width(&self) -> usize {
        self.offsets.len()
    }

    /// Normalises row-major rows of `width()` values in place.
    pub fn apply_values(&self, values: &mut [f32]) {
        let width = self.width().max(1);
        if self.is_identity() {
            return;
        }
        values
            .par_chunks_mut(width)
            .with_min_len(64)
            .for_each(|sample| {
                for ((value, offset), factor) in
                    sample.iter_mut().zip(&self.offsets).zip(&self.factors)
                {
                    *value = ((f64::from(*value) - offset) * factor) as f32;
                }
            });
    }

    /// Maps normalised values back to the original units: `x = x' / factor + offset`
    /// (regression outputs of a model trained on standardised targets).
    pub fn invert(&self, values: &mut [f64]) {
        let width = self.width().max(1);
        for sample in values.chunks_mut(width) {
            for ((value, offset), factor) in sample.iter_mut().zip(&self.offsets).zip(&self.factors)
            {
                *value = *value / factor + offset;
            }
        }
    }

    fn fit_values(
        method: &Normalize,
        values: &[f32],
        width: usize,
        rows: &[u32],
    ) -> Result<Normalizer, DataError> {
        let samples = values.len() / width.max(1);
        let needs_rows = matches!(method, Normalize::Standardize | Normalize::MinMax);
        if needs_rows && rows.is_empty() {
            return Err(DataError::Config(
                "normalisation statistics need at least one train sample, the train split is empty"
                    .into(),
            ));
        }
        if let Some(&row) = rows.iter().find(|&&r| r as usize >= samples) {
            return Err(DataError::Config(format!(
                "train row {row} is outside the dataset of {samples} samples"
            )));
        }
        let (offsets, factors) = match method {
            Normalize::None => (vec![0.0; width], vec![1.0; width]),
            Normalize::Scale { factor } => {
                if !factor.is_finite() {
                    return Err(DataError::Config(format!(
                        "the scale factor must be finite, found {factor}"
                    )));
                }
                (vec![0.0; width], vec![f64::from(*factor); width])
            }
            Normalize::Standardize => {
                let means = column_sums(values, width, rows, |_, x| x)
                    .into_iter()
                    .map(|s| s / rows.len() as f64)
                    .collect::<Vec<_>>();
                let variances = column_sums(values, width, rows, |j, x| (x - means[j]).powi(2));
                let factors = variances
                    .iter()
                    .map(|&v| {
                        let std = (v / rows.len() as f64).sqrt();
                        if std > 0.0 { 1.0 / std } else { 1.0 }
                    })
                    .collect();
                (means, factors)
            }
            Normalize::MinMax => {
                let (mins, maxs) = column_ranges(values, width, rows);
                let factors = mins
                    .iter()
                    .zip(&maxs)
                    .map(|(lo, hi)| if hi > lo { 1.0 / (hi - lo) } else { 1.0 })
                    .collect();
                (mins, factors)
            }
        };
        Ok(Normalizer { offsets, factors })
    }

    /// Normalises every sample of `dataset` in place (in parallel). Errors if the
    /// dataset's samples have a different number of values than the fitted ones.
    pub fn apply(&self, dataset: &mut Dataset) -> Result<(), DataError> {
        let width = dataset.sample_len();
        if width != self.offsets.len() {
            return Err(DataError::Config(format!(
                "the normaliser was fitted on samples of {} values, this dataset has {width}",
                self.offsets.len()
            )));
        }
        self.apply_values(&mut dataset.features);
        Ok(())
    }

    /// Normalises `dataset`'s regression targets in place (nothing for classification).
    pub fn apply_targets(&self, dataset: &mut Dataset) -> Result<(), DataError> {
        let Some(targets) = dataset.targets.as_mut() else {
            return Ok(());
        };
        if dataset.target_width != self.offsets.len() {
            return Err(DataError::Config(format!(
                "the target scaling was fitted on {} targets per sample, this dataset has {}",
                self.offsets.len(),
                dataset.target_width
            )));
        }
        self.apply_values(targets);
        Ok(())
    }

    /// The same normalisation with features `range` left as they are (id features).
    pub fn leaving(mut self, range: std::ops::Range<usize>) -> Normalizer {
        let width = self.offsets.len();
        for j in range.filter(|&j| j < width) {
            self.offsets[j] = 0.0;
            self.factors[j] = 1.0;
        }
        self
    }

    /// Per-feature offsets (the train mean or minimum; 0 for `None` and `Scale`).
    pub fn offsets(&self) -> &[f64] {
        &self.offsets
    }

    /// Per-feature factors (1 / std, 1 / range, the scale factor, or 1).
    pub fn factors(&self) -> &[f64] {
        &self.factors
    }

    /// True when applying changes nothing.
    pub fn is_identity(&self) -> bool {
        self.offsets.iter().all(|&o| o == 0.0) && self.factors.iter().all(|&f| f == 1.0)
    }
}

/// Per-feature sums of `term(feature, value)` over `rows`, in a fixed order.
fn column_sums(
    values: &[f32],
    width: usize,
    rows: &[u32],
    term: impl Fn(usize, f64) -> f64 + Sync,
) -> Vec<f64> {
    let sample = |row: u32| &values[row as usize * width..(row as usize + 1) * width];
    let partials: Vec<Vec<f64>> = rows
        .par_chunks(ROWS_PER_CHUNK)
        .map(|chunk| {
            let mut sums = vec![0.0; width];
            for &row in chunk {
                for (j, (sum, &x)) in sums.iter_mut().zip(sample(row)).enumerate() {
                    *sum += term(j, f64::from(x));
                }
            }
            sums
        })
        .collect();
    let mut total = vec![0.0; width];
    for partial in partials {
        for (t, p) in total.iter_mut().zip(partial) {
            *t += p;
        }
    }
    total
}

/// Per-feature minimum and maximum over `rows` (non-empty).
fn column_ranges(values: &[f32], width: usize, rows: &[u32]) -> (Vec<f64>, Vec<f64>) {
    let sample = |row: u32| &values[row as usize * width..(row as usize + 1) * width];
    rows.par_chunks(ROWS_PER_CHUNK)
        .map(|chunk| {
            let mut lo = vec![f64::INFINITY; width];
            let mut hi = vec![f64::NEG_INFINITY; width];
            for &row in chunk {
                for ((l, h), &x) in lo.iter_mut().zip(hi.iter_mut()).zip(sample(row)) {
                    *l = l.min(f64::from(x));
                    *h = h.max(f64::from(x));
                }
            }
            (lo, hi)
        })
        .reduce(
            || (vec![f64::INFINITY; width], vec![f64::NEG_INFINITY; width]),
            |(mut lo, mut hi), (lo2, hi2)| {
                lo.iter_mut().zip(lo2).for_each(|(a, b)| *a = a.min(b));
                hi.iter_mut().zip(hi2).for_each(|(a, b)| *a = a.max(b));
                (lo, hi)
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset() -> Dataset {
        // Feature 0: 1, 3, 100 (row 2 is "test"); feature 1 constant 5 in train.
        Dataset::classification(
            vec![1.0, 5.0, 3.0, 5.0, 100.0, 9.0],
            vec![2],
            vec![0, 1, 0],
            2,
        )
        .unwrap()
    }

    #[test]
    fn standardize_uses_only_the_given_rows() {
        let mut data = dataset();
        let normalizer = Normalizer::fit(&Normalize::Standardize, &data, &[0, 1]).unwrap();
        assert_eq!(normalizer.offsets(), [2.0, 5.0]);
        assert_eq!(normalizer.factors(), [1.0, 1.0]); // std 1 and std 0 (centred only)
        normalizer.apply(&mut data).unwrap();
        assert_eq!(data.features, vec![-1.0, 0.0, 1.0, 0.0, 98.0, 4.0]);
    }

    #[test]
    fn min_max_scale_and_none() {
        let mut data = dataset();
        Normalizer::fit(&Normalize::MinMax, &data, &[0, 1])
            .unwrap()
            .apply(&mut data)
            .unwrap();
        assert_eq!(data.features, vec![0.0, 0.0, 1.0, 0.0, 49.5, 4.0]);
        let mut data = dataset();
        Normalizer::fit(&Normalize::Scale { factor: 0.5 }, &data, &[])
            .unwrap()
            .apply(&mut data)
            .unwrap();
        assert_eq!(data.features[4], 50.0);
        let none = Normalizer::fit(&Normalize::None, &data, &[]).unwrap();
        assert!(none.is_identity());
    }

    #[test]
    fn errors() {
        let data = dataset();
        assert!(Normalizer::fit(&Normalize::Standardize, &data, &[]).is_err());
        assert!(Normalizer::fit(&Normalize::Standardize, &data, &[7]).is_err());
        assert!(Normalizer::fit(&Normalize::Scale { factor: f32::NAN }, &data, &[]).is_err());
        let mut wider = Dataset::classification(vec![0.0; 3], vec![3], vec![0], 1).unwrap();
        let fitted = Normalizer::fit(&Normalize::Standardize, &data, &[0]).unwrap();
        assert!(fitted.apply(&mut wider).is_err());
    }
}
