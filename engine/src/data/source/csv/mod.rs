//! Delimited text (`.csv`, or gzip-compressed `.csv.gz`): its settings, their checks
//! (columns resolved against the header, labels and vocabularies probed), its lowering and
//! its loader ([`read`]).

mod probe;
mod read;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Configure, Loader, Source, SourceRule};
use crate::check::{ProbeCx, ProbeFailure, SourceInfo};
use crate::data::dataset::{Dataset, Task};
use crate::data::error::DataError;
use crate::spec::Bounds;

pub use read::{Category, Columns, CsvSource};
use read::{clean_text, csv_cells};

/// A CSV source's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvSpec {
    /// Path of the `.csv` or `.csv.gz` file, relative to the pipeline file.
    pub path: String,
    /// Whether the first row is a header to skip.
    #[serde(default)]
    pub header: bool,
    /// Columns holding the features: a 0-based range (`{start: 0, end: 4}`, `end`
    /// exclusive) or the header's names for them (`[sepal_length, petal_length]`).
    pub features: FeatureColumns,
    /// Column holding the class label (classification): its 0-based index or its name in
    /// the header. Its values are integer class ids, or class names (`setosa`), numbered in
    /// sorted order of the names in the file. Give `label` or `target`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<ColumnRef>,
    /// Column(s) holding float regression targets: one index or name, or a list of them.
    /// Give `label` or `target`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetColumns>,
    /// Number of classes: integer labels lie in `0..classes`. Optional: by default the
    /// largest integer label + 1, or the number of distinct names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
    /// Text columns used as features, one-hot encoded (by index or header name): each
    /// becomes one feature per distinct value in the train file (sorted), after the
    /// numeric `features`, in this order. The vocabulary is stored with the model; a value
    /// outside it is an error naming its row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categorical: Vec<ColumnRef>,
    /// Per-sample shape of the features, e.g. `[1, 8, 8]` for a CNN. Defaults to `[columns]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Vec<usize>>,
}

/// Feature columns of a CSV: a range, or names from its header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum FeatureColumns {
    /// Columns `start..end`, 0-based.
    Range(ColumnRange),
    /// The columns the header names so, in this order (needs `header: true`).
    Names(Vec<String>),
}

/// Regression target columns of a CSV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TargetColumns {
    /// One target column.
    One(ColumnRef),
    /// Several target columns, in this order (the model outputs one value per column).
    Many(Vec<ColumnRef>),
}

impl TargetColumns {
    /// The columns, in order.
    pub fn columns(&self) -> Vec<&ColumnRef> {
        match self {
            TargetColumns::One(c) => vec![c],
            TargetColumns::Many(cs) => cs.iter().collect(),
        }
    }
}

/// One CSV column: its 0-based index, or its name in the header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ColumnRef {
    /// 0-based column index.
    Index(usize),
    /// The header's name for it (needs `header: true`).
    Name(String),
}

/// A range of columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Columns")]
pub struct ColumnRange {
    /// First column (0-based, inclusive).
    pub start: usize,
    /// One past the last column (exclusive).
    pub end: usize,
}

/// Delimited text.
pub struct Csv;

impl SourceRule for Csv {
    type Spec = CsvSpec;
    const NAME: &'static str = "csv";
    const DESCRIPTION: &'static str =
        "Comma-separated values, optionally gzipped (`.csv.gz`), one sample per row.";

    #[rustfmt::skip]
    fn check(csv: &CsvSpec, r: &mut Bounds) {
        // Columns by name are checked against the header when the file is probed.
        if let FeatureColumns::Range(ColumnRange { start, end }) = csv.features {
            r.rule("features", start < end, "a non-empty column range (start < end)", format!("{start}..{end}"), "e.g. {start: 0, end: 64}");
        }
        // Inferred from the file when omitted (checked when the file is probed); a
        // regression source has no classes.
        if csv.target.is_none() && let Some(classes) = csv.classes {
            r.rule("classes", classes >= 2, ">= 2", classes, "classification needs at least two classes");
        }
    }

    fn probe(csv: &CsvSpec, cx: &mut ProbeCx) -> Result<SourceInfo, ProbeFailure> {
        probe::probe(csv, cx)
    }

    fn configure(c: &CsvSpec, cx: &Configure) -> Source {
        let info = cx.info;
        let mut csv = CsvSource::new(cx.base_dir.join(&c.path));
        csv.header = c.header;
        csv.features = match &c.features {
            FeatureColumns::Range(r) => Columns::Range {
                start: r.start,
                end: r.end,
            },
            FeatureColumns::Names(names) => Columns::Named(names.clone()),
        };
        let column = |c: &ColumnRef| match c {
            ColumnRef::Index(i) => Columns::List(vec![*i]),
            ColumnRef::Name(name) => Columns::Named(vec![name.clone()]),
        };
        match (&c.label, &c.target) {
            (Some(label), _) => {
                csv.label = column(label);
                csv.task = Task::Classify {
                    classes: info.map(|d| d.classes).or(c.classes),
                };
            }
            (None, Some(target)) => {
                let columns = target.columns();
                csv.label = if columns.iter().all(|c| matches!(c, ColumnRef::Index(_))) {
                    Columns::List(
                        columns
                            .iter()
                            .filter_map(|c| match c {
                                ColumnRef::Index(i) => Some(*i),
                                ColumnRef::Name(_) => None,
                            })
                            .collect(),
                    )
                } else {
                    // The check resolved every name against the header; a mix of indices
                    // and names is written as names.
                    let header = info.and_then(|d| d.targets.clone()).unwrap_or_default();
                    Columns::Named(header)
                };
                csv.task = Task::Regress;
            }
            // The check refuses a source with neither.
            (None, None) => {}
        }
        csv.class_names = info.and_then(|d| d.class_names.clone());
        // The train file's vocabularies, for every split's source.
        csv.categorical = c
            .categorical
            .iter()
            .zip(info.map(|d| d.categories.clone()).unwrap_or_default())
            .map(|(column, (_, values))| Category {
                column: match column {
                    ColumnRef::Index(i) => Columns::List(vec![*i]),
                    ColumnRef::Name(n) => Columns::Named(vec![n.clone()]),
                },
                values,
            })
            .collect();
        csv.shape = c.shape.clone();
        Source::new(csv)
    }
}

impl Loader for CsvSource {
    fn name(&self) -> &'static str {
        Csv::NAME
    }

    fn load(&self) -> Result<Dataset, DataError> {
        CsvSource::load(self)
    }

    fn describe(&self) -> String {
        format!("csv {}", self.path.display())
    }

    fn csv(&self) -> Option<&CsvSource> {
        Some(self)
    }
}
