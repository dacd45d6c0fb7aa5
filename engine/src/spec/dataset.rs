use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::tagged::{Extension, tagged_enum};

/// A data set: where its samples come from, how they are normalised and split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// Where the samples come from. With `split: {kind: files}` this is the train split.
    pub source: SourceSpec,
    /// Feature normalisation; statistics are computed on the train split only.
    #[serde(default)]
    pub normalize: Normalize,
    /// Regression: scaling of the `target` columns (`{kind: standardize}`), fitted on the
    /// train split. The model learns scaled targets; metrics and predictions are in the
    /// original units, and the scaling is stored with checkpoints and exports.
    #[serde(default)]
    pub normalize_targets: Normalize,
    /// Features that hold integer ids (category codes, tokens) for an `embedding`: checked
    /// to be whole numbers in `0..count` when loaded, and never normalised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<IdFeatures>,
    /// How samples are divided into train, val and test splits.
    pub split: SplitSpec,
}

/// Positions of a sample's (flattened) features holding integer ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdFeatures {
    /// First id feature (0-based, inclusive), counted among the features the source reads.
    pub start: usize,
    /// One past the last id feature (exclusive).
    pub end: usize,
    /// Ids lie in `0..count` (an embedding over them needs `num_embeddings >= count`).
    pub count: usize,
}

/// A source of samples. Paths are relative to the pipeline file.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceSpec {
    /// Comma-separated values, optionally gzipped (`.csv.gz`), one sample per row.
    Csv(CsvSource),
    /// The IDX format MNIST ships in (`.idx` or `.idx.gz`): an images file and a labels file.
    Idx(IdxSource),
    /// NumPy `.npy` arrays: a features array `[n, ...]` and a labels array `[n]`.
    Npy(NpySource),
    /// Seeded synthetic classification data (Gaussian blobs), for benchmarks and tests.
    Synthetic(SyntheticSource),
    /// A source the binary registered (`engine::extend`); the schema lists each one.
    #[schemars(skip)]
    #[serde(untagged)]
    Extension(Extension),
}
tagged_enum!(SourceSpec, "kind", {
    "csv" => Csv(CsvSource),
    "idx" => Idx(IdxSource),
    "npy" => Npy(NpySource),
    "synthetic" => Synthetic(SyntheticSource),
}, extensions: Extension(crate::extend::source_family()));

/// A CSV source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvSource {
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
    Range(Columns),
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
pub struct Columns {
    /// First column (0-based, inclusive).
    pub start: usize,
    /// One past the last column (exclusive).
    pub end: usize,
}

/// An IDX image/label pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdxSource {
    /// Images file (`[n, rows, cols]` of u8), `.idx` or `.idx.gz`.
    pub images: String,
    /// Labels file (`[n]` of u8), `.idx` or `.idx.gz`.
    pub labels: String,
    /// Number of classes.
    #[serde(default = "ten")]
    pub classes: usize,
}

/// An npy features/labels pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NpySource {
    /// Features array `[n, ...shape]` (f32, f64 or u8).
    pub features: String,
    /// Labels array `[n]` (integer).
    pub labels: String,
    /// Number of classes.
    pub classes: usize,
}

/// Synthetic Gaussian blobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSource {
    /// Number of samples.
    pub samples: usize,
    /// Per-sample feature shape, e.g. `[784]` or `[1, 28, 28]`.
    pub shape: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
    /// Standard deviation of the noise around each class centre.
    #[serde(default = "one")]
    pub noise: f32,
}

fn ten() -> usize {
    10
}

fn one() -> f32 {
    1.0
}

/// Feature normalisation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Normalize {
    /// Features are used as read.
    #[default]
    None,
    /// Multiply every feature by `factor` (e.g. `0.0625` for pixels in 0..16).
    Scale(ScaleNormalize),
    /// Subtract each feature's train-split mean and divide by its standard deviation.
    Standardize,
}
tagged_enum!(Normalize, "kind", {
    "none" => None,
    "scale" => Scale(ScaleNormalize),
    "standardize" => Standardize,
});

/// Scale normalisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleNormalize {
    /// Factor every feature is multiplied by.
    pub factor: f32,
}

/// A named split of a data set.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SplitName {
    /// The split the model trains on.
    Train,
    /// The split used for model selection.
    Val,
    /// The held-out split reported at the end.
    Test,
}

impl SplitName {
    /// The name as written in pipelines.
    pub fn as_str(self) -> &'static str {
        match self {
            SplitName::Train => "train",
            SplitName::Val => "val",
            SplitName::Test => "test",
        }
    }
}

/// How a data set is split.
// Parsed once per pipeline: the size of the `files` variant's sources costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SplitSpec {
    /// Split one source by seeded fractions.
    Fraction(FractionSplit),
    /// The `source` is the train split; val and test come from their own sources.
    Files(FileSplit),
}
tagged_enum!(SplitSpec, "kind", {
    "fraction" => Fraction(FractionSplit),
    "files" => Files(FileSplit),
});

/// Fractions of the source assigned to each split (summing to at most 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FractionSplit {
    /// Fraction of samples in the train split.
    pub train: f64,
    /// Fraction of samples in the val split.
    #[serde(default)]
    pub val: f64,
    /// Fraction of samples in the test split.
    #[serde(default)]
    pub test: f64,
    /// Keep each class's proportion the same in every split. Default: true for
    /// classification, false for regression (which has no classes to stratify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stratified: Option<bool>,
}

/// Separate sources for the val and test splits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSplit {
    /// Source of the val split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val: Option<SourceSpec>,
    /// Source of the test split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<SourceSpec>,
}
