use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SourceSpec;
use super::tagged::tagged_enum;

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
