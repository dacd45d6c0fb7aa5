//! Data set probing: sample counts and feature shapes read from file headers (or by
//! counting CSV rows), so shapes and batch counts are checked before any compute.

use std::collections::BTreeMap;

use std::io::Read;
use std::path::Path;

use crate::data::{ProbeFailure, SourceInfo};
use crate::diag::Diagnostic;
use crate::parse::{ParsedPipeline, Seg};
use crate::spec::{DatasetSpec, IdFeatures, SourceSpec, SplitName, SplitSpec};

/// What the checks know about a data set.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetInfo {
    /// Per-sample feature shape as stored.
    pub shape: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
    /// The class names, sorted, when the label column holds names (class `i` is
    /// `class_names[i]`).
    pub class_names: Option<Vec<String>>,
    /// Samples in each split that exists.
    pub splits: BTreeMap<SplitName, usize>,
    /// Features holding integer ids, as declared (see [`DatasetInfo::valid_ids`]).
    pub ids: Option<IdFeatures>,
    /// Regression: the names of the target columns (the header's, else `target<i>`);
    /// `None` for classification (then `classes >= 2`; for regression `classes == 0`).
    pub targets: Option<Vec<String>>,
    /// The categorical feature columns (0-based) and their sorted vocabularies.
    pub categories: Vec<(usize, Vec<String>)>,
}

/// Probes every data set; unreadable sources become diagnostics.
pub(super) fn probe_all(
    parsed: &ParsedPipeline,
    diagnostics: &mut Vec<Diagnostic>,
) -> BTreeMap<String, DatasetInfo> {
    let mut infos = BTreeMap::new();
    for (name, spec) in &parsed.pipeline.datasets {
        let base = vec![Seg::Key("datasets".into()), Seg::Key(name.clone())];
        if let Some(info) = probe_dataset(parsed, spec, &base, diagnostics) {
            infos.insert(name.clone(), info);
        }
    }
    infos
}

fn probe_dataset(
    parsed: &ParsedPipeline,
    spec: &DatasetSpec,
    base: &[Seg],
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<DatasetInfo> {
    let mut source_path = base.to_vec();
    source_path.push(Seg::Key("source".into()));
    let main = probe_source(parsed, &spec.source, &source_path, diagnostics)?;
    let mut splits = BTreeMap::new();
    match &spec.split {
        SplitSpec::Fraction(f) => {
            let sizes = split_sizes(main.samples, f.train, f.val, f.test);
            for (name, n) in [
                (SplitName::Train, sizes[0]),
                (SplitName::Val, sizes[1]),
                (SplitName::Test, sizes[2]),
            ] {
                if n > 0 {
                    splits.insert(name, n);
                }
            }
        }
        SplitSpec::Files(files) => {
            splits.insert(SplitName::Train, main.samples);
            for (name, source) in [(SplitName::Val, &files.val), (SplitName::Test, &files.test)] {
                let Some(source) = source else { continue };
                let mut path = base.to_vec();
                path.extend([Seg::Key("split".into()), Seg::Key(name.as_str().into())]);
                let probe = probe_source(parsed, source, &path, diagnostics)?;
                if probe.shape != main.shape {
                    diagnostics.push(
                        Diagnostic::new("shape-mismatch", format!("the {} split's samples have a different shape than the train split's", name.as_str()))
                            .at(parsed.span(&path), "this source")
                            .expected_found(format!("{:?}", main.shape), format!("{:?}", probe.shape))
                            .hint("all splits of a data set must have the same feature shape"),
                    );
                }
                splits.insert(name, probe.samples);
            }
        }
    }
    if let Some(ids) = &spec.ids {
        check_ids(parsed, ids, &main.shape, base, diagnostics);
    }
    let ids = spec.ids;
    Some(DatasetInfo {
        shape: main.shape,
        classes: main.classes,
        class_names: main.class_names,
        splits,
        ids,
        targets: main.targets,
        categories: main.categories,
    })
}

impl DatasetInfo {
    /// Whether its samples carry float regression targets rather than class labels.
    pub fn is_regression(&self) -> bool {
        self.targets.is_some()
    }

    /// Whether loss `f` compares outputs with what it holds: `mse`, `l1`, `huber` on
    /// regression targets; `cross_entropy`, `distill`, `mse` (one-hot) on class labels.
    /// A registered loss fits the targets it declares.
    pub fn fits(&self, f: crate::spec::LossFn) -> bool {
        f.fits(self.targets())
    }

    /// What it holds: class ids or float targets.
    pub fn targets(&self) -> ops::loss::LossTargets {
        if self.is_regression() {
            ops::loss::LossTargets::Values
        } else {
            ops::loss::LossTargets::Classes
        }
    }

    /// Values a model trained on it outputs per sample: one logit per class, or one value
    /// per target.
    pub fn outputs(&self) -> usize {
        self.targets.as_ref().map_or(self.classes, Vec::len)
    }

    /// What the model's outputs are compared with, for messages.
    pub fn outputs_described(&self) -> String {
        match &self.targets {
            Some(t) => format!(
                "{} regression target{}",
                t.len(),
                if t.len() == 1 { "" } else { "s" }
            ),
            None => format!("{} classes", self.classes),
        }
    }

    /// Whether the declared `ids` name features a sample has, with a count f32 holds
    /// exactly (an invalid declaration is reported where it is written).
    pub fn valid_ids(&self) -> bool {
        self.ids
            .is_some_and(|ids| id_problem(&ids, &self.shape).is_none())
    }
}

/// What is wrong with `ids` for samples of `shape`: the key, the message, what is expected.
fn id_problem(ids: &IdFeatures, shape: &[usize]) -> Option<(&'static str, String, String)> {
    let width: usize = shape.iter().product();
    if ids.start >= ids.end {
        Some((
            "start",
            format!(
                "`ids` must name at least one feature, found start {} and end {}",
                ids.start, ids.end
            ),
            "start below end".to_string(),
        ))
    } else if ids.end > width {
        Some((
            "end",
            format!(
                "`ids` ends at feature {} but a sample has {width} features {shape:?}",
                ids.end
            ),
            format!("end <= {width}"),
        ))
    } else if ids.count == 0 || ids.count > 1 << 24 {
        Some((
            "count",
            format!(
                "`ids.count` must be in 1..=2^24 (ids travel as f32), found {}",
                ids.count
            ),
            "1..=16777216".to_string(),
        ))
    } else {
        None
    }
}

/// Reports an invalid `ids` declaration at the key at fault.
fn check_ids(
    parsed: &ParsedPipeline,
    ids: &IdFeatures,
    shape: &[usize],
    base: &[Seg],
    diagnostics: &mut Vec<Diagnostic>,
) {
    let Some((key, message, expected)) = id_problem(ids, shape) else {
        return;
    };
    let at =
        |key: &str| parsed.span(&[base, &[Seg::Key("ids".into()), Seg::Key(key.into())]].concat());
    diagnostics.push(
        Diagnostic::new("invalid-ids", message)
            .at(at(key), "here")
            .expected_found(expected, format!("{}..{} of {} ids", ids.start, ids.end, ids.count))
            .hint("`ids: {start, end, count}` counts positions among the features the source reads (0-based, end excluded)"),
    );
}

fn probe_source(
    parsed: &ParsedPipeline,
    source: &SourceSpec,
    at: &[Seg],
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<SourceInfo> {
    let mut cx = ProbeCx {
        parsed,
        at: at.to_vec(),
        diagnostics,
    };
    match source.probe(&mut cx) {
        Ok(info) => Some(info),
        Err(ProbeFailure::Reported) => None,
        Err(ProbeFailure::At { key, message }) => {
            let path = cx.key(&key);
            diagnostics.push(
                Diagnostic::new("bad-data-source", message)
                    .at(parsed.span(&path), "while reading this")
                    .hint("paths are relative to the pipeline file; check the file exists and is complete"),
            );
            None
        }
    }
}

/// What a data source's probe reads of the pipeline, and where its diagnostics go.
pub struct ProbeCx<'a> {
    parsed: &'a ParsedPipeline,
    /// The path of the source's settings.
    at: Vec<Seg>,
    diagnostics: &'a mut Vec<Diagnostic>,
}

impl ProbeCx<'_> {
    /// The pipeline's directory (relative paths start here).
    pub fn base_dir(&self) -> &Path {
        &self.parsed.base_dir
    }

    /// The path of settings key `key` (`features`, or `features[1]` style is not split).
    pub fn key(&self, key: &str) -> Vec<Seg> {
        let mut p = self.at.clone();
        p.push(Seg::Key(key.into()));
        p
    }

    /// The path of `segments` inside the source's settings.
    pub fn path(&self, segments: &[Seg]) -> Vec<Seg> {
        [self.at.as_slice(), segments].concat()
    }

    /// Where `path` is written.
    pub fn span(&self, path: &[Seg]) -> Option<crate::diag::Span> {
        self.parsed.span(path)
    }

    /// Reports a problem (its location given by the caller).
    pub fn report(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    /// Opens `file` (relative to the pipeline), gunzipping it when its bytes say gzip.
    pub fn open(&self, file: &str) -> Result<Box<dyn Read>, String> {
        crate::data::open(&self.base_dir().join(file))
    }

    /// Reads a header of `file` (the value of settings key `key`) with `read`; a failure is
    /// located at `key`.
    pub fn read_header<T>(
        &self,
        key: &str,
        file: &str,
        read: fn(&Path, Box<dyn Read>) -> Result<T, crate::data::DataError>,
    ) -> Result<T, ProbeFailure> {
        let path = self.base_dir().join(file);
        crate::data::open(&path)
            .and_then(|reader| read(&path, reader).map_err(|e| e.to_string()))
            .map_err(|message| ProbeFailure::at(key, message))
    }
}

/// Samples per split, by the data stages' own rounding rule.
fn split_sizes(n: usize, train: f64, val: f64, test: f64) -> [usize; 3] {
    let fractions = crate::data::Fractions {
        train,
        val,
        test,
        stratified: false,
        seed: 0,
    };
    // Invalid fractions are reported by the hyperparameter checks.
    crate::data::split_sizes(n, &fractions).unwrap_or([0; 3])
}
