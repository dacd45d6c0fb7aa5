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
    defaults: |s| {
        s.delta.get_or_insert(DELTA);
    },
    lower: |_, s| {
        Ok(LossKind::Fused(ops::loss::huber::huber(
            s.delta.unwrap_or(DELTA) as f32,
        )))
    },
};

/// Where the loss turns linear when no `delta` is written (PyTorch's default).
const DELTA: f64 = 1.0;
