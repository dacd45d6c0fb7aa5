//! The data stages' entry point: load, split, normalise, ready to batch.

use std::sync::Arc;

use rayon::prelude::*;

use super::dataset::Dataset;
use super::error::DataError;
use super::normalize::{Normalize, Normalizer};
use super::source::Source;
use super::split::{Fractions, Split, split_indices};

/// Where the train, val and test samples come from.
// Built once per data set and never moved on a hot path: boxing the sources would only
// make the configuration harder to write.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum SplitBy {
    /// Each split from its own source (e.g. MNIST's train and t10k files).
    Files {
        train: Source,
        val: Option<Source>,
        test: Option<Source>,
    },
    /// One source divided by seeded fractions.
    Fractions {
        source: Source,
        fractions: Fractions,
    },
}

/// Everything the data stages need before batching.
#[derive(Debug, Clone, PartialEq)]
pub struct DataConfig {
    /// The sources and how they become splits.
    pub split: SplitBy,
    /// Normalisation, fitted on the train split and applied to all.
    pub normalize: Normalize,
    /// Features holding integer ids (for an embedding): checked, left unnormalised.
    pub ids: Option<IdFeatures>,
    /// Normalisation of regression targets, fitted on the train split (`None` for
    /// classification).
    pub normalize_targets: Normalize,
}

/// Features `range` of every sample hold whole numbers in `0..count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdFeatures {
    /// Positions among a sample's flattened features.
    pub range: std::ops::Range<usize>,
    /// Ids lie in `0..count`.
    pub count: usize,
}

impl IdFeatures {
    /// Errors, naming the 1-based sample and feature, at the first value that is not an id.
    fn check(&self, dataset: &Dataset, source: &Source) -> Result<(), DataError> {
        let width = dataset.sample_len();
        if self.range.start > self.range.end || self.range.end > width {
            return Err(DataError::Config(format!(
                "{}: id features {}..{} lie past the {width} features of a sample",
                source.describe(),
                self.range.start,
                self.range.end
            )));
        }
        let bad = dataset
            .features
            .par_chunks(width.max(1))
            .enumerate()
            .find_first(|(_, sample)| {
                sample[self.range.clone()]
                    .iter()
                    .any(|&v| v.fract() != 0.0 || v < 0.0 || v >= self.count as f32)
            });
        match bad {
            None => Ok(()),
            Some((row, sample)) => {
                let (j, value) = self
                    .range
                    .clone()
                    .map(|j| (j, sample[j]))
                    .find(|&(_, v)| v.fract() != 0.0 || v < 0.0 || v >= self.count as f32)
                    .unwrap_or((self.range.start, f32::NAN));
                Err(DataError::Config(format!(
                    "{}: sample {} (counted from 1), id feature {j} (counted from 0, as `ids` counts): expected an id (a whole number in 0..{}), found {value} (hint: raise `ids.count`, or map the values to 0..count-1 first)",
                    source.describe(),
                    row + 1,
                    self.count
                )))
            }
        }
    }
}

/// Loaded, split and normalised data. Batch a split with
/// [`BatchIter::new`](super::BatchIter::new)`(prepared.train.clone(), ..)`.
#[derive(Debug, Clone)]
pub struct PreparedData {
    /// The training samples.
    pub train: Split,
    /// Validation samples, when configured (a non-zero fraction or a file).
    pub val: Option<Split>,
    /// Test samples, when configured.
    pub test: Option<Split>,
    /// The fitted normalisation (to store with a checkpoint or apply at inference).
    pub normalizer: Normalizer,
    /// The fitted target scaling of a regression data set (identity otherwise): the
    /// model learns scaled targets; [`Normalizer::invert`] maps its outputs back.
    pub target_normalizer: Normalizer,
}

impl PreparedData {
    /// One split by name, when the data set has it (train always).
    pub fn split(&self, name: crate::spec::SplitName) -> Option<Split> {
        use crate::spec::SplitName;
        match name {
            SplitName::Train => Some(self.train.clone()),
            SplitName::Val => self.val.clone(),
            SplitName::Test => self.test.clone(),
        }
    }
}

/// Loads the sources, splits them, fits the normalisation on the train split and
/// applies it to every split.
///
/// ```ignore
/// let data = prepare(&DataConfig {
///     split: SplitBy::Fractions {
///         source: Source::new(CsvSource::new("pipelines/data/digits.csv.gz")),
///         fractions: Fractions { train: 0.8, val: 0.0, test: 0.2, stratified: true, seed: 0 },
///     },
///     normalize: Normalize::Standardize,
///     ids: None,
///     normalize_targets: Normalize::None,
/// })?;
/// ```
pub fn prepare(config: &DataConfig) -> Result<PreparedData, DataError> {
    match &config.split {
        SplitBy::Fractions { source, fractions } => {
            let mut dataset = source.load()?;
            if let Some(ids) = &config.ids {
                ids.check(&dataset, source)?;
            }
            let rows = split_indices(&dataset, fractions)?;
            let normalizer =
                config.leave_ids(Normalizer::fit(&config.normalize, &dataset, &rows.train)?);
            normalizer.apply(&mut dataset)?;
            let target_normalizer =
                Normalizer::fit_targets(&config.normalize_targets, &dataset, &rows.train)?;
            target_normalizer.apply_targets(&mut dataset)?;
            let dataset = Arc::new(dataset);
            let split = |fraction: f64, indices: Vec<u32>| {
                (fraction > 0.0)
                    .then(|| Split::new(dataset.clone(), indices))
                    .transpose()
            };
            Ok(PreparedData {
                train: Split::new(dataset.clone(), rows.train)?,
                val: split(fractions.val, rows.val)?,
                test: split(fractions.test, rows.test)?,
                normalizer,
                target_normalizer,
            })
        }
        SplitBy::Files { train, val, test } => {
            let load = |source: &Option<Source>| source.as_ref().map(Source::load).transpose();
            let (train_data, (val_data, test_data)) =
                rayon::join(|| train.load(), || rayon::join(|| load(val), || load(test)));
            let mut train_data = train_data?;
            let (mut val_data, mut test_data) = (val_data?, test_data?);
            let classes = [Some(&train_data), val_data.as_ref(), test_data.as_ref()]
                .into_iter()
                .flatten()
                .map(|d| d.classes)
                .max()
                .unwrap_or(train_data.classes);
            for (name, data, source) in
                [("val", &mut val_data, val), ("test", &mut test_data, test)]
            {
                if let (Some(data), Some(source)) = (data.as_mut(), source.as_ref()) {
                    check_compatible(&train_data, train, data, source, name)?;
                    data.classes = classes;
                }
            }
            train_data.classes = classes;
            if let Some(ids) = &config.ids {
                ids.check(&train_data, train)?;
                for (data, source) in [(&val_data, val), (&test_data, test)] {
                    if let (Some(data), Some(source)) = (data, source) {
                        ids.check(data, source)?;
                    }
                }
            }
            let all_rows: Vec<u32> = (0..train_data.len() as u32).collect();
            let normalizer =
                config.leave_ids(Normalizer::fit(&config.normalize, &train_data, &all_rows)?);
            let target_normalizer =
                Normalizer::fit_targets(&config.normalize_targets, &train_data, &all_rows)?;
            let finish = |data: Option<Dataset>| -> Result<Option<Split>, DataError> {
                let Some(mut data) = data else {
                    return Ok(None);
                };
                normalizer.apply(&mut data)?;
                target_normalizer.apply_targets(&mut data)?;
                Ok(Some(Split::whole(Arc::new(data))))
            };
            let val = finish(val_data)?;
            let test = finish(test_data)?;
            normalizer.apply(&mut train_data)?;
            target_normalizer.apply_targets(&mut train_data)?;
            Ok(PreparedData {
                train: Split::whole(Arc::new(train_data)),
                val,
                test,
                normalizer,
                target_normalizer,
            })
        }
    }
}

impl DataConfig {
    /// `normalizer` with the id features left as they are.
    fn leave_ids(&self, normalizer: Normalizer) -> Normalizer {
        match &self.ids {
            Some(ids) => normalizer.leaving(ids.range.clone()),
            None => normalizer,
        }
    }
}

/// Splits from separate sources must agree on what a sample and a label are.
fn check_compatible(
    train: &Dataset,
    train_source: &Source,
    other: &Dataset,
    other_source: &Source,
    name: &str,
) -> Result<(), DataError> {
    let problem = if train.shape != other.shape {
        Some(format!(
            "samples of shape {:?}, the train data has {:?}",
            other.shape, train.shape
        ))
    } else if train.targets.is_some() != other.targets.is_some() {
        Some("a different task (classes vs regression targets) than the train data".to_string())
    } else if train.target_width != other.target_width {
        Some(format!(
            "{} targets per sample, the train data has {}",
            other.target_width, train.target_width
        ))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(DataError::Config(format!(
            "the {name} data ({}) has {problem} ({})",
            other_source.describe(),
            train_source.describe()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::source::SyntheticSource;

    fn blobs(samples: usize, shape: Vec<usize>, classes: usize, seed: u64) -> Source {
        Source::new(SyntheticSource {
            samples,
            shape,
            classes,
            seed,
            ..SyntheticSource::default()
        })
    }

    #[test]
    fn fractions_split_and_standardize_on_train() {
        let config = DataConfig {
            split: SplitBy::Fractions {
                source: blobs(100, vec![4], 2, 1),
                fractions: Fractions {
                    train: 0.7,
                    val: 0.1,
                    test: 0.2,
                    stratified: true,
                    seed: 3,
                },
            },
            normalize: Normalize::Standardize,
            ids: None,
            normalize_targets: Normalize::None,
        };
        let data = prepare(&config).unwrap();
        assert_eq!(data.train.len(), 70);
        assert_eq!(data.val.as_ref().map(Split::len), Some(10));
        assert_eq!(data.test.as_ref().map(Split::len), Some(20));
        let dataset = data.train.dataset();
        for j in 0..4 {
            let mean: f64 = data
                .train
                .indices()
                .iter()
                .map(|&i| f64::from(dataset.sample(i as usize)[j]))
                .sum::<f64>()
                / 70.0;
            assert!(mean.abs() < 1e-5, "feature {j} train mean {mean}");
        }
    }

    #[test]
    fn files_unify_classes_and_reject_mismatched_shapes() {
        let config = DataConfig {
            split: SplitBy::Files {
                train: blobs(30, vec![3], 3, 1),
                val: None,
                test: Some(blobs(10, vec![3], 5, 2)),
            },
            normalize: Normalize::None,
            ids: None,
            normalize_targets: Normalize::None,
        };
        let data = prepare(&config).unwrap();
        assert!(data.val.is_none());
        assert_eq!(data.train.dataset().classes, 5);
        let mismatched = DataConfig {
            split: SplitBy::Files {
                train: blobs(30, vec![3], 3, 1),
                val: Some(blobs(10, vec![4], 3, 2)),
                test: None,
            },
            normalize: Normalize::None,
            ids: None,
            normalize_targets: Normalize::None,
        };
        let error = prepare(&mismatched).unwrap_err().to_string();
        assert!(
            error.contains("the val data (synthetic 10 samples"),
            "{error}"
        );
        assert!(error.contains("[4]"), "{error}");
    }
}
