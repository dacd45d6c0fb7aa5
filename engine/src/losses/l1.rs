//! `l1`: mean absolute error against float targets.

use ops::loss::LossTargets;
use ops::train::LossKind;

use super::LossRow;

pub(super) const ROW: LossRow = LossRow {
    name: "l1",
    description: "Mean absolute error against float regression targets.",
    targets: Some(LossTargets::Values),
    keys: &[],
    applies_softmax: false,
    needs_teacher: false,
    params: false,
    defaults: super::no_defaults,
    eval_as: None,
    lower: |_, _| Ok(LossKind::Fused(ops::loss::l1::l1())),
};
