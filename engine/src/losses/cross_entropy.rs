//! `cross_entropy`: softmax cross entropy over class logits, with label smoothing and
//! class weights.

use ops::loss::LossTargets;
use ops::train::LossKind;

use super::LossRow;

pub(super) const ROW: LossRow = LossRow {
    name: "cross_entropy",
    description: "Softmax cross-entropy over class logits, with integer class targets.",
    targets: Some(LossTargets::Classes),
    keys: &["label_smoothing", "class_weights"],
    applies_softmax: true,
    needs_teacher: false,
    params: false,
    defaults: super::no_defaults,
    eval_as: None,
    lower: |_, s| {
        Ok(LossKind::CrossEntropy {
            label_smoothing: s.label_smoothing as f32,
        })
    },
};
