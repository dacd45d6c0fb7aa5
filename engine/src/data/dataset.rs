//! The in-memory dataset every source produces and every later stage reads.

use std::path::Path;

use super::error::DataError;

/// What a source's label values mean.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// Integer class ids in `0..classes`. With `classes: None` the number of classes is
    /// inferred as the largest label + 1 (set it explicitly when a split may lack the
    /// highest class).
    Classify { classes: Option<usize> },
    /// Real-valued regression targets, one or more per sample.
    Regress,
}

/// Samples held in memory, row-major.
///
/// Invariants (kept by every source and by [`Dataset::classification`] /
/// [`Dataset::regression`]): `shape` is non-empty with a product ≥ 1;
/// `features.len() == len() * sample_len()`; for classification `labels.len() == len()`,
/// `classes ≥ 1`, every label `< classes` and `targets` is `None`; for regression
/// `labels` is empty, `classes == 0` and `targets` holds `len() * target_width` values.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Row-major `[len(), ...shape]` values.
    pub features: Vec<f32>,
    /// The shape of one sample, e.g. `[64]` for a CSV row or `[28, 28]` for MNIST.
    pub shape: Vec<usize>,
    /// One class id per sample (empty for regression).
    pub labels: Vec<u32>,
    /// Number of classes (0 for regression).
    pub classes: usize,
    /// Row-major `[len(), target_width]` regression targets, or `None` for classification.
    pub targets: Option<Vec<f32>>,
    /// Targets per sample (0 for classification).
    pub target_width: usize,
}

impl Dataset {
    /// A classification dataset; checks the invariants (a mismatch is a
    /// [`DataError::Config`] describing it).
    pub fn classification(
        features: Vec<f32>,
        shape: Vec<usize>,
        labels: Vec<u32>,
        classes: usize,
    ) -> Result<Dataset, DataError> {
        let dataset = Dataset {
            features,
            shape,
            labels,
            classes,
            targets: None,
            target_width: 0,
        };
        dataset.check().map_err(DataError::Config)?;
        Ok(dataset)
    }

    /// A regression dataset with `target_width` targets per sample; checks the invariants.
    pub fn regression(
        features: Vec<f32>,
        shape: Vec<usize>,
        targets: Vec<f32>,
        target_width: usize,
    ) -> Result<Dataset, DataError> {
        let dataset = Dataset {
            features,
            shape,
            labels: Vec::new(),
            classes: 0,
            targets: Some(targets),
            target_width,
        };
        dataset.check().map_err(DataError::Config)?;
        Ok(dataset)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.features.len() / self.sample_len().max(1)
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of `f32` values in one sample (the product of `shape`; 0 if it overflows).
    pub fn sample_len(&self) -> usize {
        shape_len(&self.shape).unwrap_or(0)
    }

    /// The features of sample `index` (panics if `index >= len()`, like slice indexing).
    pub fn sample(&self, index: usize) -> &[f32] {
        let width = self.sample_len();
        &self.features[index * width..(index + 1) * width]
    }

    /// How many samples each class has (`classes` entries; empty for regression).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &label in &self.labels {
            if let Some(count) = counts.get_mut(label as usize) {
                *count += 1;
            }
        }
        counts
    }

    /// Checks the invariants listed on the type; the error says which one fails.
    pub(crate) fn check(&self) -> Result<(), String> {
        let width = self.sample_len();
        if self.shape.is_empty() || width == 0 {
            return Err(format!(
                "a sample shape must be non-empty with no zero dimension, found {:?}",
                self.shape
            ));
        }
        if !self.features.len().is_multiple_of(width) {
            return Err(format!(
                "{} feature values do not divide into samples of shape {:?}",
                self.features.len(),
                self.shape
            ));
        }
        let rows = self.len();
        if rows > u32::MAX as usize {
            return Err(format!(
                "{rows} samples are more than the 2^32 - 1 supported"
            ));
        }
        match &self.targets {
            None => {
                if self.classes == 0 {
                    return Err("a classification dataset needs at least 1 class".into());
                }
                if self.labels.len() != rows {
                    return Err(format!("{} labels for {rows} samples", self.labels.len()));
                }
                if let Some(position) = self.labels.iter().position(|&l| l as usize >= self.classes)
                {
                    return Err(format!(
                        "sample {} has label {} but there are {} classes",
                        position + 1,
                        self.labels[position],
                        self.classes
                    ));
                }
            }
            Some(targets) => {
                if !self.labels.is_empty() || self.classes != 0 {
                    return Err("a regression dataset has no labels or classes".into());
                }
                if self.target_width == 0 || targets.len() != rows * self.target_width {
                    return Err(format!(
                        "{} targets for {rows} samples of {} targets each",
                        targets.len(),
                        self.target_width
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The product of a shape's dimensions, or `None` if it overflows `usize`.
pub(crate) fn shape_len(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Label values as read from a file, before they are checked against the task.
pub(crate) enum LabelValues {
    Classes { labels: Vec<u32>, classes: usize },
    Targets { values: Vec<f32>, width: usize },
}

/// Checks raw label values (`width` per sample) against `task`. `locate` turns a
/// 0-based sample index and the 0-based index of the value within the sample into the
/// 1-based row and column reported to the user. The first bad label in file order is
/// the one reported.
pub(crate) fn resolve_labels(
    file: &Path,
    values: &[f64],
    width: usize,
    task: &Task,
    locate: impl Fn(usize, usize) -> (usize, Option<usize>),
) -> Result<LabelValues, DataError> {
    match task {
        Task::Regress => {
            if let Some(position) = values.iter().position(|v| !v.is_finite()) {
                let within = position % width.max(1);
                let (row, column) = locate(position / width.max(1), within);
                return Err(DataError::NotANumber {
                    file: file.to_path_buf(),
                    row,
                    column: column.unwrap_or(within + 1),
                    cell: values[position].to_string(),
                    hint: "",
                });
            }
            Ok(LabelValues::Targets {
                values: values.iter().map(|&v| v as f32).collect(),
                width,
            })
        }
        Task::Classify { classes } => {
            if *classes == Some(0) {
                return Err(DataError::Config("classes must be at least 1".into()));
            }
            if width != 1 {
                return Err(DataError::BadHeader {
                    file: file.to_path_buf(),
                    detail: format!(
                        "classification needs one label per sample, found {width} values per sample"
                    ),
                });
            }
            let limit = classes.unwrap_or(u32::MAX as usize);
            let mut labels = Vec::with_capacity(values.len());
            for (index, &value) in values.iter().enumerate() {
                let valid = value >= 0.0 && value.fract() == 0.0 && value < limit as f64;
                if !valid {
                    let (row, column) = locate(index, 0);
                    return Err(DataError::BadLabel {
                        file: file.to_path_buf(),
                        row,
                        column,
                        label: value.to_string(),
                        expected: expected_label(*classes),
                    });
                }
                labels.push(value as u32);
            }
            let classes = match classes {
                Some(classes) => *classes,
                None => labels.iter().max().map_or(1, |&max| max as usize + 1),
            };
            Ok(LabelValues::Classes { labels, classes })
        }
    }
}

fn expected_label(classes: Option<usize>) -> String {
    match classes {
        Some(classes) => format!("an integer in 0..{classes} (the configured number of classes)"),
        None => "a non-negative integer (the number of classes is inferred from the largest label)"
            .to_string(),
    }
}

/// Builds a dataset from checked features and labels.
pub(crate) fn assemble(features: Vec<f32>, shape: Vec<usize>, labels: LabelValues) -> Dataset {
    match labels {
        LabelValues::Classes { labels, classes } => Dataset {
            features,
            shape,
            labels,
            classes,
            targets: None,
            target_width: 0,
        },
        LabelValues::Targets { values, width } => Dataset {
            features,
            shape,
            labels: Vec::new(),
            classes: 0,
            targets: Some(values),
            target_width: width,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_checks_labels_and_shapes() {
        let ok = Dataset::classification(vec![0.0; 6], vec![3], vec![0, 1], 2).unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok.sample(1).len(), 3);
        assert_eq!(ok.class_counts(), vec![1, 1]);
        assert!(Dataset::classification(vec![0.0; 6], vec![3], vec![0, 2], 2).is_err());
        assert!(Dataset::classification(vec![0.0; 5], vec![3], vec![0, 1], 2).is_err());
        assert!(Dataset::classification(vec![0.0; 6], vec![0], vec![0, 1], 2).is_err());
        assert!(Dataset::classification(vec![0.0; 6], vec![usize::MAX, 3], vec![0], 2).is_err());
        assert!(Dataset::regression(vec![0.0; 6], vec![3], vec![1.0, 2.0], 1).is_ok());
        assert!(Dataset::regression(vec![0.0; 6], vec![3], vec![1.0], 1).is_err());
    }

    #[test]
    fn labels_are_checked_in_file_order() {
        let file = Path::new("labels.bin");
        let task = Task::Classify { classes: Some(3) };
        let locate = |i: usize, _| (i + 1, None);
        let error = resolve_labels(file, &[0.0, 3.0, -1.0], 1, &task, locate)
            .err()
            .unwrap();
        let text = error.to_string();
        assert!(text.contains("labels.bin: row 2: label 3"), "{text}");
        let error = resolve_labels(file, &[0.5], 1, &task, locate)
            .err()
            .unwrap();
        assert!(error.to_string().contains("label 0.5"), "{error}");
        let inferred = Task::Classify { classes: None };
        match resolve_labels(file, &[0.0, 4.0], 1, &inferred, locate).unwrap() {
            LabelValues::Classes { classes, .. } => assert_eq!(classes, 5),
            LabelValues::Targets { .. } => panic!("expected classes"),
        }
    }
}
