//! `mse`: mean squared error against float targets, or one-hot rows of class labels.

use ops::train::LossKind;

use super::LossRow;

pub(super) const ROW: LossRow = LossRow {
    name: "mse",
    description: "Mean squared error: against a regression data set's float targets, or against\none-hot class targets.",
    targets: None,
    keys: &[],
    applies_softmax: false,
    needs_teacher: false,
    params: false,
    defaults: super::no_defaults,
    eval_as: None,
    lower: |_, _| Ok(LossKind::Fused(ops::loss::mse::mse())),
};
