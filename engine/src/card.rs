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

/// The loss an evaluation of a model reports: its training loss (or the loss that loss
/// is evaluated as, see `LossRow::eval_as`), by name, with its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalLoss {
    /// The loss's name, e.g. `cross_entropy` or `huber`.
    #[serde(rename = "fn")]
    pub function: String,
    /// Whether it compares with one-hot rows of class labels (`mse` on classes). Written
    /// even when false: cards of earlier engines required it for mse.
    #[serde(default)]
    pub one_hot: bool,
    /// Its settings (`label_smoothing`, `class_weights`, `delta`, ...).
    #[serde(flatten)]
    pub settings: crate::losses::LossSettings,
}

impl EvalLoss {
    /// What the evaluations of a model trained with loss stage `l` report; `one_hot` when
    /// it compares with one-hot rows of class labels.
    pub fn of(l: &crate::spec::LossStage, one_hot: bool) -> EvalLoss {
        match l.function.row().eval_as {
            Some(other) => EvalLoss {
                function: other.to_string(),
                one_hot,
                settings: crate::losses::LossSettings::default(),
            },
            None => {
                let mut settings = crate::losses::LossSettings::of(l);
                (l.function.row().defaults)(&mut settings);
                EvalLoss {
                    function: l.function.as_str().to_string(),
                    one_hot,
                    settings,
                }
            }
        }
    }

    /// The device loss.
    pub fn kind(&self) -> Result<ops::train::LossKind, String> {
        let f = crate::losses::LossFn::named(&self.function).ok_or_else(|| {
            format!(
                "the model card names loss `{}`, which this binary does not know",
                self.function
            )
        })?;
        f.lower(&self.settings)
    }

    /// Cross entropy's class weights.
    pub fn class_weights(&self) -> Option<Vec<f32>> {
        self.settings.class_weights_f32()
    }

    /// Whether it compares with one-hot rows of class labels.
    pub fn one_hot(&self) -> bool {
        self.one_hot
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

#[cfg(test)]
mod tests {
    use super::*;
    use ops::train::LossKind;

    /// Cards written before losses were a registry kept the same keys: they still load
    /// and lower to the same device losses.
    #[test]
    fn eval_losses_of_earlier_cards_load_and_lower() {
        let card = |json: serde_json::Value| -> EvalLoss { serde_json::from_value(json).unwrap() };
        let ce = card(
            serde_json::json!({"fn": "cross_entropy", "label_smoothing": 0.1, "class_weights": [1.0, 2.0]}),
        );
        assert_eq!(
            ce.kind().unwrap(),
            LossKind::CrossEntropy {
                label_smoothing: 0.1
            }
        );
        assert_eq!(ce.class_weights(), Some(vec![1.0, 2.0]));
        let mse = card(serde_json::json!({"fn": "mse", "one_hot": true}));
        assert!(mse.one_hot());
        assert_eq!(mse.kind().unwrap(), LossKind::Fused(ops::loss::mse::mse()));
        let huber = card(serde_json::json!({"fn": "huber", "delta": 0.5}));
        assert_eq!(
            huber.kind().unwrap(),
            LossKind::Fused(ops::loss::huber::huber(0.5))
        );
        assert!(card(serde_json::json!({"fn": "l1"})).kind().is_ok());
        let unknown = card(serde_json::json!({"fn": "focal"})).kind().unwrap_err();
        assert!(unknown.contains("does not know"), "{unknown}");
        // Written back, a card keeps the keys earlier engines required.
        assert_eq!(
            serde_json::to_value(&huber).unwrap(),
            serde_json::json!({"fn": "huber", "delta": 0.5, "one_hot": false, "label_smoothing": 0.0})
        );
    }
}
