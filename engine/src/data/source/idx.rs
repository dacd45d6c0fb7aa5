//! IDX files (`.idx`, or gzip-compressed `.idx.gz`), the format MNIST ships in.
//!
//! Layout: two zero bytes, a type code (0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32,
//! 0x0E f64), a dimension count, then one big-endian u32 per dimension, then the
//! big-endian values in C order. MNIST images are magic 0x00000803 (`[n, 28, 28]` u8),
//! its labels 0x00000801 (`[n]` u8).

use std::path::{Path, PathBuf};

use super::arrays::{ArrayFile, pair_to_dataset};
use super::elements::{ByteOrder, Element};
use crate::data::dataset::{Dataset, Task};
use crate::data::error::DataError;
use crate::data::read::read_bytes;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Configure, Loader, Source, SourceRule};
use crate::check::{ProbeCx, ProbeFailure, SourceInfo};
use crate::spec::Bounds;

const EXPECTED_MAGIC: &str = "0x0000TTDD with TT a type code (08 u8, 09 i8, 0B i16, 0C i32, \
     0D f32, 0E f64) and DD the number of dimensions, e.g. 0x00000803 for MNIST images";

/// An IDX dataset: a features file (`[n, ...shape]`) and a labels file (`[n]`).
///
/// ```ignore
/// let mnist = IdxSource::new("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz");
/// let dataset = mnist.load()?; // shape [28, 28], classes inferred
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct IdxSource {
    /// The features file (e.g. MNIST's `train-images-idx3-ubyte[.gz]`).
    pub features: PathBuf,
    /// The labels file (e.g. `train-labels-idx1-ubyte[.gz]`).
    pub labels: PathBuf,
    /// Class ids (the usual) or regression targets.
    pub task: Task,
}

impl IdxSource {
    /// A classification source with the number of classes inferred.
    pub fn new(features: impl Into<PathBuf>, labels: impl Into<PathBuf>) -> IdxSource {
        IdxSource {
            features: features.into(),
            labels: labels.into(),
            task: Task::Classify { classes: None },
        }
    }

    /// Reads both files (gzip detected from the bytes) and decodes them in parallel.
    pub fn load(&self) -> Result<Dataset, DataError> {
        let (features, labels) =
            rayon::join(|| read_bytes(&self.features), || read_bytes(&self.labels));
        let (features, labels) = (features?, labels?);
        pair_to_dataset(
            parse_header(&self.features, &features)?,
            parse_header(&self.labels, &labels)?,
            &self.task,
        )
    }
}

/// The dimensions of an IDX file, reading only its header (`engine validate`'s probe).
pub(crate) fn read_shape(file: &Path, reader: impl std::io::Read) -> Result<Vec<usize>, DataError> {
    super::arrays::read_dims(
        file,
        reader,
        4,
        |magic| match magic {
            [_, _, _, ndims] => 4 + 4 * u64::from(*ndims),
            _ => magic.len() as u64,
        },
        parse_header,
    )
}

/// Reads the magic number and dimensions; the values are checked and decoded later.
pub(crate) fn parse_header<'a>(
    file: &'a Path,
    bytes: &'a [u8],
) -> Result<ArrayFile<'a>, DataError> {
    let Some(magic) = bytes.first_chunk::<4>() else {
        return Err(DataError::Truncated {
            file: file.to_path_buf(),
            expected: 4,
            found: bytes.len() as u64,
        });
    };
    let element = match magic[2] {
        0x08 => Some(Element::U8),
        0x09 => Some(Element::I8),
        0x0B => Some(Element::I16),
        0x0C => Some(Element::I32),
        0x0D => Some(Element::F32),
        0x0E => Some(Element::F64),
        _ => None,
    };
    let ndims = usize::from(magic[3]);
    let (Some(element), [0, 0, ..], 1..) = (element, magic, ndims) else {
        return Err(DataError::WrongMagic {
            file: file.to_path_buf(),
            expected: EXPECTED_MAGIC.to_string(),
            found: match magic {
                [a, b, 0, 0] if *a != 0 || *b != 0 => format!(
                    "0x{:08X} (the bytes of 0x{:08X} reversed? IDX is big-endian)",
                    u32::from_be_bytes(*magic),
                    u32::from_le_bytes(*magic)
                ),
                _ => format!("0x{:08X}", u32::from_be_bytes(*magic)),
            },
        });
    };
    let header_len = 4 + 4 * ndims;
    let Some(dims_bytes) = bytes.get(4..header_len) else {
        return Err(DataError::BadHeader {
            file: file.to_path_buf(),
            detail: format!(
                "the file ends inside its header: {ndims} dimensions need {header_len} bytes, the file has {}",
                bytes.len()
            ),
        });
    };
    let (words, _) = dims_bytes.as_chunks::<4>();
    let dims = words
        .iter()
        .map(|word| u32::from_be_bytes(*word) as usize)
        .collect();
    Ok(ArrayFile {
        file,
        dims,
        element,
        order: ByteOrder::Big,
        data: &bytes[header_len..],
    })
}

/// An IDX image/label pair's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdxSpec {
    /// Images file (`[n, rows, cols]` of u8), `.idx` or `.idx.gz`.
    pub images: String,
    /// Labels file (`[n]` of u8), `.idx` or `.idx.gz`.
    pub labels: String,
    /// Number of classes.
    #[serde(default = "ten")]
    pub classes: usize,
}

fn ten() -> usize {
    10
}

/// IDX files.
pub struct Idx;

impl SourceRule for Idx {
    type Spec = IdxSpec;
    const NAME: &'static str = "idx";
    const DESCRIPTION: &'static str =
        "The IDX format MNIST ships in (`.idx` or `.idx.gz`): an images file and a labels file.";

    #[rustfmt::skip]
    fn check(idx: &IdxSpec, r: &mut Bounds) {
        r.rule("classes", idx.classes >= 2, ">= 2", idx.classes, "classification needs at least two classes");
    }

    fn probe(idx: &IdxSpec, cx: &mut ProbeCx) -> Result<SourceInfo, ProbeFailure> {
        let images = cx.read_header("images", &idx.images, read_shape)?;
        let labels = cx.read_header("labels", &idx.labels, read_shape)?;
        if images.first() != labels.first() || images.len() < 2 {
            return Err(ProbeFailure::at(
                "labels",
                format!(
                    "the images file holds {} samples but the labels file {}",
                    images.first().unwrap_or(&0),
                    labels.first().unwrap_or(&0)
                ),
            ));
        }
        let mut shape = vec![1];
        shape.extend_from_slice(&images[1..]);
        Ok(SourceInfo::classes(images[0], shape, idx.classes))
    }

    fn configure(i: &IdxSpec, cx: &Configure) -> Source {
        let mut idx = IdxSource::new(cx.base_dir.join(&i.images), cx.base_dir.join(&i.labels));
        idx.task = Task::Classify {
            classes: Some(i.classes),
        };
        Source::new(idx)
    }
}

impl Loader for IdxSource {
    fn name(&self) -> &'static str {
        Idx::NAME
    }

    fn load(&self) -> Result<Dataset, DataError> {
        IdxSource::load(self)
    }

    fn describe(&self) -> String {
        format!(
            "idx {} + {}",
            self.features.display(),
            self.labels.display()
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Bytes of an idx file of u8 values.
    pub(crate) fn idx_u8(dims: &[u32], values: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
        for d in dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(values);
        bytes
    }

    fn load(features: &[u8], labels: &[u8]) -> Result<Dataset, DataError> {
        pair_to_dataset(
            parse_header(Path::new("images.idx"), features)?,
            parse_header(Path::new("labels.idx"), labels)?,
            &Task::Classify { classes: None },
        )
    }

    #[test]
    fn decodes_images_and_labels() {
        let images = idx_u8(&[3, 2, 2], &(0..12).collect::<Vec<u8>>());
        let labels = idx_u8(&[3], &[1, 0, 2]);
        let data = load(&images, &labels).unwrap();
        assert_eq!(data.shape, vec![2, 2]);
        assert_eq!(data.len(), 3);
        assert_eq!(data.sample(2), [8.0, 9.0, 10.0, 11.0]);
        assert_eq!(data.labels, vec![1, 0, 2]);
        assert_eq!(data.classes, 3);
    }

    #[test]
    fn float_images_big_endian() {
        let mut images = vec![0, 0, 0x0D, 2, 0, 0, 0, 1, 0, 0, 0, 2];
        images.extend_from_slice(&1.5f32.to_be_bytes());
        images.extend_from_slice(&(-2.0f32).to_be_bytes());
        let data = load(&images, &idx_u8(&[1], &[0])).unwrap();
        assert_eq!(data.features, vec![1.5, -2.0]);
    }

    #[test]
    fn broken_files_are_named() {
        let images = idx_u8(&[3, 2, 2], &(0..12).collect::<Vec<u8>>());
        let labels = idx_u8(&[3], &[1, 0, 2]);
        let cases: Vec<(Vec<u8>, Vec<u8>, &str)> = vec![
            (
                images[..20].to_vec(),
                labels.clone(),
                "images.idx: the file is truncated: its header promises 12 bytes of data, found 4",
            ),
            (
                images.clone(),
                labels[..9].to_vec(),
                "labels.idx: the file is truncated",
            ),
            (
                images[..6].to_vec(),
                labels.clone(),
                "images.idx: bad header: the file ends inside its header",
            ),
            (
                vec![0x50, 0x4b, 3, 4, 0],
                labels.clone(),
                "images.idx: wrong magic number 0x504B0304: expected 0x0000TTDD",
            ),
            (
                vec![0, 0, 0x07, 1, 0],
                labels.clone(),
                "wrong magic number 0x00000701:",
            ),
            (
                vec![0, 0],
                labels.clone(),
                "images.idx: the file is truncated",
            ),
            (
                images.clone(),
                idx_u8(&[2], &[1, 0]),
                "labels.idx: it holds 2 labels but the features file holds 3 samples (compared with images.idx)",
            ),
            (
                [images.clone(), vec![1]].concat(),
                labels.clone(),
                "images.idx: 1 bytes follow",
            ),
            (
                idx_u8(&[0, 2], &[]),
                idx_u8(&[0], &[]),
                "images.idx: the file is empty",
            ),
        ];
        for (features, labels, expected) in cases {
            let error = load(&features, &labels).unwrap_err().to_string();
            assert!(error.contains(expected), "expected {expected:?} in {error}");
        }
    }

    #[test]
    fn huge_dimensions_do_not_allocate() {
        let images = idx_u8(&[u32::MAX, u32::MAX, u32::MAX], &[1, 2, 3]);
        let error = load(&images, &idx_u8(&[1], &[0])).unwrap_err().to_string();
        assert!(error.contains("images.idx"), "{error}");
    }
}
