//! `distill`: cross entropy on the labels mixed with the KL divergence to a frozen
//! teacher's softened outputs (Hinton et al. 2015). Evaluations report cross entropy.

use ops::loss::LossTargets;
use ops::train::LossKind;

use super::LossRow;

pub(super) const ROW: LossRow = LossRow {
    name: "distill",
    description: "Knowledge distillation: cross entropy on the labels mixed with the KL divergence\nto a frozen teacher's outputs softened by `temperature` (Hinton et al. 2015).",
    targets: Some(LossTargets::Classes),
    keys: &["teacher", "temperature", "alpha"],
    applies_softmax: true,
    needs_teacher: true,
    params: false,
    defaults: super::no_defaults,
    eval_as: Some("cross_entropy"),
    lower: |_, s| {
        Ok(LossKind::Distill {
            temperature: s.temperature.unwrap_or(TEMPERATURE) as f32,
            alpha: s.alpha.unwrap_or(ALPHA) as f32,
        })
    },
};

/// The softmax temperature when none is written.
pub const TEMPERATURE: f64 = 4.0;
/// The weight of the KL term when none is written.
pub const ALPHA: f64 = 0.9;
