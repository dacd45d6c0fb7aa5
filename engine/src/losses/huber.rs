//! `huber`: squared below `delta`, linear above (PyTorch's `HuberLoss`).

use ops::loss::LossTargets;
use ops::train::LossKind;

use super::LossRow;

pub(super) const ROW: LossRow = LossRow {
    name: "huber",
    description: "Huber loss against float regression targets: squared below `delta`, linear above\n(PyTorch's `HuberLoss`).",
    targets: Some(LossTargets::Values),
    keys: &["delta"],
    applies_softmax: false,
    needs_teacher: false,
    params: false,
    eval_as: None,
    lower: |_, s| {
        Ok(LossKind::Fused(ops::loss::huber::huber(
            s.delta.unwrap_or(1.0) as f32,
        )))
    },
};
