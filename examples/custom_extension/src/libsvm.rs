//! `libsvm`: LIBSVM / svmlight text, one sample a line: `label index:value ...` with
//! 1-based feature indices and zeros left out (scikit-learn's `dump_svmlight_file`,
//! XGBoost and LIBSVM read and write it). Gzipped files are read as they are.

use std::io::Read;
use std::path::{Path, PathBuf};

use engine::extend::{Dataset, Source, SourceProbe, SpecError};
use schemars::JsonSchema;
use serde::Deserialize;

/// Settings of `kind: libsvm`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LibsvmSpec {
    /// The file, relative to the pipeline (`.gz` is decompressed).
    pub path: PathBuf,
    /// Features per sample (the largest index the file may use).
    #[schemars(range(min = 1))]
    pub features: usize,
    /// Number of classes; labels are integers `0..classes`.
    #[schemars(range(min = 2))]
    pub classes: usize,
}

/// The LIBSVM reader.
pub struct Libsvm;

impl Source for Libsvm {
    type Spec = LibsvmSpec;
    const NAME: &'static str = "libsvm";
    const DESCRIPTION: &'static str = "LIBSVM / svmlight text (.svm, .gz): `label index:value ...` per line, 1-based indices, zeros left out.";

    fn check(spec: &LibsvmSpec) -> Result<(), SpecError> {
        if spec.features == 0 {
            return Err(SpecError::at("features", "`features` must be at least 1"));
        }
        if spec.classes < 2 {
            return Err(SpecError::at(
                "classes",
                format!(
                    "classification needs at least two classes, found {}",
                    spec.classes
                ),
            ));
        }
        Ok(())
    }

    /// `engine validate` counts the samples without parsing them.
    fn probe(spec: &LibsvmSpec, pipeline_dir: &Path) -> Option<Result<SourceProbe, String>> {
        let samples = read_text(&pipeline_dir.join(&spec.path)).map(|text| {
            text.lines()
                .filter(|l| !l.split('#').next().unwrap_or_default().trim().is_empty())
                .count()
        });
        Some(samples.map(|samples| SourceProbe {
            samples,
            shape: vec![spec.features],
            classes: spec.classes,
            target_width: 0,
        }))
    }

    fn load(spec: &LibsvmSpec, pipeline_dir: &Path) -> Result<Dataset, String> {
        let path = pipeline_dir.join(&spec.path);
        let text = read_text(&path)?;
        let mut features = Vec::new();
        let mut labels = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let at = |what: String| format!("{}:{}: {what}", path.display(), n + 1);
            let mut cells = line.split_ascii_whitespace();
            let label = cells.next().unwrap_or_default();
            let label: usize = label
                .parse::<f64>()
                .ok()
                .filter(|v| v.fract() == 0.0 && *v >= 0.0)
                .map(|v| v as usize)
                .ok_or_else(|| at(format!("the label `{label}` is not a class id")))?;
            if label >= spec.classes {
                return Err(at(format!(
                    "label {label} is not below `classes` ({})",
                    spec.classes
                )));
            }
            let row = features.len();
            features.resize(row + spec.features, 0.0f32);
            for cell in cells {
                let (index, value) = cell
                    .split_once(':')
                    .ok_or_else(|| at(format!("`{cell}` is not `index:value`")))?;
                let index: usize = index
                    .parse()
                    .map_err(|_| at(format!("`{index}` is not a feature index")))?;
                if index == 0 || index > spec.features {
                    return Err(at(format!(
                        "feature index {index} is outside 1..={} (`features`)",
                        spec.features
                    )));
                }
                features[row + index - 1] = value
                    .parse()
                    .map_err(|_| at(format!("`{value}` is not a number")))?;
            }
            labels.push(label as u32);
        }
        Dataset::classification(features, vec![spec.features], labels, spec.classes)
            .map_err(|e| e.to_string())
    }
}

fn read_text(path: &Path) -> Result<String, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut text = String::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_string(&mut text)
            .map_err(|e| format!("`{}` is not valid gzip text: {e}", path.display()))?;
        Ok(text)
    } else {
        String::from_utf8(bytes).map_err(|e| format!("`{}` is not text: {e}", path.display()))
    }
}
