//! Turning a features array file and a labels array file (idx, npy) into a dataset.

use std::io::Read;
use std::path::Path;

use rayon::prelude::*;

use super::elements::{ByteOrder, Element};
use crate::data::dataset::{Dataset, Task, assemble, resolve_labels};
use crate::data::error::DataError;
use crate::data::read::empty;

/// The dimensions of an array file, reading no more than its header: `prefix` bytes tell
/// `header_len` how long the whole header is, and the format's own `parse` reads it (the
/// same parser the loader uses, so the check and the load agree on every file).
pub(crate) fn read_dims(
    file: &Path,
    reader: impl std::io::Read,
    prefix: u64,
    header_len: fn(&[u8]) -> u64,
    parse: for<'a> fn(&'a Path, &'a [u8]) -> Result<ArrayFile<'a>, DataError>,
) -> Result<Vec<usize>, DataError> {
    let io = |source: std::io::Error| DataError::Io {
        file: file.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    let mut reader = reader.take(prefix);
    reader.read_to_end(&mut bytes).map_err(io)?;
    let mut reader = reader.into_inner();
    let rest = header_len(&bytes).saturating_sub(bytes.len() as u64);
    // `take` reads what the file holds, so a header length read from a broken file
    // allocates no more than the file's own size.
    (&mut reader)
        .take(rest)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    Ok(parse(file, &bytes)?.dims)
}

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
            .try_fold(self.element.size() as u64, |acc, &d| {
                acc.checked_mul(d as u64)
            });
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
            Some(_) if self.sample_dims().contains(&0) => Err(DataError::BadHeader {
                file,
                detail: format!("dimensions {:?} give samples with no values", self.dims),
            }),
            Some(_) => Ok(()),
        }
    }

    fn samples(&self) -> usize {
        self.dims.first().copied().unwrap_or(0)
    }

    /// The dimensions of one sample (empty for a 1-D array).
    fn sample_dims(&self) -> &[usize] {
        self.dims.get(1..).unwrap_or(&[])
    }

    /// Values per sample (`check` has ruled out overflow).
    fn width(&self) -> usize {
        self.sample_dims().iter().product()
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
    let shape = match features.sample_dims() {
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
    let resolved = resolve_labels(labels.file, &label_values, labels.width(), task, |i, _| {
        (i + 1, None)
    })?;
    Ok(assemble(values, shape, resolved))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::rng::{Rng, Stream};
    use crate::data::source::{idx, npy};

    /// Flips, truncates and extends valid files at random: every result must be a
    /// dataset or an error naming one of the files, never a panic.
    #[test]
    fn corrupted_files_never_panic() {
        let images = idx::tests::idx_u8(&[4, 2, 3], &(0..24).collect::<Vec<u8>>());
        let labels = idx::tests::idx_u8(&[4], &[0, 1, 2, 1]);
        let x = npy::tests::npy("<f4", &[4, 6], &[0x3f; 96]);
        let y = npy::tests::npy("<i8", &[4], &[0; 32]);
        let (fx, fy) = (Path::new("x.bin"), Path::new("y.bin"));
        let mut rng = Rng::new(0, Stream::Split, 99);
        for round in 0..4000 {
            let (mut a, mut b) = if round % 2 == 0 {
                (images.clone(), labels.clone())
            } else {
                (x.clone(), y.clone())
            };
            let target = if rng.below(2) == 0 { &mut a } else { &mut b };
            match rng.below(3) {
                0 => {
                    let at = rng.below(target.len());
                    target[at] = rng.next_u64() as u8;
                }
                1 => target.truncate(rng.below(target.len())),
                _ => target.extend_from_slice(&rng.next_u64().to_le_bytes()),
            }
            let parse = if round % 2 == 0 {
                idx::parse_header
            } else {
                npy::parse_header
            };
            let task = Task::Classify { classes: None };
            let result = parse(fx, &a).and_then(|f| pair_to_dataset(f, parse(fy, &b)?, &task));
            if let Err(error) = result {
                let text = error.to_string();
                assert!(
                    text.contains("x.bin") || text.contains("y.bin") || text.contains("classes"),
                    "{text}"
                );
            }
        }
    }
}
