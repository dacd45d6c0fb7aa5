//! The model card: everything needed to use a trained model without its pipeline — the
//! model graph, parameter names, the columns its data came from, the fitted feature
//! normalisation, the class vocabulary or the target names and scaling. The plan writes
//! the static part; the run adds the statistics and stores it in every checkpoint
//! (`model.json`) and `engine export` in the safetensors metadata (`engine.card`).

use std::path::PathBuf;

use ops::model::ModelDef;
use serde::{Deserialize, Serialize};

use crate::data::{Category, Columns, Normalizer};

/// The card's format version; a card of another version is refused with a message.
pub const CARD_FORMAT: u32 = 1;

/// A trained model and how to feed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// [`CARD_FORMAT`].
    pub format: u32,
    /// The pipeline's name.
    pub pipeline: String,
    /// Hash of the resolved pipeline that trained it.
    pub pipeline_hash: String,
    /// The model's name under `models:` (the trained model whose outputs the loss reads).
    pub model: String,
    /// The directory of the pipeline file (its relative data paths start there).
    pub pipeline_dir: PathBuf,
    /// Its layers and wiring.
    pub def: ModelDef,
    /// Names of its layers in parameter names (`None`: `layers.<i>`).
    pub layer_names: Option<Vec<String>>,
    /// Where its samples came from.
    pub input: InputCard,
    /// Feature normalisation fitted on the train split (`x' = (x - offset) * factor`).
    pub normalize: Scaling,
    /// Classes or regression targets.
    pub task: TaskCard,
    /// Samples per batch when it is evaluated (its eval stage's, else 256).
    pub eval_batch: usize,
    /// The loss its evals report (its training loss; cross entropy for distillation).
    pub eval_loss: EvalLoss,
}

/// The loss an evaluation of a model reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "fn")]
pub enum EvalLoss {
    /// Softmax cross entropy (with the training's label smoothing and class weights).
    CrossEntropy {
        label_smoothing: f32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        class_weights: Option<Vec<f32>>,
    },
    /// Mean squared error: against regression targets, or one-hot rows of the labels.
    Mse { one_hot: bool },
    /// Mean absolute error.
    L1,
    /// Huber loss.
    Huber { delta: f32 },
}

impl EvalLoss {
    /// The device loss.
    pub fn kind(&self) -> ops::train::LossKind {
        use ops::train::LossKind;
        match *self {
            EvalLoss::CrossEntropy {
                label_smoothing, ..
            } => LossKind::CrossEntropy { label_smoothing },
            EvalLoss::Mse { .. } => LossKind::Mse,
            EvalLoss::L1 => LossKind::L1,
            EvalLoss::Huber { delta } => LossKind::Huber { delta },
        }
    }

    /// Cross entropy's class weights.
    pub fn class_weights(&self) -> Option<&[f32]> {
        match self {
            EvalLoss::CrossEntropy { class_weights, .. } => class_weights.as_deref(),
            _ => None,
        }
    }

    /// Whether it compares with one-hot rows of class labels.
    pub fn one_hot(&self) -> bool {
        matches!(self, EvalLoss::Mse { one_hot: true })
    }
}

/// The columns of the source a model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputCard {
    /// The source kind: `csv`, `idx`, `npy` or `synthetic`.
    pub kind: String,
    /// CSV: whether the file starts with a header.
    pub header: bool,
    /// CSV: the feature columns, as the pipeline chose them.
    pub features: Option<Columns>,
    /// CSV: the label or target columns.
    pub answer: Option<Columns>,
    /// CSV: the categorical feature columns and their vocabularies (one-hot encoded after
    /// the numeric features).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categorical: Vec<Category>,
    /// Per-sample shape of the features.
    pub shape: Vec<usize>,
}

/// Per-value offsets and factors of a fitted normalisation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Scaling {
    /// Subtracted first.
    pub offsets: Vec<f64>,
    /// Then multiplied by.
    pub factors: Vec<f64>,
}

impl Scaling {
    /// The offsets and factors of `n`.
    pub fn of(n: &Normalizer) -> Scaling {
        Scaling {
            offsets: n.offsets().to_vec(),
            factors: n.factors().to_vec(),
        }
    }

    /// As a normaliser over `width` values; `None` if the stored values do not fit.
    pub fn normalizer(&self, width: usize) -> Option<Normalizer> {
        if self.offsets.is_empty() && self.factors.is_empty() {
            return Some(Normalizer::identity(width));
        }
        Normalizer::from_parts(self.offsets.clone(), self.factors.clone())
            .filter(|n| n.width() == width)
    }
}

/// What the model predicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TaskCard {
    /// One logit per class.
    Classify {
        /// Number of classes.
        classes: usize,
        /// The vocabulary (class `i` is `class_names[i]`) when labels were names.
        class_names: Option<Vec<String>>,
    },
    /// One value per target column.
    Regress {
        /// Names of the target columns.
        targets: Vec<String>,
        /// The target scaling the model learned under; its outputs are mapped back.
        scaling: Scaling,
    },
}

impl TaskCard {
    /// Values the model outputs per sample.
    pub fn outputs(&self) -> usize {
        match self {
            TaskCard::Classify { classes, .. } => *classes,
            TaskCard::Regress { targets, .. } => targets.len(),
        }
    }

    /// The name of class `i` (its id as text without a vocabulary).
    pub fn class_name(&self, i: usize) -> String {
        match self {
            TaskCard::Classify {
                class_names: Some(names),
                ..
            } => names.get(i).cloned().unwrap_or_else(|| i.to_string()),
            _ => i.to_string(),
        }
    }
}
