//! Turning a features array file and a labels array file (idx, npy) into a dataset.

use std::path::Path;

use rayon::prelude::*;

use super::elements::{ByteOrder, Element};
use crate::data::dataset::{Dataset, Task, assemble, resolve_labels};
use crate::data::error::DataError;
use crate::data::read::empty;

/// A binary array file whose header has been read: dimensions (first = samples),
/// element type, byte order, and the bytes after the header.
pub(crate) struct ArrayFile<'a> {
    pub(crate) file: &'a Path,
    pub(crate) dims: Vec<usize>,
    pub(crate) element: Element,
    pub(crate) order: ByteOrder,
    pub(crate) data: &'a [u8],
}

impl ArrayFile<'_> {
    /// Checks that the data holds exactly the bytes the header promises and that the
    /// array has at least one sample of at least one value.
    fn check(&self) -> Result<(), DataError> {
        let file = self.file.to_path_buf();
        let found = self.data.len() as u64;
        let expected = self
            .dims
            .iter()
            .try_fold(self.element.size() as u64, |acc, &d| acc.checked_mul(d as u64));
        let Some(expected) = expected else {
            return Err(DataError::BadHeader {
                file,
                detail: format!("the dimensions {:?} are too large", self.dims),
            });
        };
        if found < expected {
            return Err(DataError::Truncated {
                file,
                expected,
                found,
            });
        }
        if found > expected {
            return Err(DataError::TrailingBytes {
                file,
                expected,
                extra: found - expected,
            });
        }
        match self.dims.first() {
            None | Some(0) => Err(empty(self.file, "its header says it holds 0 samples")),
            Some(_) if self.dims[1..].contains(&0) => Err(DataError::BadHeader {
                file,
                detail: format!("dimensions {:?} give samples with no values", self.dims),
            }),
            Some(_) => Ok(()),
        }
    }

    fn samples(&self) -> usize {
        self.dims.first().copied().unwrap_or(0)
    }

    /// Values per sample.
    fn width(&self) -> usize {
        self.dims[1..].iter().product()
    }
}

/// Checks both files, decodes them in parallel and checks the labels against `task`.
pub(crate) fn pair_to_dataset(
    features: ArrayFile<'_>,
    labels: ArrayFile<'_>,
    task: &Task,
) -> Result<Dataset, DataError> {
    features.check()?;
    labels.check()?;
    if features.samples() != labels.samples() {
        return Err(DataError::Mismatch {
            file: labels.file.to_path_buf(),
            other: features.file.to_path_buf(),
            detail: format!(
                "it holds {} labels but the features file holds {} samples",
                labels.samples(),
                features.samples()
            ),
        });
    }
    let shape = match &features.dims[1..] {
        [] => vec![1],
        rest => rest.to_vec(),
    };
    let width = features.width();
    let (values, label_values) = rayon::join(
        || features.element.decode_f32(features.data, features.order),
        || labels.element.decode_f64(labels.data, labels.order),
    );
    if let Some(position) = values.par_iter().position_first(|v| !v.is_finite()) {
        return Err(DataError::NotANumber {
            file: features.file.to_path_buf(),
            row: position / width + 1,
            column: position % width + 1,
            cell: values[position].to_string(),
            hint: " (rows are samples, columns are flat positions within a sample)",
        });
    }
    let resolved = resolve_labels(labels.file, &label_values, labels.width(), task, |i| {
        (i + 1, None)
    })?;
    Ok(assemble(values, shape, resolved))
}
