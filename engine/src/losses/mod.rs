//! Losses: one file per loss (its row: name, description, the targets it compares with,
//! the loss-stage keys it reads, what the checks must know of it, and its lowering to a
//! device loss) and one registry ([`LOSSES`], plus those a binary registers through
//! `engine::extend`). The parser, the schema, the did-you-mean lists, the task, shape and
//! key checks, the lowering, the plan and the model cards read the registry; adding a loss
//! is its file and one line in the table (and, for a new kernel, its `ops::loss` file and
//! WGSL).

mod cross_entropy;
mod distill;

pub use distill::{ALPHA as DISTILL_ALPHA, TEMPERATURE as DISTILL_TEMPERATURE};
mod huber;
mod l1;
mod mse;

use ops::loss::LossTargets;
use ops::train::LossKind;
use serde::{Deserialize, Serialize};

use crate::spec::LossStage;
use crate::spec::tagged::named_row;

/// One loss: what a pipeline names and how it lowers.
pub struct LossRow {
    /// The name in `fn:`.
    pub name: &'static str,
    /// One sentence for the schema and the docs.
    pub description: &'static str,
    /// What it compares the outputs with: class ids or float targets (`None`: either,
    /// class labels as one-hot rows).
    pub targets: Option<LossTargets>,
    /// The loss-stage keys it reads besides `fn`, `logits` and `target` (another loss's
    /// key is refused where it is written).
    pub keys: &'static [&'static str],
    /// It applies softmax to the outputs itself (a model ending in `softmax` is refused).
    pub applies_softmax: bool,
    /// It reads a frozen teacher's outputs (`teacher:`).
    pub needs_teacher: bool,
    /// It takes its settings under `params:` (a registered loss).
    pub params: bool,
    /// The loss a model card's evaluations report instead of this one (`None`: itself).
    pub eval_as: Option<&'static str>,
    /// Writes out the defaults of the settings it reads, so that a model card states
    /// them (and an earlier engine that required them reads the card).
    pub defaults: fn(&mut LossSettings),
    /// The device loss for its name and settings.
    pub lower: fn(&'static str, &LossSettings) -> Result<LossKind, String>,
}

/// A loss's settings as a loss stage writes them, and as a model card keeps them for the
/// evaluations of the model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LossSettings {
    /// Written even when 0: cards of earlier engines required it for cross entropy.
    #[serde(default)]
    pub label_smoothing: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_weights: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<serde_json::Value>,
}

impl LossSettings {
    /// The settings a loss stage writes.
    pub fn of(l: &LossStage) -> LossSettings {
        LossSettings {
            label_smoothing: l.label_smoothing,
            delta: l.delta,
            class_weights: l.class_weights.clone(),
            temperature: l.temperature,
            alpha: l.alpha,
            params: l.params.clone(),
        }
    }

    /// Cross entropy's class weights, as the device reads them.
    pub fn class_weights_f32(&self) -> Option<Vec<f32>> {
        self.class_weights
            .as_ref()
            .map(|w| w.iter().map(|&v| v as f32).collect())
    }
}

/// [`LossRow::defaults`] of a loss whose settings have no default to write.
pub fn no_defaults(_: &mut LossSettings) {}

/// The built-in losses, in the order the docs and the schema list them.
pub static LOSSES: &[LossRow] = &[
    cross_entropy::ROW,
    mse::ROW,
    l1::ROW,
    huber::ROW,
    distill::ROW,
];

/// A loss function: a row of the registry.
#[derive(Clone, Copy)]
pub struct LossFn(&'static LossRow);

impl LossFn {
    /// Every loss: the built-in ones, then those the binary registered.
    pub fn all() -> impl Iterator<Item = LossFn> {
        LOSSES
            .iter()
            .chain(crate::extend::registry().loss_rows.iter())
            .map(LossFn)
    }

    /// Every name a pipeline can write (did-you-mean lists and messages).
    pub fn names() -> &'static [&'static str] {
        crate::extend::registry().loss_names
    }

    /// The loss named `name`: built in or registered.
    pub fn named(name: &str) -> Option<LossFn> {
        LossFn::all().find(|f| f.as_str() == name)
    }

    /// Its row.
    pub fn row(self) -> &'static LossRow {
        self.0
    }

    /// The name as written in pipelines.
    pub fn as_str(self) -> &'static str {
        self.0.name
    }

    /// Whether it fits a data set holding these targets.
    pub fn fits(self, targets: LossTargets) -> bool {
        self.0.targets.is_none_or(|t| t == targets)
    }

    /// The device loss for `settings`.
    pub fn lower(self, settings: &LossSettings) -> Result<LossKind, String> {
        (self.0.lower)(self.0.name, settings)
    }
}

named_row!(LossFn, "A loss function.");

/// The row of a loss the binary registered: its kernel and CPU reference lowered from
/// its `params`; a model card evaluates with cross entropy or MSE (the plain `engine`
/// lacks its kernel).
pub(crate) fn registered_row(l: &crate::extend::RegisteredLoss) -> LossRow {
    LossRow {
        name: l.name,
        description: l.description,
        targets: Some(l.targets),
        keys: &["params"],
        applies_softmax: false,
        needs_teacher: false,
        params: true,
        eval_as: Some(match l.targets {
            LossTargets::Values => "mse",
            LossTargets::Classes => "cross_entropy",
        }),
        defaults: no_defaults,
        lower: |name, settings| {
            crate::extend::lower_loss(name, settings.params.as_ref()).map(LossKind::Fused)
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_has_unique_names_each_lowering_with_defaults() {
        let names: Vec<&str> = LOSSES.iter().map(|l| l.name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        assert_eq!(&LossFn::names()[..names.len()], names.as_slice());
        for f in LossFn::all() {
            let kind = f.lower(&LossSettings::default()).unwrap();
            // A loss of either task (mse) binds targets: one-hot rows for class labels.
            assert_eq!(
                kind.has_value_targets(),
                f.row().targets != Some(LossTargets::Classes),
                "{f:?}"
            );
        }
    }
}
