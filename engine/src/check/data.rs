//! Data set probing: sample counts and feature shapes read from file headers (or by
//! counting CSV rows), so shapes and batch counts are checked before any compute.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::data::{clean_text, csv_cells};
use crate::diag::{Diagnostic, did_you_mean};
use crate::parse::{ParsedPipeline, Seg};
use crate::spec::{
    ColumnRef, CsvSource, DatasetSpec, FeatureColumns, IdFeatures, SourceSpec, SplitName,
    SplitSpec, TargetColumns,
};

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

struct Probe {
    samples: usize,
    shape: Vec<usize>,
    classes: usize,
    class_names: Option<Vec<String>>,
    targets: Option<Vec<String>>,
    categories: Vec<(usize, Vec<String>)>,
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
        use crate::spec::LossFn;
        if let LossFn::Extension(name) = f {
            return crate::extend::registry().loss(name).is_some_and(|l| {
                (l.targets == ops::loss::LossTargets::Values) == self.is_regression()
            });
        }
        if self.is_regression() {
            matches!(f, LossFn::Mse | LossFn::L1 | LossFn::Huber)
        } else {
            matches!(f, LossFn::CrossEntropy | LossFn::Distill | LossFn::Mse)
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
) -> Option<Probe> {
    let field = |name: &str| {
        let mut p = at.to_vec();
        p.push(Seg::Key(name.into()));
        p
    };
    let result = match source {
        SourceSpec::Csv(csv) => {
            let path = parsed.base_dir.join(&csv.path);
            let (features, answer, header, categorical) =
                csv_columns(parsed, csv, &path, at, diagnostics)?;
            let label = match &answer {
                Answer::Label(l) => Some(*l),
                Answer::Targets(_) => None,
            };
            probe_csv(&path, csv.header, label, &categorical).map_err(|e| (field("path"), e)).and_then(|CsvProbe { rows, cols, labels, categories }| {
            let width = features.len() + categories.iter().map(|(_, v)| v.len()).sum::<usize>();
            let last = features.iter().copied().max().unwrap_or(0);
            let answers = match &answer {
                Answer::Label(l) => vec![*l],
                Answer::Targets(t) => t.clone(),
            };
            let last_answer = answers.iter().chain(&categorical).copied().max().unwrap_or(0);
            if last >= cols || last_answer >= cols {
                let what = if label.is_some() { "the label is column" } else { "the targets reach column" };
                return Err((field("features"), format!("the file has {cols} columns, but the features reach column {last} and {what} {last_answer} (0-based)")));
            }
            let shape = csv.shape.clone().unwrap_or(vec![width]);
            let values = shape.iter().try_fold(1usize, |n, d| n.checked_mul(*d));
            if values != Some(width) {
                let held = values.map_or("more".to_string(), |v| v.to_string());
                return Err((field("shape"), format!("shape {shape:?} holds {held} values but the selected columns make {width} features")));
            }
            if let Answer::Targets(targets) = &answer {
                let names = targets
                    .iter()
                    .enumerate()
                    .map(|(k, &c)| header.get(c).cloned().unwrap_or_else(|| format!("target{k}")))
                    .collect();
                return Ok(Probe { samples: rows, shape, classes: 0, class_names: None, targets: Some(names), categories });
            }
            let (classes, class_names) = match labels {
                Labels::Names(names) => match csv.classes {
                    Some(n) if n != names.len() => return Err((field("classes"), format!("the label column holds {} class names ({}) but `classes` is {n}", names.len(), list_names(&names)))),
                    _ => (names.len(), Some(names)),
                },
                Labels::Ids { max } => (csv.classes.unwrap_or(max + 1), None),
            };
            if classes < 2 {
                return Err((field("label"), format!("the label column holds {classes} class; classification needs at least two")));
            }
            Ok(Probe { samples: rows, shape, classes, class_names, targets: None, categories })
        })
        }
        SourceSpec::Idx(idx) => {
            let images = read_idx_header(&parsed.base_dir.join(&idx.images))
                .map_err(|e| (field("images"), e));
            let labels = read_idx_header(&parsed.base_dir.join(&idx.labels))
                .map_err(|e| (field("labels"), e));
            match (images, labels) {
                (Ok(img), Ok(lab)) if img.first() == lab.first() && img.len() >= 2 => {
                    let mut shape = vec![1];
                    shape.extend_from_slice(&img[1..]);
                    Ok(Probe {
                        samples: img[0],
                        shape,
                        classes: idx.classes,
                        class_names: None,
                        targets: None,
                        categories: Vec::new(),
                    })
                }
                (Ok(img), Ok(lab)) => Err((
                    field("labels"),
                    format!(
                        "the images file holds {} samples but the labels file {}",
                        img.first().unwrap_or(&0),
                        lab.first().unwrap_or(&0)
                    ),
                )),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
        SourceSpec::Npy(npy) => {
            let features = read_npy_shape(&parsed.base_dir.join(&npy.features))
                .map_err(|e| (field("features"), e));
            let labels = read_npy_shape(&parsed.base_dir.join(&npy.labels))
                .map_err(|e| (field("labels"), e));
            match (features, labels) {
                (Ok(f), Ok(l)) if !f.is_empty() && l.first() == f.first() => Ok(Probe {
                    samples: f[0],
                    shape: f[1..].to_vec(),
                    classes: npy.classes,
                    class_names: None,
                    targets: None,
                    categories: Vec::new(),
                }),
                (Ok(f), Ok(l)) => Err((
                    field("labels"),
                    format!(
                        "features have shape {f:?} but labels {l:?}; the first dimensions must agree"
                    ),
                )),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
        SourceSpec::Synthetic(s) => Ok(Probe {
            samples: s.samples,
            shape: s.shape.clone(),
            classes: s.classes,
            class_names: None,
            targets: None,
            categories: Vec::new(),
        }),
        // A registered source probes itself, or is loaded once here.
        SourceSpec::Extension(e) => crate::extend::probe_source(e, &parsed.base_dir)
            .map(|d| Probe {
                samples: d.samples,
                shape: d.shape,
                classes: d.classes,
                class_names: None,
                targets: (d.target_width > 0)
                    .then(|| (0..d.target_width).map(|k| format!("target{k}")).collect()),
                categories: Vec::new(),
            })
            .map_err(|message| (field(e.tag), message)),
    };
    match result {
        Ok(probe) => Some(probe),
        Err((path, message)) => {
            diagnostics.push(
                Diagnostic::new("bad-data-source", message.clone())
                    .at(parsed.span(&path), "while reading this")
                    .hint("paths are relative to the pipeline file; check the file exists and is complete"),
            );
            None
        }
    }
}

/// Opens a file, gunzipping it when its bytes say gzip (as the data stages do).
fn open(path: &Path) -> Result<Box<dyn Read>, String> {
    let file = File::open(path).map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
    let mut reader = BufReader::new(file);
    let gzip = reader
        .fill_buf()
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?
        .starts_with(&[0x1f, 0x8b]);
    if gzip {
        Ok(Box::new(flate2::read::GzDecoder::new(reader)))
    } else {
        Ok(Box::new(reader))
    }
}

/// What a CSV's samples are labelled with: a class label column or regression target
/// columns (0-based).
enum Answer {
    Label(usize),
    Targets(Vec<usize>),
}

/// Numeric feature columns, label or target columns, the header's names, categorical
/// columns.
type CsvColumns = (Vec<usize>, Answer, Vec<String>, Vec<usize>);

/// A CSV source's feature columns and label (or target) columns, 0-based, names
/// resolved through the file's header (each unknown name is reported where it is
/// written, with the closest header name), and the header's names (empty without one).
/// `None` when a column cannot be resolved.
fn csv_columns(
    parsed: &ParsedPipeline,
    csv: &CsvSource,
    path: &Path,
    at: &[Seg],
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<CsvColumns> {
    let key = |k: &str| [at, &[Seg::Key(k.into())]].concat();
    let answer_key = match (&csv.label, &csv.target) {
        (Some(_), None) => "label",
        (None, Some(_)) => "target",
        (label, _) => {
            let both = label.is_some();
            diagnostics.push(
                Diagnostic::new(
                    "label-or-target",
                    if both {
                        "a CSV source gives both `label` and `target`"
                    } else {
                        "a CSV source needs a `label` (classification) or a `target` (regression)"
                    },
                )
                .at(parsed.span(&if both { key("target") } else { at.to_vec() }), if both { "and a target" } else { "this source" })
                .hint("`label: species` names the class column; `target: progression` (or a list) the float columns a regression predicts"),
            );
            return None;
        }
    };
    let answer_refs: Vec<&ColumnRef> = match (&csv.label, &csv.target) {
        (Some(l), _) => vec![l],
        (_, Some(t)) => t.columns(),
        _ => Vec::new(),
    };
    let names_used = matches!(csv.features, FeatureColumns::Names(_))
        || answer_refs
            .iter()
            .chain(csv.categorical.iter().collect::<Vec<_>>().iter())
            .any(|c| matches!(c, ColumnRef::Name(_)));
    let header = if names_used || csv.header {
        // Where a name is used: the features list, else the label.
        let named = if matches!(csv.features, FeatureColumns::Names(_)) {
            "features"
        } else {
            answer_key
        };
        let problem = if !csv.header {
            Err((
                key(named),
                "columns are chosen by name but `header` is false".to_string(),
                "a name, but this source reads no header",
                "set `header: true`: names come from the file's first row".to_string(),
            ))
        } else {
            read_header(path).map_err(|e| {
                (
                    key("path"),
                    e,
                    "while reading its header",
                    "paths are relative to the pipeline file".to_string(),
                )
            })
        };
        match problem {
            Ok(header) => header,
            Err((path, message, label, hint)) => {
                diagnostics.push(
                    Diagnostic::new("bad-data-source", message)
                        .at(parsed.span(&path), label)
                        .hint(hint),
                );
                return None;
            }
        }
    } else {
        Vec::new()
    };
    let mut ok = true;
    let mut resolve = |name: &str, path: Vec<Seg>| -> usize {
        match header.iter().position(|h| h == name) {
            Some(i) => i,
            None => {
                ok = false;
                diagnostics.push(
                    Diagnostic::new(
                        "unknown-column",
                        format!("the header of `{}` names no column `{name}`", csv.path),
                    )
                    .at(parsed.span(&path), "not in the header")
                    .expected_found(
                        format!(
                            "one of {}",
                            header
                                .iter()
                                .map(|h| format!("`{h}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        format!("`{name}`"),
                    )
                    .hint(
                        did_you_mean(name, header.iter().map(String::as_str)).unwrap_or_else(
                            || "names are matched exactly, as the header writes them".to_string(),
                        ),
                    ),
                );
                0
            }
        }
    };
    let features: Vec<usize> = match &csv.features {
        FeatureColumns::Range(r) => (r.start..r.end).collect(),
        FeatureColumns::Names(names) => names
            .iter()
            .enumerate()
            .map(|(k, n)| {
                resolve(
                    n,
                    [at, &[Seg::Key("features".into()), Seg::Index(k)]].concat(),
                )
            })
            .collect(),
    };
    let several = matches!(csv.target, Some(TargetColumns::Many(_)));
    let answers: Vec<usize> = answer_refs
        .iter()
        .enumerate()
        .map(|(k, c)| match c {
            ColumnRef::Index(i) => *i,
            ColumnRef::Name(n) => {
                let mut path = key(answer_key);
                if several {
                    path.push(Seg::Index(k));
                }
                resolve(n, path)
            }
        })
        .collect();
    let categorical: Vec<usize> = csv
        .categorical
        .iter()
        .enumerate()
        .map(|(k, c)| match c {
            ColumnRef::Index(i) => *i,
            ColumnRef::Name(n) => resolve(
                n,
                [at, &[Seg::Key("categorical".into()), Seg::Index(k)]].concat(),
            ),
        })
        .collect();
    if ok
        && let Some((k, &c)) = categorical
            .iter()
            .enumerate()
            .find(|(_, c)| features.contains(c) || answers.contains(c))
    {
        let header_name = header
            .get(c)
            .map(|h| format!(" (`{h}`)"))
            .unwrap_or_default();
        diagnostics.push(
            Diagnostic::new(
                "column-reused",
                format!("column {c}{header_name} is categorical and also a numeric feature or the {answer_key}"),
            )
            .at(parsed.span(&[at, &[Seg::Key("categorical".into()), Seg::Index(k)]].concat()), "used twice")
            .hint("list a text column under `categorical` only"),
        );
        ok = false;
    }
    if ok && let Some(&both) = answers.iter().find(|c| features.contains(c)) {
        let header_name = header
            .get(both)
            .map(|h| format!(" (`{h}`)"))
            .unwrap_or_default();
        diagnostics.push(
            Diagnostic::new(
                "column-reused",
                format!("column {both}{header_name} is both a feature and the {answer_key}"),
            )
            .at(parsed.span(&key(answer_key)), "also a feature")
            .hint(format!(
                "the {answer_key} column must not also be a feature: the model would see the answer"
            )),
        );
        ok = false;
    }
    let answer = match csv.label {
        Some(_) => Answer::Label(answers.first().copied().unwrap_or(0)),
        None => Answer::Targets(answers),
    };
    ok.then_some((features, answer, header, categorical))
}

/// The cells of a CSV file's first non-blank row, cleaned as the data stages clean them.
fn read_header(path: &Path) -> Result<Vec<String>, String> {
    let reader = BufReader::new(open(path)?);
    for line in reader.lines() {
        let line = line.map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        if !line.trim().is_empty() {
            return Ok(csv_cells(&line)
                .into_iter()
                .map(|c| clean_text(c).to_string())
                .collect());
        }
    }
    Err(format!("`{}` holds no header row", path.display()))
}

/// What a CSV's label column holds.
enum Labels {
    /// Integer class ids, the largest `max`.
    Ids { max: usize },
    /// Class names (some label is not a whole number), distinct and sorted.
    Names(Vec<String>),
}

struct CsvProbe {
    rows: usize,
    cols: usize,
    labels: Labels,
    /// Each categorical column with its distinct values, sorted.
    categories: Vec<(usize, Vec<String>)>,
}

/// `setosa`, `versicolor`, … (at most 8 shown).
fn list_names(names: &[String]) -> String {
    let shown: Vec<String> = names.iter().take(8).map(|n| format!("`{n}`")).collect();
    let more = names.len().saturating_sub(8);
    if more > 0 {
        format!("{}, and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Rows, columns and the label column's values of a CSV file (no label: regression).
fn probe_csv(
    path: &Path,
    header: bool,
    label: Option<usize>,
    categorical: &[usize],
) -> Result<CsvProbe, String> {
    let reader = BufReader::new(open(path)?);
    let mut vocabularies: Vec<std::collections::BTreeSet<String>> =
        vec![std::collections::BTreeSet::new(); categorical.len()];
    let mut rows = 0;
    let mut cols = 0;
    let mut names = std::collections::BTreeSet::new();
    let mut max = 0usize;
    let mut all_ids = true;
    for line in reader.lines() {
        let line = line.map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        if cols == 0 {
            cols = csv_cells(&line).len();
        }
        rows += 1;
        if header && rows == 1 {
            continue;
        }
        let cells = csv_cells(&line);
        for (vocabulary, &c) in vocabularies.iter_mut().zip(categorical) {
            if let Some(cell) = cells.get(c).map(|c| clean_text(c))
                && vocabulary.len() <= MAX_CLASS_NAMES
                && !vocabulary.contains(cell)
            {
                vocabulary.insert(cell.to_string());
            }
        }
        // A short row is reported by the data stages, with its row number.
        let Some(label) = label else { continue };
        let Some(cell) = cells.get(label).map(|c| clean_text(c)) else {
            continue;
        };
        match cell.parse::<f64>() {
            Ok(v) if v >= 0.0 && v.fract() == 0.0 && v < u32::MAX as f64 => {
                max = max.max(v as usize);
            }
            _ => all_ids = false,
        }
        if names.len() <= MAX_CLASS_NAMES && !names.contains(cell) {
            names.insert(cell.to_string());
        }
    }
    let rows = rows - usize::from(header && rows > 0);
    if rows == 0 {
        return Err(format!("`{}` holds no samples", path.display()));
    }
    let labels = if all_ids {
        Labels::Ids { max }
    } else if names.len() > MAX_CLASS_NAMES {
        return Err(format!(
            "the label column (column {}, 0-based) holds more than {MAX_CLASS_NAMES} distinct values that are not all class ids; is it the right column? (regression targets go in `target:`)",
            label.unwrap_or(0)
        ));
    } else {
        Labels::Names(names.into_iter().collect())
    };
    if let Some((&c, _)) = categorical
        .iter()
        .zip(&vocabularies)
        .find(|(_, v)| v.len() > MAX_CLASS_NAMES)
    {
        return Err(format!(
            "categorical column {c} (0-based) holds more than {MAX_CLASS_NAMES} distinct values; is it an id or free text?"
        ));
    }
    let categories = categorical
        .iter()
        .copied()
        .zip(vocabularies.into_iter().map(|v| v.into_iter().collect()))
        .collect();
    Ok(CsvProbe {
        rows,
        cols,
        labels,
        categories,
    })
}

/// More distinct label names than this is a wrong column, not a vocabulary.
const MAX_CLASS_NAMES: usize = 10_000;

fn read_idx_header(path: &Path) -> Result<Vec<usize>, String> {
    crate::data::read_idx_shape(path, open(path)?).map_err(|e| e.to_string())
}

fn read_npy_shape(path: &Path) -> Result<Vec<usize>, String> {
    crate::data::read_npy_shape(path, open(path)?).map_err(|e| e.to_string())
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
