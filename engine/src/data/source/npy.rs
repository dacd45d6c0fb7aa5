//! NumPy `.npy` arrays (format versions 1, 2 and 3), little-endian, C order.
//!
//! Layout: `\x93NUMPY`, major and minor version bytes, the header length (u16 LE in
//! version 1, u32 LE in 2 and 3), a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (200, 64), }`, then the values.

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

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// An npy dataset: a features array `[n, ...shape]` and a labels array `[n]` (or
/// `[n, 1]`; `[n, k]` for regression targets). Supported element types: f32, f64, u8,
/// i8, u16, i16, u32, i32, u64, i64, bool; byte order little or not applicable.
///
/// ```ignore
/// let source = NpySource::new("x_train.npy", "y_train.npy");
/// let dataset = source.load()?;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NpySource {
    /// The features array.
    pub features: PathBuf,
    /// The labels (or targets) array.
    pub labels: PathBuf,
    /// Class ids or regression targets.
    pub task: Task,
}

impl NpySource {
    /// A classification source with the number of classes inferred.
    pub fn new(features: impl Into<PathBuf>, labels: impl Into<PathBuf>) -> NpySource {
        NpySource {
            features: features.into(),
            labels: labels.into(),
            task: Task::Classify { classes: None },
        }
    }

    /// Reads both files (gzip-compressed `.npy.gz` works too) and decodes them in parallel.
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

/// The shape of an npy file, reading only its header (`engine validate`'s probe).
pub(crate) fn read_shape(file: &Path, reader: impl std::io::Read) -> Result<Vec<usize>, DataError> {
    super::arrays::read_dims(file, reader, 12, header_len, parse_header)
}

/// Magic, version, length field and header dict, from the first 12 bytes: the length
/// field is a u16 in version 1 and a u32 in versions 2 and 3.
fn header_len(prefix: &[u8]) -> u64 {
    match (prefix.get(6), prefix.get(8..12)) {
        (Some(1), Some(len)) => 10 + u64::from(u16::from_le_bytes([len[0], len[1]])),
        (Some(2 | 3), Some(len)) => {
            12 + u64::from(u32::from_le_bytes([len[0], len[1], len[2], len[3]]))
        }
        // Not an npy header the parser accepts: it names the problem from these bytes.
        _ => prefix.len() as u64,
    }
}

/// Reads the magic string and the header dict; the values are checked and decoded later.
pub(crate) fn parse_header<'a>(
    file: &'a Path,
    bytes: &'a [u8],
) -> Result<ArrayFile<'a>, DataError> {
    let bad = |detail: String| DataError::BadHeader {
        file: file.to_path_buf(),
        detail,
    };
    if !bytes.starts_with(MAGIC) {
        let shown = &bytes[..bytes.len().min(6)];
        return Err(DataError::WrongMagic {
            file: file.to_path_buf(),
            expected: "93 4e 55 4d 50 59 (\"\\x93NUMPY\", an .npy file as numpy.save writes it)"
                .to_string(),
            found: shown
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" "),
        });
    }
    let (length_bytes, major) = match bytes.get(6) {
        Some(1) => (2, 1),
        Some(major @ (2 | 3)) => (4, *major),
        Some(other) => return Err(bad(format!("unsupported format version {other}"))),
        None => return Err(bad("the file ends inside its header".to_string())),
    };
    let start = 8 + length_bytes;
    let Some(length_field) = bytes.get(8..start) else {
        return Err(bad("the file ends inside its header".to_string()));
    };
    let header_len = length_field
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    let Some(header) = bytes.get(start..start + header_len) else {
        return Err(bad(format!(
            "the file ends inside its header: it promises {header_len} header bytes, the file has {}",
            bytes.len().saturating_sub(start)
        )));
    };
    let header = if major == 3 {
        String::from_utf8_lossy(header)
    } else {
        header
            .iter()
            .map(|&b| char::from(b))
            .collect::<String>()
            .into()
    };
    let descr = quoted_value(&header, "descr").ok_or_else(|| bad(missing_key("descr", &header)))?;
    let (element, order) = dtype(descr).ok_or_else(|| {
        bad(format!(
            "unsupported dtype {descr:?}: expected one of '<f4', '<f8', '|u1', '|i1', '<u2', \
             '<i2', '<u4', '<i4', '<u8', '<i8', '|b1' (little-endian; save with \
             array.astype('<f4') if needed)"
        ))
    })?;
    match word_value(&header, "fortran_order") {
        Some("False") => {}
        Some("True") => {
            return Err(bad(
                "fortran_order is True; save a C-ordered array (numpy.ascontiguousarray)".into(),
            ));
        }
        _ => return Err(bad(missing_key("fortran_order", &header))),
    }
    let dims = shape_value(&header).ok_or_else(|| bad(missing_key("shape", &header)))?;
    if dims.is_empty() {
        return Err(bad(
            "the array is a scalar (shape ()); expected one row per sample".into(),
        ));
    }
    Ok(ArrayFile {
        file,
        dims,
        element,
        order,
        data: &bytes[start + header_len..],
    })
}

fn missing_key(key: &str, header: &str) -> String {
    format!("cannot read {key:?} in the header {:?}", header.trim())
}

/// The text after `'key':`, with surrounding spaces removed.
fn after_key<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    ["'", "\""].iter().find_map(|quote| {
        let pattern = format!("{quote}{key}{quote}");
        let rest = &header[header.find(&pattern)? + pattern.len()..];
        Some(rest.trim_start().strip_prefix(':')?.trim_start())
    })
}

fn quoted_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let rest = after_key(header, key)?;
    let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let rest = &rest[1..];
    Some(&rest[..rest.find(quote)?])
}

fn word_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let rest = after_key(header, key)?;
    let end = rest.find(|c: char| !c.is_ascii_alphanumeric())?;
    Some(&rest[..end])
}

fn shape_value(header: &str) -> Option<Vec<usize>> {
    let rest = after_key(header, "shape")?.strip_prefix('(')?;
    let inside = &rest[..rest.find(')')?];
    inside
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| part.trim_end_matches('L').parse().ok())
        .collect()
}

fn dtype(descr: &str) -> Option<(Element, ByteOrder)> {
    let (order, kind) = descr.split_at_checked(1)?;
    if !matches!(order, "<" | "|" | "=") || (order == "=" && cfg!(target_endian = "big")) {
        return None;
    }
    let element = match kind {
        "f4" => Element::F32,
        "f8" => Element::F64,
        "u1" | "b1" => Element::U8,
        "i1" => Element::I8,
        "u2" => Element::U16,
        "i2" => Element::I16,
        "u4" => Element::U32,
        "i4" => Element::I32,
        "u8" => Element::U64,
        "i8" => Element::I64,
        _ => return None,
    };
    Some((element, ByteOrder::Little))
}

/// An npy features/labels pair's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NpySpec {
    /// Features array `[n, ...shape]` (f32, f64 or u8).
    pub features: String,
    /// Labels array `[n]` (integer).
    pub labels: String,
    /// Number of classes.
    pub classes: usize,
}

/// NumPy arrays.
pub struct Npy;

impl SourceRule for Npy {
    type Spec = NpySpec;
    const NAME: &'static str = "npy";
    const DESCRIPTION: &'static str =
        "NumPy `.npy` arrays: a features array `[n, ...]` and a labels array `[n]`.";

    #[rustfmt::skip]
    fn check(npy: &NpySpec, r: &mut Bounds) {
        r.rule("classes", npy.classes >= 2, ">= 2", npy.classes, "classification needs at least two classes");
    }

    fn probe(npy: &NpySpec, cx: &mut ProbeCx) -> Result<SourceInfo, ProbeFailure> {
        let features = cx.read_header("features", &npy.features, read_shape)?;
        let labels = cx.read_header("labels", &npy.labels, read_shape)?;
        if features.is_empty() || labels.first() != features.first() {
            return Err(ProbeFailure::at(
                "labels",
                format!(
                    "features have shape {features:?} but labels {labels:?}; the first dimensions must agree"
                ),
            ));
        }
        Ok(SourceInfo::classes(
            features[0],
            features[1..].to_vec(),
            npy.classes,
        ))
    }

    fn configure(n: &NpySpec, cx: &Configure) -> Source {
        let mut npy = NpySource::new(cx.base_dir.join(&n.features), cx.base_dir.join(&n.labels));
        npy.task = Task::Classify {
            classes: Some(n.classes),
        };
        Source::new(npy)
    }
}

impl Loader for NpySource {
    fn name(&self) -> &'static str {
        Npy::NAME
    }

    fn load(&self) -> Result<Dataset, DataError> {
        NpySource::load(self)
    }

    fn describe(&self) -> String {
        format!(
            "npy {} + {}",
            self.features.display(),
            self.labels.display()
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Bytes of a version-1 npy file.
    pub(crate) fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
        let shape_text: Vec<String> = shape.iter().map(usize::to_string).collect();
        let mut shape_text = shape_text.join(", ");
        if shape.len() == 1 {
            shape_text.push(',');
        }
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({shape_text}), }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    fn load(features: &[u8], labels: &[u8], task: Task) -> Result<Dataset, DataError> {
        pair_to_dataset(
            parse_header(Path::new("x.npy"), features)?,
            parse_header(Path::new("y.npy"), labels)?,
            &task,
        )
    }

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn reads_f32_features_and_i64_labels() {
        let x = npy("<f4", &[2, 3], &f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.5]));
        let labels: Vec<u8> = [1i64, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let y = npy("<i8", &[2], &labels);
        let data = load(&x, &y, Task::Classify { classes: Some(2) }).unwrap();
        assert_eq!(data.shape, vec![3]);
        assert_eq!(data.sample(1), [4.0, 5.0, 6.5]);
        assert_eq!(data.labels, vec![1, 0]);
    }

    #[test]
    fn reads_u8_images_f64_targets_and_version_2() {
        let x = npy("|u1", &[2, 2, 2], &[0, 1, 2, 3, 4, 5, 6, 255]);
        let targets: Vec<u8> = [0.5f64, -1.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut y = npy("<f8", &[2, 1], &targets);
        // Re-encode as version 2: a u32 header length.
        let header_len = u16::from_le_bytes([y[8], y[9]]) as u32;
        y.splice(6..10, [2, 0].into_iter().chain(header_len.to_le_bytes()));
        let data = load(&x, &y, Task::Regress).unwrap();
        assert_eq!(data.shape, vec![2, 2]);
        assert_eq!(data.sample(1)[3], 255.0);
        assert_eq!(data.targets, Some(vec![0.5, -1.0]));
    }

    /// The validation probe reads versions 1 and 2 (whose length field is a u32), stops
    /// after the header (the data may be cut off), and names a broken header as the
    /// loader does.
    #[test]
    fn the_header_probe_reads_versions_1_and_2_and_stops_after_the_header() {
        let v1 = npy("<f4", &[3, 2, 5], &f32_bytes(&[0.0; 30]));
        let mut v2 = v1.clone();
        let header_len = u16::from_le_bytes([v2[8], v2[9]]) as u32;
        v2.splice(6..10, [2, 0].into_iter().chain(header_len.to_le_bytes()));
        let file = Path::new("x.npy");
        for bytes in [&v1, &v2] {
            let header_end = bytes.len() - 30 * 4;
            let cut = &bytes[..header_end + 3];
            assert_eq!(read_shape(file, cut).unwrap(), vec![3, 2, 5]);
        }
        let err = read_shape(file, &v2[..20]).unwrap_err().to_string();
        assert!(err.contains("ends inside its header"), "{err}");
        let err = read_shape(file, &b"PK\x03\x04 not npy"[..])
            .unwrap_err()
            .to_string();
        assert!(err.contains("NUMPY"), "{err}");
    }

    #[test]
    fn broken_files_are_named() {
        let x = npy("<f4", &[2, 2], &f32_bytes(&[1.0, 2.0, 3.0, 4.0]));
        let y = npy("|u1", &[2], &[0, 1]);
        let classify = || Task::Classify { classes: None };
        let cases: Vec<(Vec<u8>, Vec<u8>, &str)> = vec![
            (
                x[..x.len() - 3].to_vec(),
                y.clone(),
                "x.npy: the file is truncated: its header promises 16 bytes of data, found 13",
            ),
            (
                x.clone(),
                y[..y.len() - 1].to_vec(),
                "y.npy: the file is truncated",
            ),
            (
                x[..20].to_vec(),
                y.clone(),
                "x.npy: bad header: the file ends inside its header",
            ),
            (
                b"PK\x03\x04zip".to_vec(),
                y.clone(),
                "x.npy: wrong magic number",
            ),
            (
                npy(">f4", &[2, 2], &[0; 16]),
                y.clone(),
                "unsupported dtype \">f4\"",
            ),
            (
                npy("<c8", &[2, 2], &[0; 16]),
                y.clone(),
                "unsupported dtype",
            ),
            (
                x.clone(),
                npy("|u1", &[3], &[0, 1, 1]),
                "y.npy: it holds 3 labels but the features file holds 2 samples",
            ),
            (
                npy("<f4", &[2, 2], &f32_bytes(&[1.0, f32::NAN, 3.0, 4.0])),
                y.clone(),
                "x.npy: row 1, column 2: expected a finite number",
            ),
            (
                x.clone(),
                npy("<f4", &[2], &f32_bytes(&[0.0, 0.5])),
                "y.npy: row 2: label 0.5",
            ),
            (npy("<f4", &[], &f32_bytes(&[1.0])), y.clone(), "scalar"),
        ];
        for (features, labels, expected) in cases {
            let error = load(&features, &labels, classify())
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "expected {expected:?} in {error}");
        }
        let mut fortran = npy("<f4", &[2, 2], &[0; 16]);
        let at = fortran.windows(5).position(|w| w == b"False").unwrap();
        fortran[at..at + 5].copy_from_slice(b"True ");
        let error = load(&fortran, &y, classify()).unwrap_err().to_string();
        assert!(error.contains("fortran_order is True"), "{error}");
    }
}
